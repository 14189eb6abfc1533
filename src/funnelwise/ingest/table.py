"""The table reader: CSV, Parquet or Excel plus a mapping file (see `tablemap`).

Parsing and checking run in DuckDB over the whole file at once, so a table of
millions of events loads at the speed of the engine, not of Python.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

import pandas as pd

from funnelwise.errors import SourceImportError
from funnelwise.ingest.assemble import Staged
from funnelwise.ingest.importer import ImportOptions, Reader, run_import
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.parsing import Field, Kind, typed_table
from funnelwise.ingest.staging import SourceFile, Staging, literal, quote
from funnelwise.ingest.tablemap import (
    DEAL_FIELDS,
    FIELDS,
    KINDS,
    Loc,
    TableMapping,
    load_mapping,
    where,
)
from funnelwise.ingest.validate import Problems
from funnelwise.log.eventlog import TRACKED_FIELDS
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.store import Store


def attributes_sql(columns: list[tuple[str, str]]) -> str:
    """SQL for a JSON object {key: text} of the non-empty values of (key, column) pairs
    (NULL if all are empty)."""
    if not columns:
        return "NULL"
    entries = ", ".join(
        f"struct_pack(k := {literal(k)}, v := nullif(trim(CAST({quote(c)} AS VARCHAR)), ''))"
        for k, c in columns
    )
    obj = f"CAST(map_from_entries(list_filter([{entries}], e -> e.v IS NOT NULL)) AS JSON)"
    return f"nullif(CAST({obj} AS VARCHAR), '{{}}')"


def join_key(column: str) -> str:
    """SQL folding a join key loosely: case, accents, spaces and punctuation ignored."""
    return f"regexp_replace(strip_accents(lower(CAST({column} AS VARCHAR))), '[^a-z0-9]', '', 'g')"


def with_attributes(
    st: Staging, table: str, pairs: list[tuple[str, str]]
) -> tuple[str, list[Field]]:
    """`table` plus an `_attributes` JSON column of the (key, column) pairs, and the
    field reading it as the deal's or lead's attributes (none without pairs)."""
    if not pairs:
        return table, []
    view = st.view(
        st.name("attrs"), f"SELECT *, {attributes_sql(pairs)} AS _attributes FROM {quote(table)}"
    )
    return view, [Field("attributes", "_attributes")]


def require_columns(
    src: SourceFile, wanted: dict[str, Loc], mapping_file: str, lines: dict[Loc, int]
) -> None:
    """Raise SourceImportError naming mapped columns the file lacks, with mapping lines."""
    missing = [(c, loc) for c, loc in wanted.items() if c not in src.columns]
    if not missing:
        return
    msgs = []
    for col, loc in missing:
        close = difflib.get_close_matches(col, src.columns, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msgs.append(f"{where(mapping_file, lines, loc)}: column {col!r} is not in {src.name}{hint}")
    raise SourceImportError("\n".join([*msgs, f"columns of {src.name}: {', '.join(src.columns)}"]))


class _TableReader:
    def __init__(
        self,
        path: Path,
        mapping: TableMapping,
        lines: dict[Loc, int],
        mapping_file: str,
        options: ImportOptions,
    ) -> None:
        self.path = path
        self.m = mapping
        self.lines = lines
        self.mapping_file = mapping_file
        self.options = options

    def _joined(self, st: Staging, main: SourceFile) -> tuple[str, dict[str, str]]:
        """The main table with joined columns named `col (file)`; field -> column."""
        columns = dict(self.m.columns)
        if not self.m.joins:
            return main.table, columns
        select = ["m.*"]
        joins = []
        for j, join in enumerate(self.m.joins):
            other = st.read(
                self.path.parent / join.file,
                encoding=self.m.encoding or self.options.encoding,
                delimiter=self.m.delimiter,
            )
            right = join.right_on or join.on
            require_columns(main, {join.on: ("joins", j, "on")}, self.mapping_file, self.lines)
            wanted: dict[str, Loc] = {right: ("joins", j, "on")}
            wanted |= {c: ("joins", j, "columns", k) for k, c in join.columns.items()}
            wanted |= {c: ("joins", j, "attributes", i) for i, c in enumerate(join.attributes)}
            require_columns(other, wanted, self.mapping_file, self.lines)
            key = join_key if join.match == "loose" else str
            repeated = st.sql(
                f"SELECT any_value({quote(right)}), list(_row ORDER BY _row)[1:3] "
                f"FROM {quote(other.table)} WHERE {quote(right)} IS NOT NULL "
                f"GROUP BY {key(quote(right))} HAVING count(*) > 1 LIMIT 3"
            )
            if repeated:
                listed = "; ".join(f"{k!r} on rows {rows}" for k, rows in repeated)
                raise SourceImportError(
                    f"{where(self.mapping_file, self.lines, ('joins', j))}: the join key "
                    f"{right!r} repeats in {other.name} ({listed}); a joined file needs one "
                    "row per key"
                )
            alias = f"j{j}"
            joins.append(
                f"LEFT JOIN {quote(other.table)} {alias} "
                f"ON {key(f'{alias}.{quote(right)}')} = {key(f'm.{quote(join.on)}')}"
            )
            for col in {*join.columns.values(), *join.attributes}:
                select.append(f"{alias}.{quote(col)} AS {quote(f'{col} ({other.name})')}")
            columns |= {k: f"{c} ({other.name})" for k, c in join.columns.items()}
        view = st.view(
            st.name("joined"),
            f"SELECT {', '.join(select)} FROM {quote(main.table)} m {' '.join(joins)}",
        )
        return view, columns

    def _attributes(self, main: SourceFile, columns: dict[str, str]) -> list[tuple[str, str]]:
        """(JSON key, column) of the deal or lead attributes."""
        if self.m.attributes == "rest":
            used = set(columns.values()) | set(self.m.stage_dates.values())
            names = [(c, c) for c in main.columns if c not in used]
        else:
            names = [(c, c) for c in self.m.attributes]
        for join in self.m.joins:
            other = Path(join.file).name
            names += [(c, f"{c} ({other})") for c in join.attributes]
        return names

    def __call__(self, st: Staging, problems: Problems) -> Staged:
        m = self.m
        main = st.read(
            self.path,
            encoding=m.encoding or self.options.encoding,
            delimiter=m.delimiter,
            sheet=m.sheet,
        )
        wanted: dict[str, Loc] = {c: ("columns", k) for k, c in m.columns.items()}
        wanted |= {c: ("stage_dates", k) for k, c in m.stage_dates.items()}
        if m.attributes != "rest":
            wanted |= {c: ("attributes", i) for i, c in enumerate(m.attributes)}
        require_columns(main, wanted, self.mapping_file, self.lines)
        table, columns = self._joined(st, main)
        attrs = self._attributes(main, columns)
        if "amount" in columns and "currency" not in columns:
            table, columns = _currency_of_amounts(st, table, columns)
        table, attr_fields = with_attributes(st, table, attrs)
        required, optional = FIELDS[m.shape]
        fields = []
        for name in (*required, *optional):
            if name not in columns:
                continue
            need = name in required or (name == "created_at" and m.shape != "event_log")
            if name == "created_at" and m.created_at_missing == "snapshot":
                need = False
            kind: Kind = KINDS.get(name, "text")  # type: ignore[assignment]
            internal = {"order": "_ord", "listed_amount": "_listed_amount"}.get(name, name)
            fields.append(Field(internal, columns[name], kind, need))
        fields += attr_fields
        for i, col in enumerate(m.stage_dates.values()):
            fields.append(Field(f"_stage_date_{i}", col, "timestamp"))
        typed = typed_table(st, table, fields, problems, src=0, options=self.options.reading())
        labels = {k: v for k, v in columns.items()} | {"_ord": columns.get("order", "order")}
        staged = Staged(source="table", pipeline=m.pipeline, currency=m.currency)
        if m.shape == "leads":
            staged.leads = typed
            staged.labels = {"leads": labels}
            return staged
        if m.shape == "snapshot":
            staged.deals = typed
            staged.labels = {"deals": labels}
            staged.snapshot_at = pd.Timestamp(m.snapshot_at) if m.snapshot_at else None
            staged.undated_at_snapshot = m.created_at_missing == "snapshot"
            staged.amount_at_close = m.amount_known_at == "close"
            if m.stage_dates:
                parts = [
                    f"SELECT _src, _row, deal_id, {literal(stage)} AS stage, "
                    f"_stage_date_{i} AS entered_at FROM {quote(typed)} "
                    f"WHERE _stage_date_{i} IS NOT NULL"
                    for i, stage in enumerate(m.stage_dates)
                ]
                staged.events = st.view(st.name("stage_dates"), " UNION ALL ".join(parts))
                staged.labels["events"] = {
                    "entered_at": ", ".join(m.stage_dates.values()),
                    "stage": "stage_dates",
                    "deal_id": columns["deal_id"],
                }
            return staged
        staged.events = typed
        staged.event_order = "order" in columns
        staged.labels = {"events": labels, "deals": labels}
        deal_fields = [f for f in DEAL_FIELDS if f in columns]
        if deal_fields or attrs:
            staged.deals = _deals_of_events(
                st, typed, problems, [*deal_fields, *(["attributes"] if attrs else [])]
            )
        tracked = [f for f in TRACKED_FIELDS if f in columns]
        if tracked:
            staged.changes = _changes_of_events(st, typed, problems, tracked)
            staged.labels["changes"] = {
                "deal_id": columns["deal_id"],
                "changed_at": columns["entered_at"],
            }
        return staged


# Currency signs that name one currency. A bare $, ¥ or kr names several and is left
# to the mapping's or the process's currency.
_SIGNS = (
    ("US$", "USD"),
    ("R$", "BRL"),
    ("NZ$", "NZD"),
    ("A$", "AUD"),
    ("AU$", "AUD"),
    ("C$", "CAD"),
    ("CA$", "CAD"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("MX$", "MXN"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("₹", "INR"),
    ("₽", "RUB"),
    ("₩", "KRW"),
    ("₺", "TRY"),
    ("₴", "UAH"),
    ("₪", "ILS"),
    ("₱", "PHP"),
    ("₫", "VND"),
    ("฿", "THB"),
)


def _currency_of_amounts(
    st: Staging, table: str, columns: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """`table` with the currency that each amount names (an ISO code such as EUR, or a
    sign such as €), read as the currency column when the mapping names none.

    Number reading strips codes and signs; without this, '300 €' and 'EUR 300' had
    loaded as 300 in the process currency. A currency other than the process's then
    goes through the exchange rates, or the import stops asking for them."""
    amount = quote(columns["amount"])
    text = f"upper(trim(CAST({amount} AS VARCHAR)))"
    # A code stands apart from letters around it (not the 'US' of US$, nor a word).
    code = f"regexp_extract({text}, '(^|[^A-Z])([A-Z]{{3}})([^A-Z$]|$)', 2)"
    signs = " ".join(f"WHEN contains({text}, {literal(k)}) THEN {literal(v)}" for k, v in _SIGNS)
    name = f"{columns['amount']} (currency)"
    view = st.view(
        st.name("amount_currency"),
        f"SELECT *, CASE WHEN {code} <> '' THEN {code} {signs} END AS {quote(name)} "
        f"FROM {quote(table)}",
    )
    return view, {**columns, "currency": name}


def _deals_of_events(st: Staging, typed: str, problems: Problems, fields: list[str]) -> str:
    """One row per deal from an event log: each field's value on the deal's latest row
    that has one (by time, explicit order, then row); creation is the earliest
    `created_at` given."""
    order = "(entered_at, " + ("_ord, " if "_ord" in st.columns(typed) else "") + "_row)"
    aggs = []
    for f in fields:
        if f == "created_at":
            aggs.append("min(created_at) AS created_at")
        else:
            aggs.append(
                f"arg_max({quote(f)}, {order}) FILTER (WHERE {quote(f)} IS NOT NULL) AS {quote(f)}"
            )
    return st.create(
        st.name("event_deals"),
        f"SELECT deal_id, min(_src) AS _src, arg_min(_row, {order}) AS _row, "
        f"{', '.join(aggs)} FROM ({problems.clean(typed)}) WHERE deal_id IS NOT NULL "
        "GROUP BY deal_id",
    )


def _changes_of_events(st: Staging, typed: str, problems: Problems, fields: list[str]) -> str:
    """The tracked fields' changes an event log's rows show: a row whose value differs
    from the deal's value on the rows before it is a change at that row's time (from
    unknown when no earlier row had one); the deal's first row sets its values."""
    order = "entered_at, " + ("_ord, " if "_ord" in st.columns(typed) else "") + "_row"
    window = f"PARTITION BY deal_id ORDER BY {order}"
    before = f"OVER ({window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    parts = [
        f"""SELECT _src, _row, deal_id, {literal(f)} AS field,
                   CAST(last_value({quote(f)} IGNORE NULLS) {before} AS VARCHAR) AS old_value,
                   CAST({quote(f)} AS VARCHAR) AS new_value, entered_at AS changed_at,
                   CAST(NULL AS VARCHAR) AS actor_id
            FROM r QUALIFY {quote(f)} IS NOT NULL AND row_number() OVER ({window}) > 1"""
        for f in fields
    ]
    kept = f"SELECT * FROM ({problems.clean(typed)}) WHERE deal_id IS NOT NULL"
    return st.create(st.name("event_changes"), f"WITH r AS ({kept}) " + " UNION ALL ".join(parts))


def table_reader(
    path: Path, mapping_path: Path, options: ImportOptions
) -> tuple[Reader, ImportOptions]:
    """A reader for `path` mapped by `mapping_path`, and the options the mapping adjusts
    (day first, date format, time zone)."""
    mapping, lines = load_mapping(mapping_path)
    opts = replace(
        options,
        dayfirst=mapping.dayfirst if mapping.dayfirst is not None else options.dayfirst,
        date_format=mapping.date_format or options.date_format,
        timezone=mapping.timezone or options.timezone,
    )
    return _TableReader(Path(path), mapping, lines, str(mapping_path), opts), opts


def import_table(
    store: Store,
    process: Process,
    path: str | Path,
    mapping: str | Path,
    *,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a CSV, Parquet or Excel table described by a mapping file."""
    reader, opts = table_reader(Path(path), Path(mapping), options)
    return run_import(store, process, reader, source="table", options=opts, progress=progress)
