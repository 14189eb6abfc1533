"""The store, the log's filters and as_of, the process loader and the project folder
on edge cases: values only known later, odd attribute keys, bad paths, odd files."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

import funnelwise as fw
from analytics_data import build_tiny_plus, load
from funnelwise.analytics.common import segment
from funnelwise.analytics.conformance import field_missing
from funnelwise.cli import app
from funnelwise.errors import ProcessError, ProjectError, SourceImportError, StoreError
from funnelwise.forecast.history import segment_expr
from funnelwise.ingest.quality import _field_value, unknown_stages
from funnelwise.ingest.tablemap import parse_mapping
from funnelwise.log import EventLog
from funnelwise.process import diff_processes, parse_process, template_text
from funnelwise.project import Project
from funnelwise.store import SCHEMA_VERSION, Store
from funnelwise.timeutil import to_timestamp
from test_eventlog import cutoffs, random_logs


def ids(log: EventLog) -> list[str]:
    return sorted(log.deals.deal_id.execute())


def lead_ids(log: EventLog) -> list[str]:
    return sorted(log.leads.lead_id.execute())


def test_a_filter_on_the_outcome_as_of_a_date_reads_the_outcome_then(
    tiny_log: EventLog,
) -> None:
    # As of 2024-01-25 D2 is lost (01-20); D1 (won 02-01) and D5 (no decision 02-15)
    # are still open, as is D3; D4 is not created yet.
    then = tiny_log.as_of("2024-01-25")
    assert ids(then.filter(outcome="won")) == []
    assert ids(then.filter(outcome="lost")) == ["D2"]
    assert ids(then.filter(outcome=None)) == ["D1", "D3", "D5"]
    assert ids(then.filter(closed_at=None)) == ["D1", "D3", "D5"]
    # Filtering first and cutting after reads the same.
    assert ids(tiny_log.filter(outcome="won").as_of("2024-01-25")) == []
    # Without a cutoff the stored outcome counts.
    assert ids(tiny_log.filter(outcome="won")) == ["D1"]


def test_a_lead_filter_as_of_a_date_reads_the_conversion_then(tmp_path: Path) -> None:
    # L1 converted 01-01, L2 disqualified 01-11, L4 (created 01-20) converted 02-01.
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    then = log.as_of("2024-01-25")
    assert lead_ids(then.filter(converted_deal_id=None)) == ["L2", "L4"]
    assert lead_ids(then.filter(converted_deal_id="D4")) == []
    assert lead_ids(then.filter(disqualified_at=None)) == ["L1", "L4"]
    log.store.close()


def test_attribute_keys_are_matched_as_written_and_numbers_as_text(tmp_path: Path) -> None:
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    log.store.raw.execute(
        """UPDATE deals SET attributes = '{"Región": "Norte", "case:Goal": "Car",
        "Stage.Type": "x", "Customer''s size": "L", "employees": 250}'
        WHERE deal_id = 'D1'"""
    )
    log.store.raw.execute("""UPDATE leads SET attributes = '{"score": 7}' WHERE lead_id = 'L3'""")
    # Accented letters, colons, dots and quotes are part of the key.
    assert ids(log.filter(Región="Norte")) == ["D1"]
    assert ids(log.filter(**{"case:Goal": "Car"})) == ["D1"]
    assert ids(log.filter(**{"Stage.Type": "x"})) == ["D1"]
    assert ids(log.filter(**{"Customer's size": "L"})) == ["D1"]
    # A number written as a JSON number matches the number, and has a value.
    assert ids(log.filter(employees=250)) == ["D1"]
    assert ids(log.filter(employees="250")) == ["D1"]
    assert "D1" not in ids(log.filter(employees=None))
    assert lead_ids(log.filter(score=7)) == ["L3"]
    log.store.close()


SELF_ALIAS = """\
name: x
pipelines: &p
  - id: a
    stages: *p
    outcomes: {won: {id: w}, lost: {id: l}}
"""


def test_an_alias_inside_its_own_value_is_one_problem_on_its_line() -> None:
    with pytest.raises(ProcessError) as caught:
        parse_process(SELF_ALIAS, file="p.yaml")
    assert str(caught.value.problems[0]) == (
        "p.yaml:4: pipelines[0].stages: is an alias (*name) of a value that contains it, "
        "which would repeat without end; write the value out"
    )
    in_list = SELF_ALIAS.replace("pipelines: &p\n  - id: a", "pipelines:\n  - &p\n    id: a")
    with pytest.raises(ProcessError, match=r"p.yaml:\d+: pipelines\[0\].stages\[0\]: is an alias"):
        parse_process(in_list.replace("stages: *p", "stages: [*p]"), file="p.yaml")
    with pytest.raises(SourceImportError, match=r"m.yaml:1: a.b: is an alias"):
        parse_mapping("a: &x {b: *x}\n", file="m.yaml")
    # An alias of a value elsewhere is read as that value.
    shared = """\
name: x
pipelines:
  - id: a
    stages: &s [{id: s1}]
    outcomes: {won: {id: w}, lost: {id: l}}
  - id: b
    stages: *s
    outcomes: {won: {id: w}, lost: {id: l}}
"""
    assert [p.stage_ids for p in parse_process(shared).pipelines] == [("s1",), ("s1",)]


def test_a_file_where_a_folder_should_be_is_one_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file", encoding="utf-8")
    with pytest.raises(StoreError) as caught:
        Store.open(f"duckdb://{blocker}/sub/x.duckdb")
    assert str(caught.value) == (
        f"cannot create the store {blocker}/sub/x.duckdb: {blocker} is a file; "
        "choose another folder"
    )
    with pytest.raises(ProjectError, match=f"cannot create the folder {blocker}: {blocker} is"):
        Project(blocker).make_folder()
    for folder in (blocker, blocker / "p"):
        result = CliRunner().invoke(app, ["init", str(folder)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: cannot create the folder"), result.output
        assert "Traceback" not in result.output


def test_a_duckdb_file_that_is_no_funnelwise_store_is_named(tmp_path: Path) -> None:
    empty, other = tmp_path / "empty.duckdb", tmp_path / "other.duckdb"
    duckdb.connect(str(empty)).close()
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE deals (x INTEGER)")
    with pytest.raises(ProjectError, match=r"empty\.duckdb is not a funnelwise store"):
        fw.open(f"duckdb://{empty}", read_only=True)
    with pytest.raises(StoreError, match=r"not a funnelwise store but holds tables .*\(deals\)"):
        Store.open(f"duckdb://{other}")
    result = CliRunner().invoke(app, ["--store", f"duckdb://{empty}", "info"])
    assert result.exit_code == 2 and "not a funnelwise store" in result.output, result.output
    # The other program's table is left as it was.
    with duckdb.connect(str(other)) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (1,)


def test_deals_of_a_pipeline_the_process_lacks_are_not_placed_in_its_stages(
    tmp_path: Path,
) -> None:
    # D1 stored under a pipeline id that process.yaml (one pipeline, new-business)
    # no longer has, as after renaming the pipeline there.
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    log.store.raw.execute("UPDATE deals SET pipeline_id = 'old' WHERE deal_id = 'D1'")
    e = log.positioned_events.to_pandas()
    d1, rest = e[e.deal_id == "D1"], e[e.deal_id != "D1"]
    assert set(d1.pipeline_id) == {"old"} and d1.kind.isna().all()
    assert set(rest.pipeline_id) == {"new-business"} and rest.kind.notna().all()
    assert unknown_stages(log) == {"lead": 1, "proposal": 1, "qualification": 1, "won": 1}
    # Cut to the process's pipeline, D1 is left out.
    kept = log.filter(pipeline="new-business").positioned_events.to_pandas()
    assert "D1" not in set(kept.deal_id) and kept.kind.notna().all()
    log.store.close()


def test_yaml_syntax_errors_are_one_line_naming_where() -> None:
    # A character YAML does not allow (NUL, a bell) is placed by line and column.
    with pytest.raises(ProcessError) as caught:
        parse_process("name: x\nb: x\x00\n", file="p.yaml")
    assert str(caught.value.problems[0]) == (
        "p.yaml:2: not valid YAML: character 0x0000 is not allowed (line 2, column 5); remove it"
    )
    with pytest.raises(SourceImportError) as mapping:
        parse_mapping("a: 1\n\x07b: 2\n", file="m.yaml")
    assert str(mapping.value).splitlines()[1] == (
        "  - m.yaml:2: not valid YAML: character 0x0007 is not allowed (line 2, column 1); "
        "remove it"
    )
    # A mapping file's syntax error reads as a process.yaml's: one line, no parser frames.
    with pytest.raises(SourceImportError) as broken:
        parse_mapping("a: [1, 2\nb: 3\n", file="m.yaml")
    assert str(broken.value).splitlines()[1:] == [
        "  - m.yaml:1: not valid YAML: expected ',' or ']', but got ':' (line 2, column 2), "
        "while parsing a flow sequence begun on line 1, column 4"
    ]


def test_a_reader_held_up_by_a_changed_process_yaml_is_told_why(
    tiny_project: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print('ready', flush=True); time.sleep(120)",
            str(root / "funnelwise.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    process = root / "process.yaml"
    process.write_text(process.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = CliRunner().invoke(app, ["--project", str(root), "funnel"])
        assert result.exit_code == 3
        assert " ".join(result.output.split()) == (
            f"error: cannot read the store {Project(root).store_url}: {process} has changed "
            "since the store recorded it, and bringing it up to date needs the store alone "
            f"while process {holder.pid} has it open. Retry when the other command has finished"
        )
    finally:
        holder.kill()
        holder.communicate()
    assert CliRunner().invoke(app, ["--project", str(root), "funnel"]).exit_code == 0


def test_process_diff_tells_outcomes_item_by_item_one_line_each(tmp_path: Path) -> None:
    def with_stages(order: range) -> str:
        extra = "".join(f"      - id: extra-stage-{i}\n" for i in order)
        return template_text().replace("    outcomes:\n", extra + "    outcomes:\n")

    before = with_stages(range(12))
    # The extra stages in reverse order: the line telling it is longer than a terminal.
    after = with_stages(range(11, -1, -1))
    after = after.replace('aliases: ["Closed Won", "Ganada"]', 'aliases: ["Closed Won"]')
    after = after.replace("name: Lost,", "name: Lost deal,")
    changes = [str(c) for c in diff_processes(parse_process(before), parse_process(after))]
    assert changes[0].startswith("~ pipelines[new-business].stages order: ['lead',")
    assert len(changes[0]) > 300
    assert changes[1:] == [
        "- pipelines[new-business].outcomes.won.aliases 'Ganada'",
        "~ pipelines[new-business].outcomes.lost.name: 'Lost' -> 'Lost deal'",
    ]
    (tmp_path / "a.yaml").write_text(before, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(after, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["process", "diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == changes


def test_paths_with_brackets_are_printed_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "[draft] team"
    result = CliRunner().invoke(app, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    check = CliRunner().invoke(app, ["process", "check", str(folder / "process.yaml")])
    assert check.exit_code == 0, check.output
    assert check.output.startswith(f"ok {folder}/process.yaml: 'Direct sales', 1 pipeline(s)")
    demo = CliRunner().invoke(app, ["demo", str(tmp_path / "[x]"), "--deals", "20"])
    assert demo.exit_code == 0, demo.output
    lines = demo.output.splitlines()
    assert lines[0].startswith(f"Demo project ready in {tmp_path}/[x]: 20 deals")
    assert lines[2] == f"  funnelwise --project '{tmp_path}/[x]' info"
    out = tmp_path / "[x]" / "[r].html"
    args = ["--project", str(tmp_path / "[x]"), "report", "--quick", "-o", str(out)]
    report = CliRunner().invoke(app, args)
    assert report.exit_code == 0, report.output
    assert f"Report written to {out} (" in " ".join(report.output.split())


def test_now_and_today_are_the_present_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a machine in Tokyo (UTC+9) 'now' had read nine hours ahead of the data's UTC.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        utc_now = pd.Timestamp.now(tz="UTC").tz_localize(None)
        for word in ("now", "today", " Now "):
            assert abs(to_timestamp(word) - utc_now) < pd.Timedelta(minutes=1)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_date_that_reads_both_ways_is_refused(tiny_log: EventLog) -> None:
    # 03/04/2024 had been read month first (4 March) where most write 3 April.
    with pytest.raises(fw.InputError) as caught:
        tiny_log.as_of("03/04/2024")
    assert str(caught.value) == (
        "as_of: '03/04/2024' reads as 3 April or as 4 March; write it year-month-day, "
        "e.g. 2024-04-03"
    )
    with pytest.raises(fw.InputError, match="reads as 2 January or as 1 February"):
        tiny_log.filter(since="2.1.24")
    # Dates that read one way only are read.
    assert tiny_log.as_of("31/01/2024").cutoff == pd.Timestamp("2024-01-31")
    assert tiny_log.as_of("04/04/2024").cutoff == pd.Timestamp("2024-04-04")
    assert tiny_log.as_of("2024/03/04").cutoff == pd.Timestamp("2024-03-04")


def test_filter_values_of_the_wrong_kind_are_input_errors(tiny_log: EventLog) -> None:
    # True for a number had stopped with a ValueError traceback.
    with pytest.raises(fw.InputError, match=r"^amount is a number; True is not one$"):
        tiny_log.filter(amount=True)
    with pytest.raises(fw.InputError, match=r"^created_at is a date; 3 is not one$"):
        tiny_log.filter(created_at=3)
    # A date value is read as as_of reads one.
    with pytest.raises(fw.InputError, match="reads as 3 April or as 4 March"):
        tiny_log.filter(created_at="03/04/2024")
    berlin = pd.Timestamp("2024-01-01T01:00", tz="Europe/Berlin")
    assert ids(tiny_log.filter(created_at=berlin)) == ["D1"]


def test_a_store_url_with_a_tilde_is_in_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No shell expands a ~ inside a URL: it had made a folder named '~' where the
    # command ran, with the store (and its quarantine) in it.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    with Store.open("duckdb://~/sales.duckdb") as store:
        assert store.url == f"duckdb://{tmp_path}/home/sales.duckdb"
    assert (tmp_path / "home" / "sales.duckdb").is_file()
    assert not (tmp_path / "~").exists()


def test_a_process_kept_without_its_store_gets_one_from_init(tmp_path: Path) -> None:
    # A process.yaml from version control, its store not: init had refused ("exists
    # already ... pass --force", which replaces the process with the template) while
    # every command sent the user to init.
    root = tmp_path / "team"
    root.mkdir()
    own = template_text().replace("name: Direct sales", "name: Our sales")
    (root / "process.yaml").write_text(own, encoding="utf-8")
    with pytest.raises(ProjectError) as caught:
        fw.open(root, read_only=True)
    assert str(caught.value) == (
        f"{root} has its process.yaml but no store ({root / 'funnelwise.duckdb'}); create an "
        f"empty one with `funnelwise init {root}` (the process is kept), or import data, "
        "which creates it"
    )
    result = CliRunner().invoke(app, ["init", str(root)])
    assert result.exit_code == 0, result.output
    assert (root / "process.yaml").read_text(encoding="utf-8") == own
    log = fw.open(root, read_only=True)
    assert log.process.name == "Our sales" and log.counts()["deals"] == 0
    log.store.close()
    # With its store, the process is not written over without --force.
    again = CliRunner().invoke(app, ["init", str(root)])
    assert again.exit_code == 2 and "exists already" in again.output


def test_writing_while_this_program_reads_the_store_says_what_to_close(
    tiny_project: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    reader = fw.open(root, read_only=True)
    with pytest.raises(StoreError) as caught:
        fw.open(root)
    assert str(caught.value) == (
        f"cannot write to the store {root / 'funnelwise.duckdb'}: this program has it open "
        "for reading only; close that first (log.store.close()), or open it without read_only"
    )
    reader.store.close()
    writer = fw.open(root)
    assert writer.counts()["deals"] == 5
    writer.store.close()


def test_a_required_column_with_empty_values_is_refused_before_writing() -> None:
    store = Store.open("duckdb://:memory:")
    rows = pd.DataFrame(
        {
            "deal_id": ["a", "b", "c"],
            "stage_id": ["lead"] * 3,
            "entered_at": [pd.Timestamp("2024-01-01"), None, None],
            "seq": [0, 1, 2],
        }
    )
    # It had stopped with the engine's ConstraintException.
    with pytest.raises(StoreError) as caught:
        store.insert("stage_events", rows)
    assert str(caught.value) == (
        "column stage_events.entered_at is required, but 2 of 3 rows have no value "
        "(the first is row 1, counting from 0)"
    )
    assert store.count("stage_events") == 0
    store.close()


def test_an_id_or_currency_of_the_wrong_form_says_what_the_form_is() -> None:
    text = """\
name: x
currency: dollars
pipelines:
  - id: a b
    stages: [{id: "Calificación"}]
    outcomes: {won: {id: w}, lost: {id: l}}
"""
    with pytest.raises(ProcessError) as caught:
        parse_process(text, file="p.yaml")
    # These had read "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.\\-]*$'".
    form = "an id is made of a-z, A-Z, 0-9, _, . and -, starting with a letter or digit"
    assert [str(p) for p in caught.value.problems] == [
        "p.yaml:2: currency: a currency is a three-letter code such as USD or EUR (got 'DOLLARS')",
        f"p.yaml:4: pipelines[0].id: {form} (got 'a b'); put other spellings in name or aliases",
        f"p.yaml:5: pipelines[0].stages[0].id: {form} (got 'Calificación'); put other "
        "spellings in name or aliases",
    ]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=random_logs(), t=cutoffs)
def test_a_filter_as_of_a_date_keeps_what_the_deals_then_show(
    tables: dict[str, pd.DataFrame], t: dt.datetime
) -> None:
    log = load(tables)
    try:
        then = log.as_of(t).deals.to_pandas()
        for key, value in (("outcome", None), ("outcome", "won"), ("amount", 300)):
            by_hand = then[then[key].isna()] if value is None else then[then[key] == value]
            expected = sorted(by_hand.deal_id)
            assert ids(log.as_of(t).filter(**{key: value})) == expected
            assert ids(log.filter(**{key: value}).as_of(t)) == expected
    finally:
        log.store.close()


def test_process_diff_tells_a_new_order_of_pipelines() -> None:
    # The first pipeline is the default one; swapping two had read 'no differences'.
    one = """\
  - id: {}
    stages: [{{id: s1}}]
    outcomes: {{won: {{id: w}}, lost: {{id: l}}}}
"""
    a = parse_process("name: x\npipelines:\n" + one.format("p1") + one.format("p2"))
    b = parse_process("name: x\npipelines:\n" + one.format("p2") + one.format("p1"))
    assert [str(c) for c in diff_processes(a, b)] == [
        "~ pipelines order: ['p1', 'p2'] -> ['p2', 'p1']"
    ]


def test_a_transaction_with_a_failed_write_inside_writes_nothing_and_says_so() -> None:
    store = Store.open("duckdb://:memory:")
    frame = pd.DataFrame(
        {
            "deal_id": ["A"],
            "pipeline_id": ["new-business"],
            "created_at": [pd.Timestamp("2024-01-01")],
            "version": [1],
        }
    )
    lost = "nothing of the transaction was written"
    # A nested block that fails, its error caught: it had been committed with the rest.
    with pytest.raises(StoreError, match=lost), store.transaction():
        store.set_meta("a", "1")
        with contextlib.suppress(ValueError), store.transaction():
            store.insert("deals", frame)
            raise ValueError("checked after the insert")
    # A statement the engine refused, its error caught: the engine had committed the
    # transaction as empty and the block had ended as if all were written.
    with pytest.raises(StoreError, match=lost), store.transaction():
        store.set_meta("b", "2")
        with contextlib.suppress(duckdb.Error):
            store.raw.execute("INSERT INTO meta VALUES (NULL, 'x')")
    assert store.count("deals") == 0 and store.meta("a") is None and store.meta("b") is None
    # The store goes on working.
    with store.transaction():
        store.set_meta("c", "3")
    assert store.meta("c") == "3"
    store.close()


def test_aliases_of_aliases_that_multiply_without_bound_are_one_problem() -> None:
    # 475 characters that expand to 100 million values: the check had run for minutes.
    lines = ["name: x", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    text = "\n".join([*lines, "pipelines: *a7", ""])
    for parse, error in ((parse_process, ProcessError), (parse_mapping, SourceImportError)):
        with pytest.raises(error, match="more than 50,000 values once its aliases"):
            parse(text)


def test_a_store_of_a_later_funnelwise_is_refused_for_reading_too(
    tiny_project: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    store_file = root / "funnelwise.duckdb"
    with duckdb.connect(str(store_file)) as con:
        con.execute("INSERT INTO schema_version VALUES (99, 'later', now())")
    expected = (
        f"the store duckdb://{store_file} has schema version 99, newer than this "
        f"funnelwise's ({SCHEMA_VERSION}); upgrade funnelwise to read it"
    )
    # Through the project it was refused without naming the store; through --store it
    # had been read.
    for target in (root, f"duckdb://{store_file}"):
        for read_only in (True, False):
            with pytest.raises(StoreError) as caught:
                fw.open(target, read_only=read_only)
            assert str(caught.value) == expected


def test_analyses_read_attribute_keys_with_a_dot_as_salesforce_imports_write_them(
    tmp_path: Path,
) -> None:
    # A Salesforce import with accounts keeps 'account.Industry' and the like; `--by
    # account.Industry` had said no deal has it, and an exit criterion naming it had
    # counted it missing on every deal.
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    log.store.raw.execute(
        """UPDATE deals SET attributes = '{"account.Industry": "Retail",
        "account.NumberOfEmployees": 120}' WHERE deal_id IN ('D1', 'D2')"""
    )
    frame = fw.funnel(log, by="account.Industry").to_frame()
    assert set(frame["account.Industry"]) == {"Retail", "(missing)"}
    deals = log.deals
    for value in (
        segment(log, deals, "account.NumberOfEmployees"),
        segment_expr(deals, "account.NumberOfEmployees"),
    ):
        got = deals.select("deal_id", v=value).to_pandas().set_index("deal_id").v
        assert got.to_dict() == {
            "D1": "120",
            "D2": "120",
            "D3": "(missing)",
            "D4": "(missing)",
            "D5": "(missing)",
        }
    field = ibis.literal("account.Industry")
    missing = deals.select("deal_id", m=field_missing(deals, field, ["account.Industry"]))
    assert sorted(missing.filter(missing.m).deal_id.execute()) == ["D3", "D4", "D5"]
    filled = deals.select("deal_id", f=_field_value(deals, "account.Industry"))
    assert sorted(filled.filter(filled.f).deal_id.execute()) == ["D1", "D2"]
    log.store.close()
