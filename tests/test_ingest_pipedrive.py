"""The Pipedrive reader on a hand-made export (tests/fixtures/ingest/pipedrive): deals
in Windows-1252 with "Deal - " headers, a deleted deal, two currencies, and a
stage-change log that is not in time order."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from funnelwise.ingest import ImportOptions
from funnelwise.ingest.pipedrive import import_pipedrive
from funnelwise.process import Process
from funnelwise.store import Store
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

PD = FIXTURES / "pipedrive"
OPTS = ImportOptions(now=NOW, fx=PD / "fx.csv")


def _project(root: Path) -> tuple[Store, Process]:
    return new_project(root, (PD / "process.yaml").read_text(encoding="utf-8"))


def test_deals_and_stage_log(tmp_path: Path) -> None:
    store, process = _project(tmp_path / "p")
    r = import_pipedrive(
        store, process, PD / "deals.csv", changes=PD / "stage-changes.csv", options=OPTS
    )
    # The first move's old stage is where the deal started, at its creation; a won
    # deal keeps its last open stage and ends in won at its Won time.
    assert history(store, "1") == [
        ("qualified", "2024-01-05 10:00"),
        ("contact-made", "2024-01-08 10:00"),
        ("proposal", "2024-01-20 10:00"),
        ("negotiation", "2024-02-01 10:00"),
        ("won", "2024-02-10 12:00"),
    ]
    assert history(store, "2") == [
        ("qualified", "2024-01-10 09:00"),
        ("proposal", "2024-01-15 09:00"),
    ]
    # No moves: the current stage from creation, then the outcome.
    assert history(store, "3") == [("qualified", "2024-01-12 09:00"), ("lost", "2024-01-20 10:00")]
    assert rows(
        store,
        "SELECT deal_id, name, outcome, amount_base, owner_id, account_id, loss_reason, "
        "expected_close_date FROM deals ORDER BY 1",
    ) == [
        (
            "1",
            "Panadería Ñandú",
            "won",
            pytest.approx(3300.0),
            "Lucía",
            "Ñandú SL",
            None,
            dt.date(2024, 2, 15),
        ),
        ("2", "Beta", None, 1000.0, "Tomás", None, None, dt.date(2024, 3, 1)),
        ("3", "Gamma", "lost", 500.0, "Lucía", None, "Sin presupuesto", dt.date(2024, 2, 1)),
    ]
    assert [(p.file, p.row, p.column, p.value) for p in r.problems] == [
        ("stage-changes.csv", 6, "Deal ID", "9")
    ]
    assert r.notes == ("deals.csv: 1 deleted deals skipped",)
    before = dump(store)
    import_pipedrive(
        store, process, PD / "deals.csv", changes=PD / "stage-changes.csv", options=OPTS
    )
    assert dump(store) == before
    store.close()


def test_deals_alone(tmp_path: Path) -> None:
    store, process = _project(tmp_path / "p")
    import_pipedrive(store, process, PD / "deals.csv", options=OPTS)
    assert history(store, "1") == [("negotiation", "2024-01-05 10:00"), ("won", "2024-02-10 12:00")]
    assert rows(store, "SELECT count(*) FROM stage_events") == [(2 + 1 + 2,)]
    store.close()
