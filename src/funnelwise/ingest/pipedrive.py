"""The Pipedrive reader: the deals export plus an optional stage-change log.

Deals (CSV or Excel; headers with or without the "Deal - " prefix): ID, Title,
Value, Currency, Pipeline, Stage, Status (open / won / lost; deleted deals are
skipped), Deal created, Won time, Lost time, Expected close date, Owner, Lost
reason, Organization. A won or lost deal keeps the stage it was in as Stage
and closes at its Won or Lost time.

The stage-change log has one row per move: deal id, old stage, new stage, time
(the usual header names are recognised). Each move is an entry into the new
stage; the old stage of a deal's first move is where the deal started, at its
creation. Without a log, a deal has what the export knows: its current stage
from creation and its outcome at the close.
"""

from __future__ import annotations

from pathlib import Path

from funnelwise.errors import SourceImportError
from funnelwise.ingest.assemble import Staged
from funnelwise.ingest.importer import ImportOptions, Reader, run_import
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.parsing import Field, Kind, typed_table
from funnelwise.ingest.staging import SourceFile, Staging, quote
from funnelwise.ingest.validate import Problems
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.store import Store

DEAL_COLUMNS = {
    "deal_id": ("ID",),
    "name": ("Title",),
    "amount": ("Value",),
    "currency": ("Currency",),
    "pipeline": ("Pipeline",),
    "stage": ("Stage",),
    "_status": ("Status",),
    "created_at": ("Deal created", "Add time", "Created"),
    "_won": ("Won time",),
    "_lost": ("Lost time",),
    "_closed": ("Close time", "Closed on"),
    "expected_close_date": ("Expected close date",),
    "owner_id": ("Owner", "Owner name", "User"),
    "loss_reason": ("Lost reason",),
    "account_id": ("Organization", "Organization name"),
}
KINDS: dict[str, Kind] = {
    "amount": "number",
    "created_at": "timestamp",
    "_won": "timestamp",
    "_lost": "timestamp",
    "_closed": "timestamp",
    "expected_close_date": "date",
}
LOG_COLUMNS = {
    "_ref": ("Deal ID", "Deal - ID", "deal_id", "ID"),
    "_old": ("Old stage", "From stage", "old_stage", "Previous stage", "Old value"),
    "stage": ("New stage", "To stage", "new_stage", "Stage", "New value"),
    "entered_at": ("Time", "Change time", "Update time", "Timestamp", "Date", "time"),
    "actor_id": ("User", "Changed by", "user"),
}
REQUIRED = ("deal_id", "stage", "created_at")


def _fields(
    src: SourceFile,
    spec: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
    kinds: dict[str, Kind],
) -> list[Field]:
    """Fields from the first known header of each, with or without "Deal - "."""
    plain = {c.removeprefix("Deal - ").strip().lower(): c for c in src.columns}
    fields = [
        Field(
            name,
            next((plain[n.lower()] for n in names if n.lower() in plain), None),
            kinds.get(name, "text"),
            name in required,
        )
        for name, names in spec.items()
    ]
    missing = [spec[f.name][0] for f in fields if f.required and f.column is None]
    if missing:
        raise SourceImportError(
            f"{src.name} lacks {', '.join(missing)}; export it with its default columns. "
            f"Its columns: {', '.join(src.columns)}"
        )
    return fields


class _PipedriveReader:
    def __init__(self, deals: Path, changes: Path | None, options: ImportOptions) -> None:
        self.deals = deals
        self.changes = changes
        self.options = options

    def __call__(self, st: Staging, problems: Problems) -> Staged:
        src = st.read(self.deals, encoding=self.options.encoding)
        fields = _fields(src, DEAL_COLUMNS, REQUIRED, KINDS)
        status = next(f.column for f in fields if f.name == "_status")
        where = None
        if status is not None:
            where = f"lower(trim(coalesce({quote(status)}, ''))) <> 'deleted'"
            deleted = st.scalar(f"SELECT count(*) FROM {quote(src.table)} WHERE NOT ({where})")
            if deleted:
                st.notes.append(f"{src.name}: {deleted} deleted deals skipped")
        typed = typed_table(
            st, src.table, fields, problems, src=0, options=self.options.reading(), where=where
        )
        deals = st.view(
            st.name("pd_deals"),
            f"""SELECT * EXCLUDE (_status, _won, _lost, _closed), _status AS outcome,
                       CASE lower(_status) WHEN 'won' THEN coalesce(_won, _closed)
                            WHEN 'lost' THEN coalesce(_lost, _closed) END AS closed_at
                FROM {quote(typed)}""",
        )
        labels = {f.name: f.column for f in fields if f.column}
        labels["closed_at"] = labels.get("_won", "Won time")
        staged = Staged(source="pipedrive", deals=deals)
        staged.labels = {"deals": labels}
        if self.changes is not None:
            staged.events, log = self._log(st, problems, typed)
            staged.labels["events"] = {
                "deal_id": log["_ref"],
                "entered_at": log["entered_at"],
                "stage": log["stage"],
            }
        return staged

    def _log(self, st: Staging, problems: Problems, deals: str) -> tuple[str, dict[str, str]]:
        """Stage entries from the change log, and its column names."""
        assert self.changes is not None
        src = st.read(self.changes, encoding=self.options.encoding)
        idx = len(st.files) - 1
        fields = _fields(
            src, LOG_COLUMNS, ("_ref", "stage", "entered_at"), {"entered_at": "timestamp"}
        )
        typed = typed_table(
            st, src.table, fields, problems, src=idx, options=self.options.reading()
        )
        # The first move's old stage is the stage the deal started in, at its creation.
        labels = {f.name: f.column or f.name for f in fields}
        return st.view(
            st.name("pd_events"),
            f"""WITH moves AS (
                    SELECT *, _ref AS deal_id,
                           row_number() OVER (PARTITION BY _ref ORDER BY entered_at, _row) AS _n
                    FROM {quote(typed)})
                SELECT _src, _row, deal_id, stage, entered_at, actor_id FROM moves
                UNION ALL
                SELECT m._src, m._row, m.deal_id, m._old, least(d.created_at, m.entered_at),
                       NULL
                FROM moves m JOIN {quote(deals)} d ON d.deal_id = m.deal_id
                WHERE m._n = 1 AND m._old IS NOT NULL""",
        ), labels


def import_pipedrive(
    store: Store,
    process: Process,
    deals: str | Path,
    *,
    changes: str | Path | None = None,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a Pipedrive deals export, with its stage-change log when given."""
    reader: Reader = _PipedriveReader(
        Path(deals), Path(changes) if changes is not None else None, options
    )
    return run_import(
        store, process, reader, source="pipedrive", options=options, progress=progress
    )
