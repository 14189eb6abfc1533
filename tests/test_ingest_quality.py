"""The data-quality report on the tiny log plus three deals with known faults."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

import funnelwise as fw
from analytics_data import without_stage
from funnelwise.ingest.quality import quality_report


def _faulty(tiny_project: Path, tmp_path: Path) -> Path:
    """tiny + D6 (open, no amount, no close date, no history), D7 (won, but its last
    entry is lead), D8 (open, close date passed, last entry lost) + one checklist row."""
    root = tmp_path / "faulty"
    shutil.copytree(tiny_project, root)
    log = fw.open(root)
    store = log.store
    deals = pd.DataFrame(
        [
            ("D6", None, None, "2024-02-10", None, None),
            ("D7", 50.0, "2024-02-01", "2024-02-01", "2024-02-20", "won"),
            ("D8", 10.0, "2024-02-15", "2024-02-01", None, None),
        ],
        columns=["deal_id", "amount", "expected_close_date", "created_at", "closed_at", "outcome"],
    )
    deals["pipeline_id"] = "new-business"
    deals["version"] = 1
    deals["created_at"] = pd.to_datetime(deals["created_at"])
    deals["closed_at"] = pd.to_datetime(deals["closed_at"])
    deals["expected_close_date"] = pd.to_datetime(deals["expected_close_date"]).dt.date
    events = pd.DataFrame(
        [
            ("D7", "lead", pd.Timestamp("2024-02-05"), 0),
            ("D8", "lead", pd.Timestamp("2024-02-01"), 0),
            ("D8", "lost", pd.Timestamp("2024-02-10"), 1),
        ],
        columns=["deal_id", "stage_id", "entered_at", "seq"],
    )
    checklist = pd.DataFrame(
        [("D1", "lead", "First conversation held", pd.Timestamp("2024-01-03"))],
        columns=["deal_id", "stage_id", "criterion", "done_at"],
    )
    with store.transaction():
        store.insert("deals", deals)
        store.insert("stage_events", events)
        store.insert("checklist", checklist)
    store.close()
    return root


def test_issues_fields_and_checklist(tiny_project: Path, tmp_path: Path) -> None:
    log = fw.open(_faulty(tiny_project, tmp_path))
    report = quality_report(log)
    issues = report.issues.set_index("check")
    # 8 deals; open: D3, D4, D6, D8; closed: D1, D2, D5, D7. Now is 2024-03-01.
    expected = {
        "missing amount": (1, 8, ["D6"]),
        "open, no expected close date": (1, 4, ["D6"]),
        "open, expected close date passed": (1, 4, ["D8"]),
        "no stage history": (1, 8, ["D6"]),
        "stage entries into stages not in the process": (0, 8, []),
        "closed, last entry not its outcome": (1, 4, ["D7"]),
        "open, last entry an outcome": (1, 4, ["D8"]),
        "closed, no close time": (0, 4, []),
    }
    assert list(issues.index) == list(expected)
    for check, (deals, of, examples) in expected.items():
        row = issues.loc[check]
        assert (row["deals"], row["of"], list(row["examples"])) == (deals, of, examples), check
    assert issues.loc["missing amount", "share"] == 1 / 8
    # Passed lead: D1..D4 (D5 and D8 ended from lead, D7 never left it); all have a source.
    fields = report.fields.set_index(["stage_id", "field"])
    assert fields.loc[("lead", "source"), ["passed", "filled"]].tolist() == [4, 4]
    assert fields.loc[("qualification", "amount"), ["passed", "filled"]].tolist() == [2, 2]
    assert fields.loc[("needs-assessment", "product"), ["passed", "filled"]].tolist() == [1, 0]
    checklist = report.checklist.set_index(["stage_id", "criterion"])
    assert checklist.loc[("lead", "First conversation held"), ["passed", "done"]].tolist() == [4, 1]
    assert checklist.loc[("proposal", "Proposal presented"), ["passed", "done"]].tolist() == [1, 0]
    log.store.close()


def test_a_clean_log_has_no_issues(tiny_log: fw.EventLog) -> None:
    issues = quality_report(tiny_log).issues
    assert issues["deals"].sum() == 0
    assert issues.set_index("check").loc["no stage history", "of"] == 5


def test_entries_into_a_stage_the_process_no_longer_has(tiny_project: Path, tmp_path: Path) -> None:
    # process.yaml drops needs-assessment; D3 entered it 01-20 (and went back to
    # qualification 02-01). Nothing else is wrong with the tiny log.
    log = fw.open(without_stage(tiny_project, tmp_path, "needs-assessment"))
    try:
        report = quality_report(log)
    finally:
        log.store.close()
    issues = report.issues.set_index("check")
    row = issues.loc["stage entries into stages not in the process"]
    assert (row["deals"], row["of"], list(row["examples"])) == (1, 5, ["D3"])
    assert row["share"] == 1 / 5 and issues["deals"].sum() == 1
    assert report.meta["unknown_stages"] == {"needs-assessment": 1}
    assert "needs-assessment" not in set(report.stages["stage_id"])


def test_a_clean_log_enters_only_stages_of_its_process(tiny_log: fw.EventLog) -> None:
    assert quality_report(tiny_log).meta["unknown_stages"] == {}
