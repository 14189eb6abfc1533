"""Problems found in source rows, and the checks that find them.

Every problem names the file, the row (as a spreadsheet shows it: header = row
1; for XES, the line of the event), the column, the value and the reason.
Quarantining problems keep the row out of the store (it goes to the quarantine
CSV instead); the others are notes on a row that is loaded (a value that could
not be read is left empty, an exact duplicate is skipped).

Problems live in the scratch table `_problems` while the import runs; only the
first `KEEP` are pulled into Python for the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from funnelwise.ingest.staging import Staging, literal, quote

KEEP = 1000
ProblemKey = tuple[int, int]


@dataclass(frozen=True)
class RowProblem:
    """One problem in one source row."""

    file: str
    row: int
    column: str
    value: str | None
    reason: str
    quarantined: bool
    code: str = ""

    def __str__(self) -> str:
        value = "" if self.value is None else f" = {self.value!r}"
        action = _action(self.quarantined, self.code)
        return f"{self.file} row {self.row}, {self.column}{value}: {self.reason} ({action})"


# An exact copy of an earlier row is neither loaded nor set aside: it is skipped.
SKIPPED = "duplicate"


def _action(quarantined: bool, code: str) -> str:
    """What happened to the row: quarantined (set aside), skipped (an exact copy of
    a row that is loaded) or loaded."""
    if quarantined:
        return "quarantined"
    return "skipped" if code == SKIPPED else "loaded"


@dataclass(frozen=True)
class ProblemGroup:
    """Problems of one kind in one column of one file: how many, and the first."""

    file: str
    column: str
    code: str
    quarantined: bool
    rows: int
    first_row: int
    example: str  # the first row's reason

    def __str__(self) -> str:
        action = _action(self.quarantined, self.code)
        return (
            f"{self.rows:>7,} × {self.file}, {self.column}: {self.code} ({action}); "
            f"first: row {self.first_row}, {self.example}"
        )


class Problems:
    """The problems of one import, kept in the scratch database."""

    def __init__(self, st: Staging) -> None:
        self.st = st
        st.con.execute(
            "CREATE TABLE _problems (_src INTEGER, _row BIGINT, col VARCHAR, "
            "value VARCHAR, reason VARCHAR, quarantined BOOLEAN, code VARCHAR)"
        )
        self.dirty = False

    def add(self, query: str, *, quarantine: bool, code: str) -> int:
        """Record the rows of `query` (src, row, column, value, reason); returns how many.

        `code` names the kind of problem for the summary ('unreadable', 'duplicate', ...).
        A problem already recorded (same row, column and reason) is not recorded again,
        nor a missing value where the value was there but unreadable.
        """
        before = self.count()
        # One source row can feed several staged rows (a Salesforce history row is a
        # stage entry and three field changes), each checked: the row's problem once.
        # A value that did not parse is empty once parsed: "not a date and time" says
        # it all, "required value is missing" beside it would read as a second fault.
        same = "" if code == "missing" else " AND x.reason = p.m"
        self.st.con.execute(
            f"INSERT INTO _problems SELECT DISTINCT s, r, c, CAST(v AS VARCHAR), m, "
            f"{quarantine}, {literal(code)} FROM ({query}) AS p(s, r, c, v, m) "
            "WHERE NOT EXISTS (SELECT 1 FROM _problems x WHERE x._src = p.s "
            f"AND x._row = p.r AND x.col = p.c{same})"
        )
        added = self.count() - before
        self.dirty = self.dirty or (quarantine and added > 0)
        return added

    def add_many(self, query: str) -> int:
        """Record the rows of `query` (src, row, column, value, reason, quarantine, kind)."""
        before = self.count()
        self.st.con.execute(f"INSERT INTO _problems SELECT * FROM ({query})")
        added = self.count() - before
        if added:
            self.dirty = self.dirty or self.count(quarantined=True) > 0
        return added

    def add_unparsed(self) -> int:
        """Record the CSV records the staging could not read (quarantined: they never
        reach a table); returns how many."""
        return sum(
            self.add(
                f"SELECT _src, _row, '(record)', value, reason FROM ({query})",
                quarantine=True,
                code="malformed record",
            )
            for query in self.st.unparsed
        )

    def count(self, *, quarantined: bool | None = None) -> int:
        """Number of problems (all, or only quarantining / only notes)."""
        where = "" if quarantined is None else f" WHERE quarantined = {quarantined}"
        return int(self.st.scalar(f"SELECT count(*) FROM _problems{where}"))

    def quarantined_rows(self) -> str:
        """SQL for the distinct (_src, _row) pairs kept out of the store."""
        return "SELECT DISTINCT _src, _row FROM _problems WHERE quarantined"

    def clean(self, table: str) -> str:
        """SQL selecting the rows of `table` that are not quarantined."""
        if not self.dirty:
            return f"SELECT * FROM {quote(table)}"
        return (
            f"SELECT * FROM {quote(table)} t WHERE NOT EXISTS (SELECT 1 FROM _problems p "
            "WHERE p.quarantined AND p._src = t._src AND p._row = t._row)"
        )

    def first(self, n: int = KEEP, *, quarantined: bool | None = None) -> tuple[RowProblem, ...]:
        """The first n problems (all, or only quarantining / only notes) in file and row
        order."""
        where = "" if quarantined is None else f"WHERE quarantined = {quarantined} "
        rows = self.st.sql(
            "SELECT _src, _row, col, value, reason, quarantined, code FROM _problems "
            f"{where}ORDER BY _src, _row, col LIMIT {int(n)}"
        )
        files = self.st.files
        return tuple(
            RowProblem(files[s].name, int(r), c, v, m, bool(q), k) for s, r, c, v, m, q, k in rows
        )

    def summary(self) -> tuple[ProblemGroup, ...]:
        """Problems grouped by file, column, kind and action, largest groups first."""
        rows = self.st.sql(
            "SELECT _src, col, code, quarantined, count(*), min(_row), arg_min(reason, _row) "
            "FROM _problems GROUP BY ALL ORDER BY count(*) DESC, min(_row)"
        )
        files = self.st.files
        return tuple(
            ProblemGroup(files[s].name, c, k, bool(q), int(n), int(r), e)
            for s, c, k, q, n, r, e in rows
        )

    def quarantined_by_src(self) -> dict[int, int]:
        """Quarantined source rows per source file index."""
        rows = self.st.sql(
            "SELECT _src, count(DISTINCT _row) FROM _problems WHERE quarantined GROUP BY 1"
        )
        return {int(s): int(n) for s, n in rows}


@dataclass(frozen=True)
class Labels:
    """Source column names of a staged table's canonical columns, for problem reports."""

    names: Mapping[str, str]

    def __call__(self, column: str) -> str:
        return self.names.get(column, column)


def _ts(value: pd.Timestamp) -> str:
    return f"TIMESTAMP {literal(value.isoformat(sep=' '))}"


# No sales record predates this: earlier times are placeholders an export writes for
# "no date" (1900-01-01, 0001-01-01), and loaded as dates they would stretch every
# cycle time and history window back to them.
EARLIEST = pd.Timestamp("1970-01-01")


def check_time_range(
    problems: Problems, table: str, columns: Mapping[str, str], now: pd.Timestamp
) -> None:
    """Quarantine rows with a timestamp after `now`, or before 1970 (a placeholder, not
    a date); columns: name -> source label."""
    for col, label in columns.items():
        problems.add(
            f"SELECT _src, _row, {literal(label)}, {quote(col)}, "
            f"'is in the future (after ' || {literal(now.strftime('%Y-%m-%d %H:%M'))} || ')' "
            f"FROM {quote(table)} WHERE {quote(col)} > {_ts(now)}",
            quarantine=True,
            code="in the future",
        )
        problems.add(
            f"SELECT _src, _row, {literal(label)}, {quote(col)}, "
            "'is before 1970: a placeholder for no date, such as 1900-01-01?' "
            f"FROM {quote(table)} WHERE {quote(col)} < {_ts(EARLIEST)}",
            quarantine=True,
            code="before 1970",
        )


def check_negative(problems: Problems, table: str, column: str, label: str) -> None:
    """Quarantine rows with a negative number in `column`."""
    problems.add(
        f"SELECT _src, _row, {literal(label)}, {quote(column)}, 'is negative' "
        f"FROM {quote(table)} WHERE {quote(column)} < 0",
        quarantine=True,
        code="negative",
    )


def check_order(
    problems: Problems, table: str, before: str, after: str, label: str, what: str
) -> None:
    """Quarantine rows where `after` comes before `before` (both columns of `table`)."""
    problems.add(
        f"SELECT _src, _row, {literal(label)}, {quote(after)}, "
        f"{literal(what)} || ' (' || CAST({quote(before)} AS VARCHAR) || ')' "
        f"FROM {quote(table)} WHERE {quote(after)} < {quote(before)}",
        quarantine=True,
        code="out of order",
    )


def check_duplicate_keys(
    st: Staging, problems: Problems, table: str, key: str, label: str, compare: list[str]
) -> None:
    """Rows repeating the key of an earlier row: an exact copy is skipped (a note), a
    different row with the same key is quarantined. The first row is kept."""
    same = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM f.{quote(c)}" for c in compare)
    k = quote(key)
    first = st.name("firsts")
    st.create(
        first,
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {k} ORDER BY _src, _row) "
        f"AS _n FROM {quote(table)} WHERE {k} IN (SELECT {k} FROM {quote(table)} "
        f"GROUP BY 1 HAVING count(*) > 1))",
    )
    base = (
        f"FROM {quote(first)} t JOIN {quote(first)} f ON f.{k} = t.{k} AND f._n = 1 WHERE t._n > 1"
    )
    problems.add(
        f"SELECT t._src, t._row, {literal(label)}, t.{k}, "
        f"'repeats row ' || f._row || ' exactly; only the first copy is loaded' {base} "
        f"AND {same or 'true'}",
        quarantine=False,
        code=SKIPPED,
    )
    problems.add(
        f"SELECT t._src, t._row, {literal(label)}, t.{k}, "
        f"'also on row ' || f._row || ' with other values; keep one of them' "
        f"{base} AND NOT ({same or 'true'})",
        quarantine=True,
        code="conflicting duplicate",
    )
    # Every later row of a key leaves the table: copies are skipped, the others are
    # quarantined above; the first row stays.
    st.con.execute(f"CREATE OR REPLACE TABLE {quote(first)} AS SELECT t._src, t._row {base}")
    st.con.execute(
        f"DELETE FROM {quote(table)} WHERE (_src, _row) IN (SELECT _src, _row FROM {quote(first)})"
    )


def check_references(
    problems: Problems,
    table: str,
    key: str,
    label: str,
    known: str,
    *,
    what: str = "deal",
) -> None:
    """Quarantine rows whose `key` is not in the SQL set `known` (one column)."""
    k = quote(key)
    problems.add(
        f"SELECT _src, _row, {literal(label)}, {k}, "
        f"'refers to a {what} that is neither in this import (or was quarantined) "
        "nor in the store' "
        f"FROM {quote(table)} WHERE {k} IS NOT NULL AND {k} NOT IN ({known})",
        quarantine=True,
        code="unknown " + what,
    )
