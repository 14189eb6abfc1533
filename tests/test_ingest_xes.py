"""The XES reader on a hand-made log (tests/fixtures/ingest/xes/small.xes) and, when
present, on the BPI Challenge 2012 log with the example process."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_data
from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.xes import XesOptions, import_xes
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

SMALL = FIXTURES / "xes" / "small.xes"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
OPTS = ImportOptions(now=NOW)
AMOUNT = XesOptions(amount_attribute="Amount")


def test_small_log_hand_computed(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, SMALL, xes=AMOUNT, options=OPTS)
    # Times are converted to UTC: C1's offsets are +01:00.
    assert history(store, "C1") == [
        ("lead", "2024-01-01 08:00"),
        ("qualification", "2024-01-03 11:00"),  # "Qualified" at the same time repeats it
        ("proposal", "2024-01-03 11:00"),  # a tie, kept in file order
        ("won", "2024-01-20 15:00"),
    ]
    # C2's events are out of order in the file; its unreadable Qualify is set aside.
    assert history(store, "C2") == [("lead", "2024-01-04 08:00")]
    assert history(store, "C3") == [("lead", "2024-01-06 08:00"), ("lost", "2024-01-09 08:00")]
    assert rows(
        store,
        "SELECT deal_id, outcome, amount, owner_id, attributes, created_at, closed_at "
        "FROM deals ORDER BY 1",
    ) == [
        (
            "C1",
            "won",
            1500.5,
            "ana",
            '{"Segment":"Pymes"}',
            pd.Timestamp("2024-01-01 08:00").to_pydatetime(),
            pd.Timestamp("2024-01-20 15:00").to_pydatetime(),
        ),
        ("C2", None, 200.0, None, None, pd.Timestamp("2024-01-04 08:00").to_pydatetime(), None),
        (
            "C3",
            "lost",
            None,
            None,
            None,
            pd.Timestamp("2024-01-06 08:00").to_pydatetime(),
            pd.Timestamp("2024-01-09 08:00").to_pydatetime(),
        ),
    ]
    # Events that are not stage entries are activities named after them; a completed
    # activity gets the minutes since its start.
    assert rows(
        store, "SELECT activity_id, kind, owner_id, duration_min FROM activities ORDER BY 1"
    ) == [
        ("C1:1:start", "Call", None, None),
        ("C1:2:complete", "Call", "ana", 30.0),
        ("C1:4:complete", "Qualified", None, None),
        ("C2:0:complete", "Email", None, None),
    ]
    # 12 events: 7 stage entries + 4 activities + 1 quarantined.
    assert r.counts["stage_events"].loaded == 7
    assert r.counts["activities"].loaded == 4
    assert r.n_quarantined == 1
    (problem,) = r.problems
    assert (problem.row, problem.column, problem.value) == (63, "timestamp", "not a time")
    assert r.observed_until == pd.Timestamp("2024-01-20 15:00")
    again = import_xes(store, process, SMALL, xes=AMOUNT, options=OPTS)
    assert {t: c.loaded for t, c in again.counts.items()} == {
        "deals": 0,
        "stage_events": 0,
        "activities": 0,
    }
    store.close()


def test_gzip_reads_like_plain(tmp_path: Path) -> None:
    packed = tmp_path / "small.xes.gz"
    with SMALL.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    dumps = []
    for name, path in (("plain", SMALL), ("gzip", packed)):
        store, process = new_project(tmp_path / name)
        import_xes(store, process, path, xes=AMOUNT, options=OPTS)
        dumps.append(dump(store))
        store.close()
    assert dumps[0] == dumps[1]


def test_a_truncated_gzip_is_named_as_such(tmp_path: Path) -> None:
    packed = tmp_path / "small.xes.gz"
    with SMALL.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    data = packed.read_bytes()
    for name, cut in (("tail", data[:-20]), ("half", data[: len(data) // 2])):
        bad = tmp_path / f"{name}.xes.gz"
        bad.write_bytes(cut)
        store, process = new_project(tmp_path / name)
        with pytest.raises(SourceImportError, match=rf"{name}.xes.gz: the gzip file is trunc"):
            import_xes(store, process, bad, xes=AMOUNT, options=OPTS)
        assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
        store.close()
    # On the command line: the message and the import error's exit code, not "Aborted.".
    from typer.testing import CliRunner

    from funnelwise.cli import app

    root = tmp_path / "cli"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    result = CliRunner().invoke(
        app, ["--project", str(root), "import", "xes", str(tmp_path / "half.xes.gz")]
    )
    assert result.exit_code == 5, result.output
    assert "the gzip file is truncated or corrupt" in " ".join(result.output.split())


def test_an_unreadable_amount_is_noted_and_the_deal_kept(tmp_path: Path) -> None:
    # C2's amount "200" becomes text no parser would read as a number.
    odd = tmp_path / "odd.xes"
    text = SMALL.read_text()
    assert text.count('value="200"') == 1
    odd.write_text(text.replace('value="200"', 'value="€1.000,50 approx"'))
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, odd, xes=AMOUNT, options=OPTS)
    assert rows(store, "SELECT amount FROM deals WHERE deal_id = 'C2'") == [(None,)]
    (note,) = [p for p in r.problems if p.column == "Amount"]
    assert (note.value, note.quarantined) == ("€1.000,50 approx", False)
    assert "is not a number" in note.reason
    store.close()


def test_broken_xml_names_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xes"
    broken.write_text(SMALL.read_text().replace("</trace>\n  <trace>", "</trace>\n  <trace", 1))
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError, match=r"broken.xes line \d+: not well-formed XML"):
        import_xes(store, process, broken, xes=AMOUNT, options=OPTS)
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
    store.close()


@pytest.mark.shared_data
def test_bpi_challenge_2012(tmp_path: Path) -> None:
    log = shared_data("bpic2012", "BPI_Challenge_2012.xes.gz")
    root = tmp_path / "bpi"
    root.mkdir()
    shutil.copy(EXAMPLES / "bpic2012" / "process.yaml", root / "process.yaml")
    from funnelwise.project import Project

    project = Project(root)
    store = project.open_store(create=True)
    r = import_xes(
        store, project.load_process(), log, xes=XesOptions(amount_attribute="AMOUNT_REQ")
    )
    assert rows(
        store, "SELECT coalesce(outcome, 'open'), count(*) FROM deals GROUP BY 1 ORDER BY 1"
    ) == [("lost", 7635), ("no_decision", 2807), ("open", 399), ("won", 2246)]
    # Every one of the 262,200 events is a stage entry or an activity.
    entries = r.counts["stage_events"].loaded
    activities = r.counts["activities"].loaded
    assert entries + activities == 262_200
    assert r.n_quarantined == 0
    assert rows(store, "SELECT count(*), count(amount) FROM deals") == [(13087, 13087)]
    # Each closed deal's last entry is its outcome, at its close time.
    assert rows(
        store,
        "SELECT count(*) FROM deals d JOIN (SELECT deal_id, arg_max(stage_id, (entered_at, seq)) "
        "AS last, max(entered_at) AS at FROM stage_events GROUP BY 1) e USING (deal_id) "
        "WHERE d.outcome IS NOT NULL AND (e.at <> d.closed_at OR e.last NOT IN "
        "('approved', 'declined', 'cancelled'))",
    ) == [(0,)]
    assert store.meta("observed_until") == "2012-03-14T15:04:54.681000"
    store.close()


def test_a_repeated_case_id_joins_one_deal(tmp_path: Path) -> None:
    log = tmp_path / "twice.xes"
    event = (
        '<event><string key="concept:name" value="{0}"/>'
        '<date key="time:timestamp" value="{1}"/></event>'
    )
    log.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<log>\n'
        '<trace><string key="concept:name" value="A"/><float key="Amount" value="5"/>\n'
        + event.format("Prospecting", "2024-01-01T00:00:00Z")
        + "\n</trace>\n"
        '<trace><string key="concept:name" value="A"/><float key="Amount" value="7"/>\n'
        + event.format("Call", "2024-01-02T00:00:00Z")
        + "\n"
        + event.format("Closed Won", "2024-01-03T00:00:00Z")
        + "\n</trace>\n</log>\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, log, xes=AMOUNT, options=OPTS)
    # The second trace's events join deal A; its own amount gives way to the first's.
    assert rows(store, "SELECT deal_id, amount, outcome FROM deals") == [("A", 5.0, "won")]
    assert history(store, "A") == [("lead", "2024-01-01 00:00"), ("won", "2024-01-03 00:00")]
    assert rows(store, "SELECT activity_id FROM activities") == [("A:1:complete",)]
    assert [(p.row, p.quarantined) for p in r.problems] == [(6, False)]
    store.close()


def test_suggest_mapping_lists_the_activity_names(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    fragment = tmp_path / "fragment.yaml"
    opts = ImportOptions(now=NOW, suggest_mapping=fragment)
    r = import_xes(store, process, SMALL, xes=AMOUNT, options=opts)
    assert not r.loaded
    text = fragment.read_text()
    # Call (3 transitions) and Email are activities now; mapping them makes them stages.
    assert "'Call': 2 rows" in text and "'Email': 1 rows" in text
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
    store.close()
