"""The `info` summary: counts by state and the date range of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from funnelwise.ingest.quality import unknown_stages
from funnelwise.log import open_log


def log_info(project: Path | str, *, store: str | None = None) -> dict[str, Any]:
    """Deals by state, events, changes, activities, leads and the observed date range:
    the first deal created (`first_created_at`), the first lead (`first_lead_at`, only
    where there are leads) and the end of the observations.

    `unknown_stages` maps each stage id the stored events enter but the process
    does not have (renamed or removed in process.yaml since the import) to its
    number of deals; empty when every entry has its stage.
    """
    target: Path | str = project
    if store and not (Path(project) / "process.yaml").exists():
        target = store
        store = None
    log = open_log(target, store=store, read_only=True)
    try:
        record: dict[str, Any] = {"process": log.process.name, "store": log.store.url}
        record |= log.counts()
        d = log.deals
        first = d.created_at.min().execute()
        record["first_created_at"] = first
        if record.get("leads"):
            # A leads-only project (the Olist funnel) has no deal to date it by.
            record["first_lead_at"] = log.leads.created_at.min().execute()
        record["observed_until"] = log.observed_until
        record["schema_version"] = log.store.schema_version()
        record["unknown_stages"] = unknown_stages(log)
        return record
    finally:
        log.store.close()


def unknown_stages_warning(unknown: dict[str, int]) -> str | None:
    """The warning line for stage ids in the data that the process lacks (None if none)."""
    if not unknown:
        return None
    ids = ", ".join(f"'{sid}' ({n:,} deal{'s' if n != 1 else ''})" for sid, n in unknown.items())
    return (
        f"warning: the stored stage events enter stages that process.yaml does not have: {ids}. "
        "The analyses cannot place those entries (renamed or removed since the import?). "
        "In process.yaml, list each id among the aliases of the stage it now is and import "
        "the data again, or put the stage back; `funnelwise quality` counts the deals."
    )
