"""The foundation commands through Typer's CliRunner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

import funnelwise
from analytics_data import without_stage
from funnelwise.cli import app
from funnelwise.process import template_text

runner = CliRunner()


def test_init_writes_valid_template_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "process.yaml").read_text(encoding="utf-8") == template_text()
    assert (tmp_path / "p" / "funnelwise.duckdb").exists()
    again = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert again.exit_code == 2
    assert "--force" in again.output
    check = runner.invoke(app, ["--project", str(tmp_path / "p"), "process", "check"])
    assert check.exit_code == 0 and "6 stages" in check.output


def test_init_prints_a_check_command_that_works_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "my-team"])
    assert result.exit_code == 0, result.output
    command = result.output.split("Edit it, then: ")[1].split()
    assert command == ["funnelwise", "process", "check", str(Path("my-team", "process.yaml"))]
    check = runner.invoke(app, command[1:])
    assert check.exit_code == 0, check.output


def test_process_check_reports_problems_with_lines(tmp_path: Path) -> None:
    bad = tmp_path / "process.yaml"
    bad.write_text(template_text().replace("target_days: 14", "target_days: -3", 1))
    result = runner.invoke(app, ["process", "check", str(bad)])
    assert result.exit_code == 2
    assert "process.yaml:49: pipelines[0].stages[1].target_days" in result.output


def test_process_check_and_diff_say_what_a_folder_or_binary_file_is(tmp_path: Path) -> None:
    good = tmp_path / "process.yaml"
    good.write_text(template_text(), encoding="utf-8")
    binary = tmp_path / "deals.parquet"
    binary.write_bytes(b"PAR1\x15\x04\x94\xff\x00\x00")
    cases = [
        (["process", "check", str(tmp_path)], "is a folder; give the file"),
        (["process", "check", str(binary)], "not a UTF-8 text file"),
        (["process", "diff", str(good), str(tmp_path)], "is a folder; give the file"),
        (["process", "diff", str(binary), str(good)], "not a UTF-8 text file"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and message in result.output, result.output


def test_process_diff_json(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(template_text())
    b.write_text(template_text().replace("target_days: 21", "target_days: 30"))
    result = runner.invoke(app, ["process", "diff", str(a), str(b), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows == [
        {
            "kind": "changed",
            "path": "pipelines[new-business].stages[needs-assessment].target_days",
            "before": 21.0,
            "after": 30.0,
        }
    ]


def test_info_json_on_tiny_project(tiny_project: Path) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), "info", "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["deals_open"], info["deals_won"], info["deals_lost"]) == (2, 1, 1)
    assert info["deals_no_decision"] == 1 and info["stage_events"] == 15
    assert info["observed_until"].startswith("2024-03-01")


def test_info_json_on_an_empty_store_has_null_dates(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    result = runner.invoke(app, ["--project", str(tmp_path / "p"), "info", "-f", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["deals"] == 0 and info["first_created_at"] is None


def test_info_dates_a_project_of_leads_only(tmp_path: Path) -> None:
    import pandas as pd

    from funnelwise.project import Project

    assert runner.invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    store = Project(tmp_path / "p").open_store()
    created = pd.to_datetime(["2024-03-05", "2024-01-17", "2024-02-02"])
    leads = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "created_at": created})
    with store.transaction():
        store.insert("leads", leads)
    store.close()
    result = runner.invoke(app, ["--project", str(tmp_path / "p"), "info", "-f", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["deals"] == 0 and info["first_created_at"] is None
    assert info["leads"] == 3 and info["first_lead_at"].startswith(str(created.min().date()))
    table = runner.invoke(app, ["--project", str(tmp_path / "p"), "info"])
    assert "first_lead_at" in table.stdout


def test_info_csv_keeps_plain_numbers(tiny_project: Path) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), "info", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "stage_events,15\n" in result.stdout


def test_info_warns_of_stage_ids_the_process_does_not_have(
    tiny_project: Path, tmp_path: Path
) -> None:
    # process.yaml drops needs-assessment; D3's stored events still enter it.
    root = without_stage(tiny_project, tmp_path, "needs-assessment")
    table = runner.invoke(app, ["--project", str(root), "info"])
    assert table.exit_code == 0, table.output
    said = " ".join(table.stderr.split())
    assert said.startswith(
        "warning: the stored stage events enter stages that process.yaml does not have: "
        "'needs-assessment' (1 deal)."
    )
    assert "aliases" in said and "import the data again" in said
    assert "unknown_stages" not in table.stdout and "stage_events" in table.stdout
    data = runner.invoke(app, ["--project", str(root), "info", "-f", "json"])
    assert json.loads(data.stdout)["unknown_stages"] == {"needs-assessment": 1}
    assert data.stderr.startswith("warning: ")
    clean = runner.invoke(app, ["--project", str(tiny_project), "info"])
    assert clean.exit_code == 0 and clean.stderr == ""


def test_info_on_missing_project_teaches(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--project", str(tmp_path), "info"])
    assert result.exit_code == 2
    assert "funnelwise demo" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"funnelwise {funnelwise.__version__}\n"


def _commands(group: TyperGroup, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if isinstance(command, TyperGroup):
            yield from _commands(command, f"{prefix}{name} ")


def test_command_summaries_are_one_line_and_options_say_what_they_do() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    for name, command in _commands(root):
        summary = (command.help or "").strip().split("\n\n")[0]
        # The command list shows the first paragraph as it is written.
        assert "\n" not in summary, f"{name}: {summary!r}"
    flow = runner.invoke(app, ["flow", "--help"], env={"COLUMNS": "200"})
    assert "expected to close on or after this date" in flow.stdout
    forecast = runner.invoke(app, ["forecast", "--help"], env={"COLUMNS": "200"})
    assert "With --method auto: days between" in forecast.stdout


def test_readers_share_the_store_and_a_writer_is_told_to_wait(
    tiny_project: Path, tmp_path: Path
) -> None:
    # Another process reads the store (a report running in a second terminal).
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    store_file = root / "funnelwise.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print('ready', flush=True); time.sleep(120)",
            str(store_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        runner = CliRunner()
        # Analyses read alongside it.
        for args in (["info"], ["funnel", "--format", "json"], ["outcomes"]):
            result = runner.invoke(app, ["--project", str(root), *args])
            assert result.exit_code == 0, result.output
        # A command that writes cannot, and says why, naming the other process.
        result = runner.invoke(app, ["--project", str(root), "score", "apply", "--model", "rule"])
        assert result.exit_code == 3
        text = " ".join(result.output.split())
        assert f"process {holder.pid} has it open" in text
        assert "retry when the other command has finished" in text
    finally:
        holder.kill()
        holder.communicate()
    # Alone again, the writer goes through.
    result = CliRunner().invoke(app, ["--project", str(root), "score", "apply", "--model", "rule"])
    assert result.exit_code == 0, result.output


def test_an_as_of_date_past_the_data_is_said(tiny_project: Path) -> None:
    result = CliRunner().invoke(
        app, ["--project", str(tiny_project), "funnel", "--as-of", "2030-01-01", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    # The tiny log is observed until 2024-03-01: the figures are as of then.
    assert "--as-of 2030-01-01 is after the end of the data" in result.stderr
    assert "as of 2024-03-01 00:00:00" in " ".join(result.stderr.split())
    assert json.loads(result.stdout)["meta"]["as_of"] == "2024-03-01T00:00:00"
    quiet = CliRunner().invoke(
        app, ["--project", str(tiny_project), "funnel", "--as-of", "2024-02-01", "-f", "json"]
    )
    assert quiet.exit_code == 0 and "after the end" not in quiet.stderr


# -- output files ----------------------------------------------------------------------------
@pytest.fixture
def own_project(tiny_project: Path, tmp_path: Path) -> Path:
    """A copy of the tiny project that a test may write into."""
    return Path(shutil.copytree(tiny_project, tmp_path / "p"))


@pytest.mark.parametrize(
    ("command", "name", "what"),
    [
        (["report", "--quick", "-o"], "funnelwise.duckdb", "the project's store"),
        (["report", "--quick", "-o"], "process.yaml", "the project's process definition"),
        (["report", "--quick", "-o"], "funnelwise.duckdb.wal", "the project's store"),
        (["export", "xes"], "funnelwise.duckdb", "the project's store"),
        (["export", "table"], "process.yaml", "the project's process definition"),
    ],
)
def test_an_output_never_overwrites_the_projects_own_files(
    own_project: Path, command: list[str], name: str, what: str
) -> None:
    before = {p.name: p.read_bytes() for p in own_project.iterdir() if p.is_file()}
    # Through a detour, so that only the resolved path gives it away.
    target = own_project / ".." / own_project.name / name
    result = runner.invoke(app, ["--project", str(own_project), *command, str(target)])
    assert result.exit_code == 2, result.output
    assert what in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in own_project.iterdir() if p.is_file()} == before
    info = runner.invoke(app, ["--project", str(own_project), "info", "-f", "json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["stage_events"] == 15


def test_a_suggested_mapping_never_overwrites_the_process(own_project: Path) -> None:
    before = (own_project / "process.yaml").read_bytes()
    args = ["import", "table", "deals.csv", "-m", "map.yaml"]
    target = str(own_project / "process.yaml")
    result = runner.invoke(app, ["--project", str(own_project), *args, "--suggest-mapping", target])
    assert result.exit_code == 2, result.output
    assert "--suggest-mapping" in result.output and "process definition" in result.output
    assert (own_project / "process.yaml").read_bytes() == before


def test_a_failed_export_leaves_the_previous_file_whole(
    own_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from funnelwise.ingest import export

    out = tmp_path / "events.csv"
    out.write_text("the previous export\n", encoding="utf-8")

    def half(table: Any, where: Any) -> None:
        Path(where).write_text("case:concept:name,concept", encoding="utf-8")
        raise RuntimeError("the engine stopped")

    monkeypatch.setattr(export.pa_csv, "write_csv", half)
    log = funnelwise.open(own_project)
    try:
        with pytest.raises(RuntimeError):
            export.write_event_table(log, out)
    finally:
        log.store.close()
    assert out.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "p"]


def test_an_output_path_that_cannot_be_written_is_said_without_a_traceback(
    own_project: Path, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    cases = [
        (["report", "--quick", "-o", f"{tmp_path}/"], "it is a folder"),
        (["report", "--quick", "-o", str(afile / "r.html")], "is a file, not a folder"),
        (["export", "xes", str(afile / "sub" / "x.xes")], "is a file, not a folder"),
    ]
    if Path("/dev/full").exists():
        cases.append((["report", "--quick", "-o", "/dev/full"], "cannot write /dev/full"))
        cases.append((["export", "xes", "/dev/full"], "No space left on device"))
    for args, reason in cases:
        result = runner.invoke(app, ["--project", str(own_project), *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert reason in " ".join(result.output.split()), result.output


def test_an_xes_export_under_a_tables_name_is_refused(own_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    result = runner.invoke(app, ["--project", str(own_project), "export", "xes", str(out)])
    assert result.exit_code == 2, result.output
    assert "events.csv: export XES as .xes or .xes.gz" in " ".join(result.output.split())
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    gz = tmp_path / "events.xes.gz"
    result = runner.invoke(app, ["--project", str(own_project), "export", "xes", str(gz)])
    assert result.exit_code == 0 and gz.stat().st_size > 0, result.output


def test_an_export_creates_its_folder_like_the_report(own_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "events.csv"
    result = runner.invoke(app, ["--project", str(own_project), "export", "table", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith('"case:concept:name"')


def test_score_train_says_what_its_counts_count(tmp_path: Path) -> None:
    root = tmp_path / "s"
    assert (
        runner.invoke(app, ["synth", "--deals", "800", "--seed", "3", "--out", str(root)]).exit_code
        == 0
    )
    args = ["--project", str(root), "score", "train", "--snapshots", "8", "--threads", "1"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "rows: open deals as known at past instants" in table.output
    assert "distinct deals among them that went on to be won / not won." in table.output
    csv = runner.invoke(app, [*args, "--format", "csv"])
    assert csv.exit_code == 0, csv.output
    assert "rows: open" not in csv.output


def test_an_export_as_of_a_date_holds_nothing_later(own_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.csv"
    args = ["--project", str(own_project), "export", "table", str(out), "--as-of", "2024-01-15"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    import pandas as pd

    events = pd.read_csv(out)
    # As known on 15 January: D1, D2, D3 and D5 had been created; D4 (1 February) not.
    assert set(events["case:concept:name"]) == {"D1", "D2", "D3", "D5"}
    assert pd.to_datetime(events["time:timestamp"], utc=True).max() <= pd.Timestamp(
        "2024-01-15", tz="UTC"
    )
    window = ["--since", "2024-01-02", "--until", "2024-01-06"]
    xes = tmp_path / "window.xes"
    args = ["--project", str(own_project), "export", "xes", str(xes), *window]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = xes.read_text(encoding="utf-8").splitlines()
    # Each trace's id is on the line after its <trace>: deals created 2 to 5 January.
    ids = [lines[i + 1] for i, line in enumerate(lines) if line.strip() == "<trace>"]
    assert sorted(n.split('value="')[1].split('"')[0] for n in ids) == ["D2", "D5"]
    args = ["--project", str(own_project), "quality", "--as-of", "2024-01-15", "-f", "json"]
    quality = runner.invoke(app, args)
    assert quality.exit_code == 0, quality.output
    assert json.loads(quality.stdout)["meta"]["deals"] == 4


def _funnelwise(*args: str) -> subprocess.Popen[bytes]:
    """The installed console script, its stdout and stderr pipes, its stdout buffered
    as in a user's shell (PYTHONUNBUFFERED would flush every write)."""
    script = Path(sys.executable).with_name("funnelwise")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen(
        [str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    from funnelwise.synth import generate, write_project

    # 1000 deals give some 100 kB of variants as CSV, more than a pipe holds: the
    # command is still writing when the reader goes (`funnelwise variants | head -1`).
    root = tmp_path / "p"
    write_project(generate(deals=1000, seed=1), root)
    proc = _funnelwise("--project", str(root), "variants", "--format", "csv")
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"pipeline_id,variant,")
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    # 141 as for `yes | head -1`, not 1: the command did not fail.
    assert proc.returncode == 141


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_a_reader_gone_before_any_output_ends_the_command_quietly(
    tiny_project: Path, fmt: str
) -> None:
    # The table goes through Rich, which flushes each print; the JSON waits in
    # Python's buffer until the flush on the way out.
    proc = _funnelwise("--project", str(tiny_project), "info", "--format", fmt)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert err == b""
    assert proc.returncode == 141


@pytest.mark.parametrize("args", [["--help"], ["score", "--help"], ["score", "apply", "--help"]])
def test_help_to_a_reader_gone_ends_quietly(args: list[str]) -> None:
    # Typer prints help through a Rich console of its own, whose closed-pipe handler
    # exits with status 1: `set -o pipefail; funnelwise --help | head -1` had failed.
    proc = _funnelwise(*args)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert err == b"", err.decode()
    assert proc.returncode == 141


def test_help_read_whole_succeeds_and_a_wrong_option_still_fails() -> None:
    read = _funnelwise("score", "--help")
    out, _ = read.communicate(timeout=120)
    assert read.returncode == 0 and out.lstrip().startswith(b"Usage: funnelwise score")
    # Its reader gone too, a usage error is still one: only a closed pipe means 141.
    wrong = _funnelwise("score", "--no-such-option")
    assert wrong.stdout is not None
    wrong.stdout.close()
    _, err = wrong.communicate(timeout=120)
    assert wrong.returncode == 2 and b"No such option" in err
