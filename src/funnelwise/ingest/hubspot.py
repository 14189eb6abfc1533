"""The HubSpot reader: the deals export (CSV or Excel) with stage-history columns.

One row per deal: Record ID (or Deal ID), Deal Name, Deal Stage, Pipeline,
Amount, Deal currency code, Create Date, Close Date, Deal owner, Closed Lost
Reason. For every stage of every pipeline the export can carry
`Date entered "<stage> (<pipeline>)"` (quotes optional): each filled one is a
stage entry, taken for the columns of the deal's own pipeline.

`Date exited "<stage> (<pipeline>)"` columns are read as evidence (see
`ingest.exits`): the canonical tables hold stage entries only (a deal leaves a
stage by entering the next), so an exit is not stored by itself. An exit before
its stage's entry, or after the deal's next entry, is recorded as a problem and
ignored; a stage the deal was in without an entry date (one with an exit date
only, or its current stage when the history does not end there) is entered
when the deal last left another stage before it, with no known entry in
between. `Cumulative time in` and `Latest
time in` columns are derived from the dates and not read.

Close Date is the close of a closed deal and the expected close of an open
one. Other columns become deal attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from funnelwise.errors import SourceImportError
from funnelwise.ingest.assemble import Staged
from funnelwise.ingest.exits import exit_evidence
from funnelwise.ingest.importer import ImportOptions, Reader, run_import
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.parsing import Field, source_field, typed_table
from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.table import with_attributes
from funnelwise.ingest.validate import Problems
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.store import Store

_STAGE_DATE = re.compile(
    r'^Date (?P<kind>entered|exited)\s+"?(?P<stage>.+?)\s*\((?P<pipeline>[^()]+)\)"?\s*$', re.I
)
_DERIVED = re.compile(r"^(Cumulative time in|Latest time in)\b", re.I)
COLUMNS = {
    "deal_id": ("Record ID", "Deal ID", "Record ID - Deal", "hs_object_id"),
    "name": ("Deal Name", "dealname"),
    "stage": ("Deal Stage", "dealstage"),
    "pipeline": ("Pipeline",),
    "amount": ("Amount",),
    "currency": ("Deal currency code", "Currency"),
    "created_at": ("Create Date", "createdate"),
    "_close": ("Close Date", "closedate"),
    "owner_id": ("Deal owner", "Deal Owner", "hubspot_owner_id"),
    "account_id": ("Associated Company", "Associated Company IDs", "Company name"),
    "loss_reason": ("Closed Lost Reason", "closed_lost_reason"),
    "source": ("Original Source Type", "Original Source", "Source"),
}
KINDS = {"amount": "number", "created_at": "timestamp", "_close": "date"}


@dataclass(frozen=True)
class _StageDate:
    column: str
    stage: str
    pipeline: str


def _key(text: str) -> str:
    """SQL folding a pipeline name the way the export and the deal column may differ."""
    return f"strip_accents(lower(trim({text})))"


class _HubSpotReader:
    def __init__(self, path: Path, options: ImportOptions) -> None:
        self.path = path
        self.options = options

    def __call__(self, st: Staging, problems: Problems) -> Staged:
        src = st.read(self.path, encoding=self.options.encoding)
        cols = {name: src.pick(*names) for name, names in COLUMNS.items()}
        missing = [COLUMNS[n][0] for n in ("deal_id", "stage", "created_at") if not cols[n]]
        if missing:
            raise SourceImportError(
                f"{src.name} is not a HubSpot deals export: it lacks {', '.join(missing)}. "
                f"Its columns: {', '.join(src.columns)}"
            )
        dated = {
            c: (m["kind"].lower(), _StageDate(c, m["stage"], m["pipeline"]))
            for c in src.columns
            if (m := _STAGE_DATE.match(c)) is not None
        }
        entered = [d for kind, d in dated.values() if kind == "entered"]
        exited = [d for kind, d in dated.values() if kind == "exited"]
        used = {c for c in cols.values() if c} | set(dated)
        rest = [c for c in src.columns if c not in used and not _DERIVED.match(c)]
        table, attr_fields = with_attributes(st, src.table, [(c, c) for c in rest])
        fields = [
            source_field(
                src,
                name,
                *names,
                kind=KINDS.get(name, "text"),  # type: ignore[arg-type]
                required=name in ("deal_id", "stage", "created_at"),
            )
            for name, names in COLUMNS.items()
        ]
        fields += [Field(f"_entered_{i}", e.column, "timestamp") for i, e in enumerate(entered)]
        fields += [Field(f"_exited_{i}", e.column, "timestamp") for i, e in enumerate(exited)]
        fields += attr_fields
        typed = typed_table(st, table, fields, problems, src=0, options=self.options.reading())
        deals = st.view(
            st.name("hs_deals"),
            f"""SELECT * EXCLUDE (_close), _close AS expected_close_date,
                       CAST(_close AS TIMESTAMP) AS closed_at
                FROM {quote(typed)}""",
        )
        staged = Staged(source="hubspot", deals=deals)
        labels = {n: c for n, c in cols.items() if c} | {"closed_at": cols["_close"] or ""}
        staged.labels = {
            "deals": labels,
            "events": {"deal_id": labels["deal_id"], "entered_at": "Date entered"},
        }
        entries = _long(st, typed, "entered", entered)
        if exited:
            exits = _long(st, typed, "exited", exited)
            assert exits is not None
            none = (
                "SELECT NULL::BIGINT AS _src, NULL::BIGINT AS _row, NULL::VARCHAR AS deal_id, "
                "NULL::VARCHAR AS stage, NULL::TIMESTAMP AS entered_at WHERE false"
            )
            known = entries or st.view(st.name("hs_no_entries"), none)
            inferred = exit_evidence(st, problems, known, exits, typed)
            entries = st.view(
                st.name("hs_all_entries"),
                f"SELECT * FROM {quote(known)} UNION ALL SELECT * FROM {quote(inferred)}",
            )
        staged.events = entries
        return staged


def _long(st: Staging, typed: str, kind: str, dated: list[_StageDate]) -> str | None:
    """One row per filled `Date <kind>` value: _src, _row, deal_id, stage, <kind>_at
    (and, for exits, the source column). A deal's own pipeline's columns only; with no
    pipeline, any column."""
    if not dated:
        return None
    parts = [
        f"""SELECT _src, _row, deal_id, {literal(d.stage)} AS stage, _{kind}_{i} AS {kind}_at
                   {f", {literal(d.column)} AS _column" if kind == "exited" else ""}
            FROM {quote(typed)}
            WHERE _{kind}_{i} IS NOT NULL
              AND (pipeline IS NULL OR {_key("pipeline")} = {_key(literal(d.pipeline))})"""
        for i, d in enumerate(dated)
    ]
    return st.view(st.name(f"hs_{kind}"), " UNION ALL ".join(parts))


def import_hubspot(
    store: Store,
    process: Process,
    path: str | Path,
    *,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a HubSpot deals export with its "Date entered" stage columns."""
    reader: Reader = _HubSpotReader(Path(path), options)
    return run_import(store, process, reader, source="hubspot", options=options, progress=progress)
