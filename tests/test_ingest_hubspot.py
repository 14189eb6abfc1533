"""The HubSpot reader on a hand-made deals export (tests/fixtures/ingest/hubspot):
UTF-8 with a byte-order mark, two pipelines, "Date entered" columns, a description
with a line break, two currencies."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.hubspot import import_hubspot
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

HS = FIXTURES / "hubspot"
OPTS = ImportOptions(now=NOW, fx=HS / "fx.csv")


def _project(tmp_path: Path):  # type: ignore[no-untyped-def]
    return new_project(tmp_path / "p", (HS / "process.yaml").read_text(encoding="utf-8"))


def test_export_hand_computed(tmp_path: Path) -> None:
    store, process = _project(tmp_path)
    r = import_hubspot(store, process, HS / "hubspot-deals.csv", options=OPTS)
    assert history(store, "101") == [
        ("lead", "2024-01-02 10:00"),
        ("qualification", "2024-01-05 12:00"),
        ("proposal", "2024-01-20 09:00"),
        ("closing", "2024-02-01 15:00"),
        ("won", "2024-02-15 11:30"),
    ]
    assert history(store, "102") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-03 08:00"),
        ("proposal", "2024-03-10 08:00"),
    ]
    # The Sales Pipeline column filled for the renewal deal belongs to another pipeline.
    assert history(store, "103") == [
        ("up-for-renewal", "2024-01-10 09:00"),
        ("renewed", "2024-02-01 17:00"),
    ]
    assert history(store, "104") == [("lead", "2024-02-01 09:00"), ("lost", "2024-02-20 16:00")]
    assert rows(
        store,
        "SELECT deal_id, pipeline_id, name, outcome, amount_base, owner_id, closed_at, "
        "expected_close_date, loss_reason, attributes FROM deals ORDER BY 1",
    ) == [
        (
            "101",
            "new-business",
            "Acme — expansión",
            "won",
            pytest.approx(5500.0),
            "Ana Pérez",
            dt.datetime(2024, 2, 15, 11, 30),
            dt.date(2024, 2, 15),
            None,
            '{"Deal Description":"Línea uno\\nLínea dos, con coma"}',
        ),
        (
            "102",
            "new-business",
            "Beta",
            None,
            2000.0,
            "Bob",
            None,
            dt.date(2024, 4, 30),
            None,
            None,
        ),
        (
            "103",
            "renewals",
            "Gamma renewal",
            "won",
            1200.0,
            "Ana Pérez",
            dt.datetime(2024, 2, 1, 17),
            dt.date(2024, 2, 1),
            None,
            None,
        ),
        (
            "104",
            "new-business",
            "Delta",
            "lost",
            800.0,
            "Bob",
            dt.datetime(2024, 2, 20, 16),
            dt.date(2024, 2, 20),
            "Precio",
            None,
        ),
    ]
    assert r.n_problems == 0
    before = dump(store)
    import_hubspot(store, process, HS / "hubspot-deals.csv", options=OPTS)
    assert dump(store) == before
    store.close()


def test_unknown_pipeline_and_stage_names(tmp_path: Path) -> None:
    store, _ = new_project(tmp_path / "p")  # the bundled process knows neither
    from funnelwise.process import load_process

    bundled = load_process(tmp_path / "p" / "process.yaml")
    with pytest.raises(
        SourceImportError, match=r"pipelines not in process\.yaml: 'Sales Pipeline'"
    ):
        import_hubspot(store, bundled, HS / "hubspot-deals.csv", options=OPTS)
    store.close()
    store, process = _project(tmp_path / "q")
    text = (HS / "hubspot-deals.csv").read_text(encoding="utf-8-sig")
    (tmp_path / "d.csv").write_text(text.replace("Presentation Scheduled,", "Demo Given,", 1))
    with pytest.raises(SourceImportError, match=r"'Demo Given' \(1 rows, pipeline new-business"):
        import_hubspot(store, process, tmp_path / "d.csv", options=replace(OPTS))
    store.close()


def test_exit_dates_infer_missing_entries_and_flag_conflicts(tmp_path: Path) -> None:
    """hubspot-exits.csv: six deals of the Sales Pipeline with "Date exited" columns."""
    store, process = _project(tmp_path)
    r = import_hubspot(store, process, HS / "hubspot-exits.csv", options=OPTS)
    # 201 left Qualified To Buy on 03-05 10:00 into its current stage, which has no
    # entry date: entered then (not at its last entry, 03-02, as without exits).
    assert history(store, "201") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-02 08:00"),
        ("proposal", "2024-03-05 10:00"),
    ]
    # 202: Qualified To Buy has an exit only (03-06 09:00); the deal last left another
    # stage before it on 03-03 09:00 (Appointment Scheduled). The current stage follows
    # the last exit, 03-06 09:00.
    assert history(store, "202") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-03 09:00"),
        ("proposal", "2024-03-06 09:00"),
    ]
    # 203: the exit of Appointment Scheduled (02-28) is before its entry (03-01): ignored.
    assert history(store, "203") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-04 08:00"),
        ("won", "2024-03-10 12:00"),
    ]
    # 204: the exit of Appointment Scheduled (03-09) is after the next entry (03-05):
    # ignored. Qualified To Buy was left on 03-12 08:00 into Closed Lost, which has no
    # entry column filled: the loss is dated then, not at the Close Date's midnight.
    assert history(store, "204") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-05 08:00"),
        ("lost", "2024-03-12 08:00"),
    ]
    assert history(store, "205") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-02 08:00"),
    ]
    # 206 is back in Appointment Scheduled, whose entry date is its first: it went back
    # when it left Qualified To Buy (03-07 08:00).
    assert history(store, "206") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-02 08:00"),
        ("lead", "2024-03-07 08:00"),
    ]
    assert rows(
        store, "SELECT deal_id, outcome, closed_at FROM deals WHERE outcome IS NOT NULL ORDER BY 1"
    ) == [
        ("203", "won", dt.datetime(2024, 3, 10, 12)),
        ("204", "lost", dt.datetime(2024, 3, 12, 8)),
    ]
    exited = 'Date exited "Appointment Scheduled (Sales Pipeline)"'
    assert [(p.row, p.column, p.value, p.reason, p.quarantined) for p in r.problems] == [
        (
            4,
            exited,
            "2024-02-28 08:00:00",
            "is before the deal entered Appointment Scheduled (2024-03-01 08:00); ignored",
            False,
        ),
        (
            5,
            exited,
            "2024-03-09 08:00:00",
            "is after the deal entered Qualified To Buy (2024-03-05 08:00), the stage after "
            "Appointment Scheduled; ignored",
            False,
        ),
    ]
    assert [g.code for g in r.problem_groups] == ["exit before entry", "exit after next entry"]
    before = dump(store)
    import_hubspot(store, process, HS / "hubspot-exits.csv", options=OPTS)
    assert dump(store) == before
    store.close()


def test_an_exit_before_a_later_entry_closes_an_earlier_visit(tmp_path: Path) -> None:
    """207 went back to Appointment Scheduled on 03-05: the export keeps that entry and
    the exit of the first visit (03-02), after the deal began (created 03-01). No
    problem; a note says the earlier visit is not in the history."""
    text = (HS / "hubspot-exits.csv").read_text(encoding="utf-8")
    revisit = (
        "207,Came back,Appointment Scheduled,Sales Pipeline,700,2024-03-01 08:00,2024-04-30,"
        "Ana,2024-03-05 08:00,2024-03-02 08:00,2024-03-02 08:00,2024-03-05 08:00,,,,\n"
        # 208 left Appointment Scheduled on 03-04 for a stage the export has no column
        # for and came back on 03-10: its exit is before every kept entry, but after
        # the deal's creation (03-01).
        "208,Round trip,Appointment Scheduled,Sales Pipeline,800,2024-03-01 08:00,2024-04-30,"
        "Ana,2024-03-10 08:00,2024-03-04 08:00,,,,,,\n"
    )
    (tmp_path / "revisit.csv").write_text(text + revisit, encoding="utf-8")
    store, process = _project(tmp_path)
    r = import_hubspot(store, process, tmp_path / "revisit.csv", options=OPTS)
    assert history(store, "207") == [
        ("qualification", "2024-03-02 08:00"),
        ("lead", "2024-03-05 08:00"),
    ]
    assert not [p for p in r.problems if p.row in (8, 9)]
    # 203's exit, before the deal's first entry, is still a problem.
    assert [g.code for g in r.problem_groups] == ["exit before entry", "exit after next entry"]
    assert "2 exit dates close an earlier visit to their stage" in " ".join(r.notes)
    store.close()


def test_without_exit_columns_the_current_stage_follows_the_last_entry(tmp_path: Path) -> None:
    """The same export without its "Date exited" columns: 201's current stage is dated at
    its last entry (03-02 08:00), 204's loss at its Close Date, 206's return at its last
    entry."""
    frame = pd.read_csv(HS / "hubspot-exits.csv", dtype=str, keep_default_na=False)
    frame = frame[[c for c in frame.columns if not c.startswith("Date exited")]]
    frame.to_csv(tmp_path / "entries.csv", index=False)
    store, process = _project(tmp_path)
    r = import_hubspot(store, process, tmp_path / "entries.csv", options=OPTS)
    assert r.n_problems == 0
    assert history(store, "201")[-1] == ("proposal", "2024-03-02 08:00")
    assert history(store, "204")[-1] == ("lost", "2024-03-12 00:00")
    assert history(store, "206")[-1] == ("lead", "2024-03-02 08:00")
    store.close()
