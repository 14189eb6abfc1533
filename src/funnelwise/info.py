"""The `info` summary: counts by state and the date range of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from funnelwise.log import open_log


def log_info(project: Path | str, *, store: str | None = None) -> dict[str, Any]:
    """Deals by state, events, changes, activities, leads and the observed date range."""
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
        record["observed_until"] = log.observed_until
        record["schema_version"] = log.store.schema_version()
        return record
    finally:
        log.store.close()
