"""The XES reader on a hand-made log (tests/fixtures/ingest/xes/small.xes) and, when
present, on the BPI Challenge 2012 log with the example process."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd
import pytest

import funnelwise as fw
from conftest import shared_data
from funnelwise.errors import InputError, SourceImportError
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.xes import XesOptions, import_xes
from funnelwise.project import Project
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
        "deal_changes": 0,
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
    # Owners: the resource with the most events of each case, as pandas finds them
    # from the file; the first event of every case is the system user's.
    events = _events_by_pandas(log)
    expected = _owners_by_pandas(events)
    got = store.raw.execute("SELECT deal_id, owner_id FROM deals").df().set_index("deal_id")
    assert got.owner_id.sort_index().equals(expected.sort_index().rename("owner_id"))
    assert got.owner_id.nunique() > 50
    (note,) = [n for n in r.notes if n.startswith("owners:")]
    assert f"{expected.nunique()} distinct" in note
    assert rows(store, _OWNER_NOT_LAST_CHANGE) == [(0,)]
    # Exported and read back, owners and their changes come back as they were.
    from funnelwise.ingest.export import write_xes

    write_xes(fw.EventLog(store, project.load_process()), tmp_path / "bpi.xes", activities=True)
    store.close()
    back = tmp_path / "back"
    back.mkdir()
    shutil.copy(root / "process.yaml", back / "process.yaml")
    again = Project(back).open_store(create=True)
    import_xes(
        again,
        Project(back).load_process(),
        tmp_path / "bpi.xes",
        xes=XesOptions(amount_attribute="amount"),
    )
    assert rows(again, _OWNER_NOT_LAST_CHANGE) == [(0,)]
    again.raw.execute(f"ATTACH '{root / 'funnelwise.duckdb'}' AS first (READ_ONLY)")
    for sql in (
        "SELECT deal_id, owner_id FROM {}.deals",
        "SELECT deal_id, old_value, new_value, changed_at FROM {}.deal_changes",
    ):
        assert rows(
            again, f"SELECT count(*) FROM (({sql.format('first')}) EXCEPT ({sql.format('main')}))"
        ) == [(0,)], sql
    again.close()
    # The system user kept from owning: a case is nobody's until a person works on it.
    people = tmp_path / "people"
    people.mkdir()
    shutil.copy(root / "process.yaml", people / "process.yaml")
    store = Project(people).open_store(create=True)
    options = XesOptions(amount_attribute="AMOUNT_REQ", not_owners=("112",))
    import_xes(store, Project(people).load_process(), log, xes=options)
    got = store.raw.execute("SELECT deal_id, owner_id FROM deals").df().set_index("deal_id")
    expected = _owners_by_pandas(events, skip=("112",)).rename("owner_id")
    assert got.owner_id.dropna().sort_index().equals(expected.sort_index())
    assert got.owner_id.isna().sum() == 13087 - len(expected) == 3432
    assert rows(store, _OWNER_NOT_LAST_CHANGE) == [(0,)]
    assert rows(store, "SELECT count(*) FROM deal_changes WHERE new_value = '112'") == [(0,)]
    store.close()


# Deals whose owner is not the new value of their last owner change.
_OWNER_NOT_LAST_CHANGE = """
    SELECT count(*) FROM deals d
    JOIN (SELECT deal_id, arg_max(new_value, changed_at) AS owner
          FROM deal_changes WHERE field = 'owner_id' GROUP BY 1) c USING (deal_id)
    WHERE d.owner_id IS DISTINCT FROM c.owner"""


def _owners_by_pandas(events: pd.DataFrame, skip: tuple[str, ...] = ()) -> pd.Series:
    """Per case, the org:resource with the most events (ties: the one who got there
    first), among those not in `skip`, counted in pandas from `_events_by_pandas`."""
    df = events[~events.resource.isin(skip)].copy()
    # A resource leads from the event that takes its count strictly past every other's.
    df["n"] = df.groupby(["case", "resource"]).cumcount() + 1
    before = df.groupby("case")["n"].transform(lambda n: n.cummax().shift(fill_value=0))
    return df[df.n > before].groupby("case").resource.last()


def _events_by_pandas(path: Path) -> pd.DataFrame:
    """Case, file position, resource and time of every event naming a resource, in
    time order (ties: file order), read with the standard library's XML parser."""
    import xml.etree.ElementTree as ET

    records: list[tuple[str, int, str | None, str]] = []
    pending: list[tuple[int, str | None, str]] = []
    with gzip.open(path) as fh:
        for _, el in ET.iterparse(fh, events=("end",)):
            tag = el.tag.rsplit("}", 1)[-1]
            if tag == "event":
                a = {c.get("key"): c.get("value") for c in el}
                pending.append(
                    (len(records) + len(pending), a.get("org:resource"), a["time:timestamp"])
                )
                el.clear()
            elif tag == "trace":
                case = next(c.get("value") for c in el if c.get("key") == "concept:name")
                records += [(str(case), *e) for e in pending]
                pending = []
                el.clear()
    df = pd.DataFrame(records, columns=["case", "pos", "resource", "time"]).dropna()
    df["time"] = pd.to_datetime(df.time, utc=True, format="ISO8601")
    return df.sort_values(["case", "time", "pos"])


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


def _owners_log(path: Path) -> Path:
    """Three cases; events as (name, resource or None, day of January 2024), in file order.

    T1: sys 1 event (day 1), zoe 2 (days 2, 5), amy 2 (days 3, 4; first in the file),
    cy 1, and a last event naming nobody: zoe and amy tie for most, zoe started
    earlier but amy got to 2 first. T2: sys 2 events, ana 1 (the last). T3: no
    resource at all."""
    cases = {
        "T1": [
            ("Call", "amy", 3),
            ("Prospecting", "sys", 1),
            ("Call", "zoe", 2),
            ("Email", "amy", 4),
            ("Email", "zoe", 5),
            ("Call", "cy", 6),
            ("Email", None, 7),
        ],
        "T2": [("Prospecting", "sys", 1), ("Email", "sys", 2), ("Call", "ana", 3)],
        "T3": [("Prospecting", None, 1), ("Call", None, 2)],
    }
    traces = []
    for case, events in cases.items():
        body = [
            "<event>"
            f'<string key="concept:name" value="{name}"/>'
            + (f'<string key="org:resource" value="{who}"/>' if who else "")
            + f'<date key="time:timestamp" value="2024-01-{day:02d}T09:00:00Z"/></event>'
            for name, who, day in events
        ]
        traces.append(
            f'<trace><string key="concept:name" value="{case}"/>\n' + "\n".join(body) + "\n</trace>"
        )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<log>\n' + "\n".join(traces) + "\n</log>\n"
    )
    return path


@pytest.mark.parametrize(
    ("rule", "t1", "t2", "t1_by_day"),
    [
        ("most", "amy", "sys", {1: "sys", 2: "sys", 3: "sys", 4: "amy", 5: "amy"}),
        ("first", "sys", "sys", {1: "sys", 3: "sys", 6: "sys"}),
        ("last", "cy", "ana", {1: "sys", 2: "zoe", 3: "amy", 5: "zoe", 6: "cy"}),
    ],
)
def test_the_owner_rule_picks_among_the_resources(
    tmp_path: Path, rule: str, t1: str, t2: str, t1_by_day: dict[int, str]
) -> None:
    log = _owners_log(tmp_path / "owners.xes")
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, log, xes=XesOptions(owner=rule), options=OPTS)  # type: ignore[arg-type]
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T1", t1),
        ("T2", t2),
        ("T3", None),
    ]
    # As of a date, the owner is the one that the events up to then make: the
    # hindsight of later events does not reach back.
    events = fw.EventLog(store, process)
    for day, owner in t1_by_day.items():
        cut = events.as_of(pd.Timestamp(f"2024-01-{day:02d} 12:00")).deals.execute()
        assert dict(zip(cut.deal_id, cut.owner_id, strict=True))["T1"] == owner, day
    (note,) = [n for n in r.notes if n.startswith("owners:")]
    assert f"--owner {rule}" in note and f"; {len({t1, t2})} distinct" in note
    store.close()


def test_the_default_owner_did_most_of_the_case(tmp_path: Path) -> None:
    log = _owners_log(tmp_path / "owners.xes")
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, log, options=OPTS)
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T1", "amy"),
        ("T2", "sys"),
        ("T3", None),
    ]
    (note,) = [n for n in r.notes if n.startswith("owners:")]
    assert "most events" in note
    store.close()
    # A log naming no resource says nothing of owners.
    text = log.read_text()
    log.write_text(
        text[: text.index("<trace>")]
        + text[text.index('<trace><string key="concept:name" value="T3"') :]
    )
    store, process = new_project(tmp_path / "bare")
    r = import_xes(store, process, log, options=OPTS)
    assert rows(store, "SELECT deal_id, owner_id FROM deals") == [("T3", None)]
    assert not [n for n in r.notes if "owner" in n]
    store.close()


def test_reimporting_with_another_owner_rule(tmp_path: Path) -> None:
    log = _owners_log(tmp_path / "owners.xes")
    store, process = new_project(tmp_path / "p")
    import_xes(store, process, log, options=OPTS)

    def loaded(r: ImportResult) -> dict[str, tuple[int, int]]:
        return {t: (c.loaded, c.updated) for t, c in r.counts.items() if c.loaded or c.updated}

    # The same file and rule again: nothing new, nothing updated, nothing to say of owners.
    again = import_xes(store, process, log, options=OPTS)
    assert loaded(again) == {}
    assert not [n for n in again.notes if "stored with another owner" in n]
    # Another rule: T1's owner (amy by most events, sys by the first) changes from the
    # log's end on, as an owner change would in a newer export; T2 keeps sys.
    first = import_xes(store, process, log, xes=XesOptions(owner="first"), options=OPTS)
    assert loaded(first) == {"deals": (0, 1), "deal_changes": (1, 0)}
    (note,) = [n for n in first.notes if n.startswith("owners:")]
    assert "; 1 deal stored with another owner take this one from the log's end on" in note
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T1", "sys"),
        ("T2", "sys"),
        ("T3", None),
    ]
    log_ = fw.EventLog(store, process)
    before = log_.as_of(pd.Timestamp("2024-01-06")).deals.execute()
    assert dict(zip(before.deal_id, before.owner_id, strict=True))["T1"] == "amy"
    # That rule again: nothing new.
    assert (
        loaded(import_xes(store, process, log, xes=XesOptions(owner="first"), options=OPTS)) == {}
    )
    store.close()


def test_an_unknown_owner_rule_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"owner must be most, first or last \(got 'boss'\)"):
        XesOptions(owner="boss")  # type: ignore[arg-type]
    from typer.testing import CliRunner

    from funnelwise.cli import app

    root = tmp_path / "cli"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    log = _owners_log(tmp_path / "owners.xes")
    result = CliRunner().invoke(
        app, ["--project", str(root), "import", "xes", str(log), "--owner", "boss"]
    )
    assert result.exit_code == 2, result.output
    assert "owner must be most, first or last (got 'boss')" in " ".join(result.output.split())
    result = CliRunner().invoke(
        app, ["--project", str(root), "import", "xes", str(log), "--owner", "last"]
    )
    assert result.exit_code == 0, result.output
    store = Project(root).open_store()
    assert rows(store, "SELECT owner_id FROM deals ORDER BY deal_id") == [
        ("cy",),
        ("ana",),
        (None,),
    ]
    store.close()


def test_a_resource_that_never_owns_leaves_deals_to_the_others(tmp_path: Path) -> None:
    # T1 without sys: zoe leads from day 2, amy from day 4 (two events to zoe's one);
    # T2's only other resource is ana (day 3); T3 names nobody.
    log = _owners_log(tmp_path / "owners.xes")
    store, process = new_project(tmp_path / "p")
    xes = XesOptions(not_owners=("sys", "bob", "sys"))
    r = import_xes(store, process, log, xes=xes, options=OPTS)
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T1", "amy"),
        ("T2", "ana"),
        ("T3", None),
    ]
    events = fw.EventLog(store, process)
    # Until someone other than sys works on it, a deal is nobody's, as of any date.
    for day, t1, t2 in [(1, None, None), (2, "zoe", None), (3, "zoe", "ana"), (4, "amy", "ana")]:
        cut = events.as_of(pd.Timestamp(f"2024-01-{day:02d} 12:00")).deals.execute()
        owners = dict(zip(cut.deal_id, cut.owner_id, strict=True))
        assert (owners["T1"], owners["T2"]) == (t1, t2), day
    (note,) = [n for n in r.notes if n.startswith("owners:")]
    assert "--owner most, never sys, bob (--not-owner); 2 distinct" in note
    assert any(n.startswith("--not-owner bob: no event of the log names this") for n in r.notes)
    store.close()
    # From the command line, repeated.
    from typer.testing import CliRunner

    from funnelwise.cli import app

    root = tmp_path / "cli"
    assert CliRunner().invoke(app, ["init", str(root)]).exit_code == 0
    args = ["import", "xes", str(log), "--not-owner", "sys", "--not-owner", "ana"]
    result = CliRunner().invoke(app, ["--project", str(root), *args])
    assert result.exit_code == 0, result.output
    store = Project(root).open_store()
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T1", "amy"),
        ("T2", None),
        ("T3", None),
    ]
    store.close()


def _tied_log(path: Path, *, one_line: bool, unreadable: bool = False) -> Path:
    """Deal T: sys at 09:00, then amy, zoe, zoe at 10:00 (in that file order), and with
    `unreadable` an event whose time is not one. Deal U: one event. Deal V: sys at
    09:00, then amy twice and zoe three times at 10:00. Deal W: sys at 09:00, then amy
    twice and sys twice at 10:00. Either one element per line
    (read line by line) or the whole log on one line (read by lxml: every element is
    on line 2)."""

    def event(name: str, who: str, at: str) -> list[str]:
        return [
            "<event>",
            f'<string key="concept:name" value="{name}"/>',
            f'<string key="org:resource" value="{who}"/>',
            f'<date key="time:timestamp" value="{at}"/>',
            "</event>",
        ]

    ten = "2024-01-02T10:00:00Z"
    parts = [
        "<log>",
        "<trace>",
        '<string key="concept:name" value="T"/>',
        *event("Prospecting", "sys", "2024-01-02T09:00:00Z"),
        *event("Call", "amy", ten),
        *event("Qualification", "zoe", ten),
        *event("Email", "zoe", ten),
        *(event("Email", "amy", "not a time") if unreadable else []),
        "</trace>",
        "<trace>",
        '<string key="concept:name" value="U"/>',
        *event("Prospecting", "amy", ten),
        "</trace>",
        "<trace>",
        '<string key="concept:name" value="V"/>',
        *event("Prospecting", "sys", "2024-01-02T09:00:00Z"),
        *event("Call", "amy", ten),
        *event("Email", "amy", ten),
        *event("Call", "zoe", ten),
        *event("Email", "zoe", ten),
        *event("Call", "zoe", ten),
        "</trace>",
        "<trace>",
        '<string key="concept:name" value="W"/>',
        *event("Prospecting", "sys", "2024-01-02T09:00:00Z"),
        *event("Call", "amy", ten),
        *event("Email", "amy", ten),
        *event("Call", "sys", ten),
        *event("Email", "sys", ten),
        "</trace>",
        "</log>",
    ]
    text = ("" if one_line else "\n").join(parts)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
    return path


LAYOUTS = pytest.mark.parametrize("one_line", [False, True], ids=["line-per-element", "one-line"])


@LAYOUTS
def test_events_at_one_time_follow_the_file_order(tmp_path: Path, one_line: bool) -> None:
    log = _tied_log(tmp_path / "tied.xes", one_line=one_line)
    store, process = new_project(tmp_path / "p")
    import_xes(store, process, log, options=OPTS)
    # T: at 10:00 amy, zoe, zoe in file order: zoe's second event puts her ahead of sys
    # and amy. V: amy leads after her second event at 10:00, zoe after her third; as
    # known at 10:00 the owner went from sys to zoe, one change. W: amy leads for two
    # events at 10:00, sys again after the next; as known at 10:00 the owner stays sys,
    # no change. A deal's owner is the new value of its last owner change.
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T", "zoe"),
        ("U", "amy"),
        ("V", "zoe"),
        ("W", "sys"),
    ]
    assert rows(
        store,
        "SELECT deal_id, old_value, new_value, strftime(changed_at, '%H:%M') "
        "FROM deal_changes WHERE field = 'owner_id' ORDER BY deal_id, changed_at",
    ) == [("T", "sys", "zoe", "10:00"), ("V", "sys", "zoe", "10:00")]
    seen = fw.EventLog(store, process).as_of(pd.Timestamp("2024-01-02 10:00")).deals.execute()
    assert dict(zip(seen.deal_id, seen.owner_id, strict=True)) == {
        "T": "zoe",
        "U": "amy",
        "V": "zoe",
        "W": "sys",
    }
    assert history(store, "T") == [
        ("lead", "2024-01-02 09:00"),
        ("qualification", "2024-01-02 10:00"),
    ]
    store.close()


@LAYOUTS
def test_an_event_set_aside_takes_no_other_with_it(tmp_path: Path, one_line: bool) -> None:
    log = _tied_log(tmp_path / "tied.xes", one_line=one_line, unreadable=True)
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, log, options=OPTS)
    # Only the event without a time is quarantined, even when it shares its line.
    assert r.n_quarantined == 1
    (problem,) = r.problems
    assert (problem.column, problem.value) == ("timestamp", "not a time")
    assert {t: c.loaded for t, c in r.counts.items()} == {
        "deals": 4,
        "stage_events": 5,
        "deal_changes": 2,
        "activities": 11,
    }
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        ("T", "zoe"),
        ("U", "amy"),
        ("V", "zoe"),
        ("W", "sys"),
    ]
    store.close()


@LAYOUTS
def test_a_trace_without_events_is_set_aside_by_name(tmp_path: Path, one_line: bool) -> None:
    log = _tied_log(tmp_path / "bare.xes", one_line=one_line)
    text = log.read_text()
    # After deal U: a trace B with an amount but no event, so no date to load it at.
    at = text.index("<trace>", text.index('value="U"'))
    bare = '<trace>\n<string key="concept:name" value="B"/>\n<float key="Amount" value="7"/>\n'
    if one_line:
        bare = bare.replace("\n", "")
    log.write_text(text[:at] + bare + "</trace>" + ("" if one_line else "\n") + text[at:])
    store, process = new_project(tmp_path / "p")
    r = import_xes(store, process, log, xes=AMOUNT, options=OPTS)
    assert rows(store, "SELECT deal_id FROM deals ORDER BY 1") == [("T",), ("U",), ("V",), ("W",)]
    assert r.n_quarantined == 1
    (problem,) = r.problems
    assert (problem.column, problem.value, problem.quarantined) == ("trace concept:name", "B", True)
    assert "has no event" in problem.reason
    assert "(trace 3 of the file)" in problem.reason
    if not one_line:  # its line, where lines are one element each
        assert problem.row == text[:at].count("\n") + 1
    # The quarantine file keeps its row, with its case id.
    assert r.quarantine_path is not None
    kept = pd.read_csv(r.quarantine_path / "bare.csv", dtype=str)
    assert kept[["row", "case"]].values.tolist() == [[str(problem.row), "B"]]
    store.close()
