"""Helpers shared by the tests of funnelwise.ingest: a fresh project, table dumps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from funnelwise.process import Process, template_text
from funnelwise.project import Project
from funnelwise.store import Store

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ingest"
NOW = pd.Timestamp("2025-01-01")  # "now" for the future-date checks of the fixtures


def new_project(root: Path, process_text: str | None = None) -> tuple[Store, Process]:
    """A project in `root` with the bundled process (or `process_text`), opened."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "process.yaml").write_text(process_text or template_text(), encoding="utf-8")
    project = Project(root)
    return project.open_store(create=True), project.load_process()


def rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    """All rows of a query on the store."""
    return [tuple(r) for r in store.raw.execute(sql).fetchall()]


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """The loaded content of the store, sorted, without import ids (origin), so two
    stores loaded from differently ordered inputs compare equal."""
    return {
        "deals": rows(
            store,
            "SELECT * EXCLUDE (origin, version, attributes), attributes FROM deals "
            "ORDER BY deal_id",
        ),
        "stage_events": rows(
            store,
            "SELECT deal_id, stage_id, entered_at, actor_id, "
            "row_number() OVER (PARTITION BY deal_id ORDER BY entered_at, seq) AS step "
            "FROM stage_events ORDER BY deal_id, step",
        ),
        "deal_changes": rows(store, "SELECT * EXCLUDE (origin) FROM deal_changes ORDER BY ALL"),
        "activities": rows(store, "SELECT * EXCLUDE (origin) FROM activities ORDER BY ALL"),
        "leads": rows(store, "SELECT * EXCLUDE (origin) FROM leads ORDER BY ALL"),
    }


def history(store: Store, deal_id: str) -> list[tuple[str, str]]:
    """(stage_id, entered_at as 'YYYY-MM-DD HH:MM') of a deal, in order."""
    return [
        (str(s), pd.Timestamp(t).strftime("%Y-%m-%d %H:%M"))  # type: ignore[arg-type]
        for s, t in rows(
            store,
            f"SELECT stage_id, entered_at FROM stage_events WHERE deal_id = '{deal_id}' "
            "ORDER BY entered_at, seq",
        )
    ]
