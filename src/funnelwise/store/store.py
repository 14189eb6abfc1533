"""Opening a store from a URL, migrating it, and writing to it in transactions."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from funnelwise.errors import StoreError
from funnelwise.outfile import make_folder
from funnelwise.process.model import OUTCOME_KINDS
from funnelwise.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, arrow_schema

SUPPORTED_SCHEMES = ("duckdb://",)
_load_names = itertools.count()
MEMORY_ENV = "FUNNELWISE_DUCKDB_MEMORY"
THREADS_ENV = "FUNNELWISE_DUCKDB_THREADS"
# Share of the machine's memory the engine may hold before it spills to disk: the
# rest is left to the frames pulled into Python and to other programs.
MEMORY_SHARE = 0.125
_MEMORY_FORMAT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)\s*$", re.I)


def default_memory_limit() -> str:
    """The engine's memory limit when none is given: `FUNNELWISE_DUCKDB_MEMORY`, else an
    eighth of the machine's memory (at least 1 GiB), e.g. '3GB' on 24 GiB."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        return check_memory_limit(env, name=MEMORY_ENV)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: a safe small default
        return "1GB"
    return f"{max(1024, int(total * MEMORY_SHARE / 2**20))}MiB"


def check_memory_limit(value: str, *, name: str = "memory_limit") -> str:
    """`value` if it is a size DuckDB reads (a number and a unit such as '3GB' or
    '512MiB'); StoreError naming the setting otherwise."""
    if not _MEMORY_FORMAT.match(value):
        raise StoreError(
            f"{name}: {value!r} is not a memory size; write a number and a unit, "
            "e.g. '3GB' or '512MiB'"
        )
    return value.strip()


def default_threads() -> int | None:
    """The engine's threads when none are given: `FUNNELWISE_DUCKDB_THREADS`, else
    DuckDB's own choice (one per core)."""
    env = os.environ.get(THREADS_ENV)
    if not env:
        return None
    if not env.strip().isdigit() or int(env) < 1:
        raise StoreError(f"{THREADS_ENV}: {env!r} is not a positive whole number of threads")
    return int(env)


def conform(table: str, data: pa.Table | pd.DataFrame) -> pa.Table:
    """Shape data to a canonical table: add missing columns as nulls, cast, order.

    Raises StoreError naming unknown columns, columns that cannot be cast, and
    required columns with empty values.
    """
    if table not in TABLES:
        raise StoreError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    if isinstance(data, pd.DataFrame):
        data = pa.Table.from_pandas(data, preserve_index=False)
    schema = arrow_schema(table)
    unknown = set(data.column_names) - set(schema.names)
    if unknown:
        raise StoreError(
            f"columns {sorted(unknown)} are not in table {table!r}; "
            f"its columns are: {', '.join(schema.names)}"
        )
    arrays = []
    for field in schema:
        if field.name in data.column_names:
            col = data.column(field.name)
            try:
                arrays.append(col.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise StoreError(
                    f"column {table}.{field.name} cannot be stored as {field.type}: {exc}"
                ) from exc
            if not field.nullable and arrays[-1].null_count:
                empty = arrays[-1].is_null().to_pylist().index(True)
                raise StoreError(
                    f"column {table}.{field.name} is required, but {arrays[-1].null_count:,} "
                    f"of {data.num_rows:,} rows have no value (the first is row {empty}, "
                    "counting from 0)"
                )
        else:
            if not field.nullable:
                raise StoreError(f"column {table}.{field.name} is required but missing")
            arrays.append(pa.nulls(data.num_rows, field.type))
    out = pa.Table.from_arrays(arrays, schema=schema.remove_metadata())
    if table == "deals":
        _check_outcomes(out)
    return out


def _check_outcomes(deals: pa.Table) -> None:
    """An outcome is one of the three kinds and comes with its close time: without
    one, `as_of` could not tell when the deal closed and would show it closed at
    every date, even before it was created."""
    outcome = deals.column("outcome")
    known = pc.is_in(outcome, value_set=pa.array(OUTCOME_KINDS))
    bad = pc.and_(pc.is_valid(outcome), pc.invert(known))
    undated = pc.and_(pc.is_valid(outcome), pc.is_null(deals.column("closed_at")))
    for rows, reason in (
        (bad, f"an outcome other than {', '.join(OUTCOME_KINDS)} (or empty while open)"),
        (undated, "an outcome but no closed_at"),
    ):
        n = pc.sum(rows).as_py() or 0
        if n:
            first = pc.index(rows, True).as_py()
            raise StoreError(
                f"deals: {n:,} of {deals.num_rows:,} rows have {reason} (the first is row "
                f"{first}, counting from 0: deal {deals.column('deal_id')[first].as_py()!r}, "
                f"outcome {outcome[first].as_py()!r})"
            )


def _connect(target: str, read_only: bool) -> Any:
    """An Ibis DuckDB backend on `target`. This process may hold the file open for
    writing already (a notebook's log, a test): DuckDB then refuses a read-only
    connection to it, and a reader shares the open database instead."""
    try:
        return ibis.duckdb.connect(target, read_only=read_only)
    except Exception as exc:
        if read_only and "different configuration" in str(exc):
            return ibis.duckdb.connect(target)
        raise


def lock_holder(exc: BaseException | None) -> str | None:
    """'process 1234' (or 'another process') when `exc` is the engine refusing a store
    that another process holds; None for any other error."""
    text = str(exc)
    if exc is None or "Conflicting lock" not in text:
        return None
    pid = re.search(r"\(PID (\d+)\)", text)
    return f"process {pid.group(1)}" if pid else "another process"


def _open_error(target: str, read_only: bool, exc: Exception) -> str:
    """Why a DuckDB store would not open, in funnelwise's terms."""
    holder = lock_holder(exc)
    if holder is None and not read_only and "different configuration" in str(exc):
        # This process reads the store already (a notebook's read-only log).
        return (
            f"cannot write to the store {target}: this program has it open for reading "
            "only; close that first (log.store.close()), or open it without read_only"
        )
    if holder is None:
        return f"cannot open DuckDB store {target}: {exc}"
    if read_only:
        return (
            f"cannot read the store {target}: {holder} is writing to it (an import or "
            "scoring). Retry when it has finished."
        )
    return (
        f"cannot write to the store {target}: {holder} has it open. Analyses and reports "
        "can read it together, but an import or scoring needs it alone: retry when the "
        "other command has finished."
    )


_FAILED_INSIDE = (
    "a write inside the transaction failed and its error was caught before the end of the "
    "transaction; nothing of the transaction was written"
)


class Store:
    """A funnelwise store: the canonical tables behind an Ibis backend.

    Open one with `Store.open(url)`. Reads go through `table(name)` (Ibis
    expressions); writes go through `insert` / `insert_new`, inside
    `transaction()` when several must land together.
    """

    def __init__(self, url: str, backend: Any) -> None:
        self.url = url
        self.backend = backend
        self._depth = 0
        self._failed = False

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        *,
        create: bool = True,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> Store:
        """Open (and migrate) the store at `url`, e.g. `duckdb:///path/funnelwise.duckdb`.

        `create=False` refuses to create a new database file. `memory_limit` (e.g.
        '3GB') caps the engine's memory, default `default_memory_limit()`;
        beyond it the engine spills to `<store file>.tmp` next to the store.
        `threads` defaults to `FUNNELWISE_DUCKDB_THREADS` or one per core.
        """
        memory = (
            check_memory_limit(memory_limit) if memory_limit is not None else default_memory_limit()
        )
        threads = threads if threads is not None else default_threads()
        if threads is not None and threads < 1:
            raise StoreError(f"threads: {threads} must be at least 1")
        if url.startswith("duckdb://"):
            target = url[len("duckdb://") :] or ":memory:"
            spill: str | None = None
            if target != ":memory:":
                # `duckdb://~/sales.duckdb`: no shell expands a ~ inside a URL.
                path = Path(target).expanduser()
                url = f"duckdb://{path}"
                if not path.exists() and not create:
                    raise StoreError(
                        f"no store at {path}; create a project with `funnelwise demo DIR` "
                        "or `funnelwise init DIR`"
                    )
                reason = make_folder(path.parent)
                if reason:
                    raise StoreError(
                        f"cannot create the store {path}: {reason}; choose another folder"
                    )
                target = str(path)
                spill = f"{path}.tmp"
            try:
                backend = _connect(target, read_only)
            except Exception as exc:  # duckdb raises its own IOException family
                raise StoreError(_open_error(target, read_only, exc)) from exc
            con = backend.con
            con.execute(f"SET memory_limit = '{memory}'")
            if threads is not None:
                con.execute(f"SET threads = {threads}")
            if spill is not None:
                con.execute("SET temp_directory = ?", [spill])
            store = cls(url, backend)
            if not read_only:
                store.migrate()
            elif store.schema_version() > SCHEMA_VERSION:
                message = store.newer_schema()  # a later funnelwise may store things
                store.close()  # this one would misread
                raise StoreError(message)
            return store
        raise StoreError(
            f"unsupported store URL {url!r}; use one of: "
            + ", ".join(f"{s}…" for s in SUPPORTED_SCHEMES)
            + " (for example duckdb:///path/to/funnelwise.duckdb)"
        )

    @property
    def raw(self) -> Any:
        """The DB-API connection under the Ibis backend."""
        return self.backend.con

    def close(self) -> None:
        """Close the connection."""
        self.backend.disconnect()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------
    def schema_version(self) -> int:
        """The number of the last migration applied (0 for an empty database)."""
        if "schema_version" not in self.backend.list_tables():
            return 0
        row = self.raw.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def newer_schema(self) -> str:
        """The error message for a store written by a later funnelwise."""
        return (
            f"the store {self.url} has schema version {self.schema_version()}, newer than "
            f"this funnelwise's ({SCHEMA_VERSION}); upgrade funnelwise to read it"
        )

    def migrate(self) -> int:
        """Apply pending numbered migrations in one transaction; returns the new version."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(self.newer_schema())
        if current == SCHEMA_VERSION:
            return current
        if current == 0:
            taken = sorted(set(self.backend.list_tables()) & set(TABLES))
            if taken:
                raise StoreError(
                    f"{self.url} is not a funnelwise store but holds tables of its own "
                    f"({', '.join(taken)}); keep the store in a file of its own, e.g. "
                    "a new funnelwise.duckdb"
                )
        with self.transaction():
            self.raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER NOT NULL, name VARCHAR, applied_at TIMESTAMP)"
            )
            for version, name, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    self.raw.execute(sql)
                self.raw.execute(
                    "INSERT INTO schema_version VALUES (?, ?, current_timestamp)",
                    [version, name],
                )
        return SCHEMA_VERSION

    # -- reading ---------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """An Ibis expression over a canonical table."""
        if name not in TABLES:
            raise StoreError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        return self.backend.table(name)

    def count(self, name: str) -> int:
        """Number of rows in a canonical table."""
        return int(self.table(name).count().execute())

    def meta(self, key: str) -> str | None:
        """A value from the `meta` key-value table, or None."""
        row = self.raw.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else row[0]

    def meta_json(self, key: str) -> Any:
        """A JSON value from `meta`, or None."""
        value = self.meta(key)
        return None if value is None else json.loads(value)

    # -- writing ---------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside land together or not at all; nested calls join the outer one.

        The engine keeps no savepoints, so a nested block that fails fails the whole
        transaction, even where the caller catches its error; so does a statement the
        engine refused (the engine would commit such a transaction as empty, silently).
        Either way nothing is written and the outer block ends in a StoreError."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._failed = True
                raise
            finally:
                self._depth -= 1
            return
        self.raw.execute("BEGIN TRANSACTION")
        self._depth, self._failed = 1, False
        try:
            yield self
            if not self._failed:
                self.raw.execute("SELECT 1")  # refused once a statement has failed
        except duckdb.TransactionException as exc:
            self._depth = 0
            self.raw.execute("ROLLBACK")
            raise StoreError(_FAILED_INSIDE) from exc
        except BaseException:
            self._depth = 0
            self.raw.execute("ROLLBACK")
            raise
        self._depth = 0
        if self._failed:
            self.raw.execute("ROLLBACK")
            raise StoreError(_FAILED_INSIDE)
        self.raw.execute("COMMIT")

    def set_meta(self, key: str, value: str) -> None:
        """Set a `meta` value (insert or replace)."""
        with self.transaction():
            self.raw.execute("DELETE FROM meta WHERE key = ?", [key])
            self.raw.execute("INSERT INTO meta VALUES (?, ?)", [key, value])

    @contextmanager
    def _registered(self, data: pa.Table) -> Iterator[str]:
        name = f"_fw_load_{next(_load_names)}"
        self.raw.register(name, data)
        try:
            yield name
        finally:
            self.raw.unregister(name)

    def insert(self, table: str, data: pa.Table | pd.DataFrame) -> int:
        """Append rows to a canonical table; returns the number of rows written."""
        arrow = conform(table, data)
        if arrow.num_rows == 0:
            return 0
        cols = ", ".join(f'"{c}"' for c in arrow.column_names)
        with self.transaction(), self._registered(arrow) as name:
            self.raw.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        return arrow.num_rows

    def insert_new(self, table: str, data: pa.Table | pd.DataFrame, key: Sequence[str]) -> int:
        """Append only rows whose natural key is not stored yet (nor repeated in data).

        Returns the number of rows written; the rest were duplicates.
        """
        arrow = conform(table, data)
        if arrow.num_rows == 0:
            return 0
        cols = ", ".join(f'"{c}"' for c in arrow.column_names)
        keys = ", ".join(key)
        match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM l.{k}" for k in key)
        with self.transaction(), self._registered(arrow) as name:
            before = self.count(table)
            self.raw.execute(
                f"INSERT INTO {table} ({cols}) "
                f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys}) AS _rn "
                f"FROM {name}) l WHERE _rn = 1 "
                f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
            )
            return self.count(table) - before

    def replace(self, table: str, data: pa.Table | pd.DataFrame) -> int:
        """Replace the whole content of a table (used for process-derived tables).

        The data is checked against the table first: an unknown table or a bad row
        is a StoreError before anything is deleted."""
        arrow = conform(table, data)
        with self.transaction():
            self.raw.execute(f"DELETE FROM {table}")
            return self.insert(table, arrow)
