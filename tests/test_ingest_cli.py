"""The import commands through the CLI: each reader, --format json, --on-error fail,
--suggest-mapping, `funnelwise imports`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

import funnelwise as fw
from funnelwise.cli.app import app
from funnelwise.process import template_text
from ingest_util import FIXTURES

runner = CliRunner()


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "process.yaml").write_text(template_text(), encoding="utf-8")
    return root


def _import_events(root: Path, src: Path, text: str, extra: str = "") -> Result:
    """Write an event-log CSV (columns id, stage, at, and `extra` mapped by name) beside
    a mapping, and import it into the project at root with `import table`."""
    src.write_text(text, encoding="utf-8")
    mapping = src.parent / "mapping.yaml"
    mapped = "deal_id: id, stage: stage, entered_at: at" + (f", {extra}: {extra}" if extra else "")
    mapping.write_text(f"shape: event_log\ncolumns: {{{mapped}}}\n", encoding="utf-8")
    result = runner.invoke(
        app, ["--project", str(root), "import", "table", str(src), "--mapping", str(mapping)]
    )
    assert result.exit_code == 0, result.output
    return result


def _json(root: Path, *args: str) -> dict[str, object]:
    result = runner.invoke(app, ["--project", str(root), *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_import_table_json_and_imports(tmp_path: Path) -> None:
    root = _project(tmp_path)
    t = FIXTURES / "table"
    out = _json(root, "import", "table", str(t / "events.csv"), "--mapping", str(t / "events.yaml"))
    assert out["counts"] == {
        "deals": {"loaded": 4, "updated": 0, "duplicates": 0, "quarantined": 1},
        "stage_events": {"loaded": 13, "updated": 0, "duplicates": 1, "quarantined": 2},
        # D1's amount moves from 1,000 to 1,200 on its 01-15 row.
        "deal_changes": {"loaded": 1, "updated": 0, "duplicates": 0, "quarantined": 0},
    }
    assert out["quarantined_rows"] == 2
    shown = runner.invoke(app, ["--project", str(root), "imports", "--format", "json"])
    (row,) = json.loads(shown.stdout)
    assert row["import_id"] == out["import_id"] and row["loaded"] == 18
    table = runner.invoke(
        app,
        [
            "--project",
            str(root),
            "import",
            "table",
            str(t / "events.csv"),
            "-m",
            str(t / "events.yaml"),
        ],
    )
    assert table.exit_code == 0
    assert "nothing was loaded twice" in " ".join(table.stdout.split())


def test_a_file_imported_again_in_another_time_zone_is_not_said_to_load_nothing(
    tmp_path: Path,
) -> None:
    # The same bytes read in another time zone load every stage entry again an hour
    # apart; the command said "nothing was loaded twice".
    root = _project(tmp_path)
    t = FIXTURES / "table"
    args = ["--project", str(root), "import", "table", str(t / "events.csv")]
    args += ["-m", str(t / "events.yaml")]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, [*args, "--timezone", "Europe/Madrid"])
    assert again.exit_code == 0
    text = " ".join(again.stdout.split())
    assert "nothing was loaded twice" not in text
    assert "yet 14 rows were loaded that they did not load" in text
    assert "--timezone" in text


def test_import_fail_exits_with_the_rows(tmp_path: Path) -> None:
    root = _project(tmp_path)
    t = FIXTURES / "table"
    result = runner.invoke(
        app,
        [
            "--project",
            str(root),
            "import",
            "table",
            str(t / "events.csv"),
            "-m",
            str(t / "events.yaml"),
            "--on-error",
            "fail",
        ],
    )
    assert result.exit_code == 5
    output = " ".join(result.output.split())
    assert "row 17" in output and "nothing was loaded" in output


def test_import_salesforce_and_xes(tmp_path: Path) -> None:
    root = _project(tmp_path)
    sf = FIXTURES / "salesforce"
    out = _json(root, "import", "salesforce", str(sf), "--fx", str(sf / "DatedConversionRate.csv"))
    assert out["counts"]["deals"]["loaded"] == 3  # type: ignore[index]
    xes = _json(
        root, "import", "xes", str(FIXTURES / "xes" / "small.xes"), "--amount-attribute", "Amount"
    )
    assert xes["counts"]["stage_events"]["loaded"] == 7  # type: ignore[index]


def test_import_salesforce_with_accounts_and_users(tmp_path: Path) -> None:
    root = _project(tmp_path)
    sf, extra = FIXTURES / "salesforce", FIXTURES / "salesforce-directory"
    out = _json(
        root,
        "import",
        "salesforce",
        str(sf / "Opportunity.csv"),
        "--accounts",
        str(extra / "Account.csv"),
        "--users",
        str(extra / "User.csv"),
        "--fx",
        str(sf / "DatedConversionRate.csv"),
    )
    assert out["files"] == ["Opportunity.csv", "Account.csv", "User.csv"]
    log = fw.open(root)
    owners = log.deals.select("deal_id", "owner_id").order_by("deal_id").execute()
    assert owners.owner_id.tolist() == ["Lucía Gómez", "Ana Ruiz (0055g00000Usr02)", "Lucía Gómez"]
    log.store.close()


def test_suggest_mapping_writes_a_fragment(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    (tmp_path / "e.csv").write_text("deal_id,stage,entered\nA,Firmas,2024-01-01\n")
    fragment = tmp_path / "fragment.yaml"
    result = runner.invoke(
        app,
        [
            "--project",
            str(root),
            "import",
            "table",
            str(tmp_path / "e.csv"),
            "-m",
            str(tmp_path / "m.yaml"),
            "--suggest-mapping",
            str(fragment),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "'Firmas': 1 rows" in fragment.read_text()


def test_import_hubspot_and_pipedrive(tmp_path: Path) -> None:
    hs, pd_ = FIXTURES / "hubspot", FIXTURES / "pipedrive"
    root = tmp_path / "hs"
    root.mkdir()
    (root / "process.yaml").write_text((hs / "process.yaml").read_text(encoding="utf-8"))
    out = _json(
        root, "import", "hubspot", str(hs / "hubspot-deals.csv"), "--fx", str(hs / "fx.csv")
    )
    assert out["counts"]["stage_events"]["loaded"] == 5 + 3 + 2 + 2  # type: ignore[index]
    root = tmp_path / "pd"
    root.mkdir()
    (root / "process.yaml").write_text((pd_ / "process.yaml").read_text(encoding="utf-8"))
    out = _json(
        root,
        "import",
        "pipedrive",
        str(pd_ / "deals.csv"),
        "--changes",
        str(pd_ / "stage-changes.csv"),
        "--fx",
        str(pd_ / "fx.csv"),
    )
    assert out["counts"]["deals"]["loaded"] == 3  # type: ignore[index]
    assert out["quarantined_rows"] == 1


def test_import_summary_counts_in_words(tmp_path: Path) -> None:
    pd_ = FIXTURES / "pipedrive"
    root = tmp_path / "pd"
    root.mkdir()
    (root / "process.yaml").write_text((pd_ / "process.yaml").read_text(encoding="utf-8"))
    args = ["import", "pipedrive", str(pd_ / "deals.csv"), "--changes"]
    args += [str(pd_ / "stage-changes.csv"), "--fx", str(pd_ / "fx.csv")]
    result = runner.invoke(app, ["--project", str(root), *args])
    assert result.exit_code == 0, result.output
    assert "Done: 1 problem, 1 row quarantined" in result.stdout


def test_quality_and_export(tiny_project: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), "quality", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    checks = {r["check"]: r["deals"] for r in report["frames"]["issues"]}
    assert checks["no stage history"] == 0 and checks["missing amount"] == 0
    fields = runner.invoke(
        app, ["--project", str(tiny_project), "quality", "-f", "csv", "--frame", "fields"]
    )
    assert fields.exit_code == 0 and fields.stdout.startswith("pipeline_id,stage_id,field,")
    out = tmp_path / "tiny.csv"
    result = runner.invoke(app, ["--project", str(tiny_project), "export", "table", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") == 1 + 15
    xes = tmp_path / "tiny.xes"
    result = runner.invoke(app, ["--project", str(tiny_project), "export", "xes", str(xes)])
    assert result.exit_code == 0, result.output
    assert xes.read_text().count("<event>") == 15


def test_import_messages_are_one_line_each_when_piped(tmp_path: Path) -> None:
    """A note longer than the width of piped output stays on one line."""
    result = _import_events(
        _project(tmp_path),
        tmp_path / "a-rather-long-name-for-a-crm-report-of-stage-history.csv",
        'id,stage,at,amount\nD1,Prospecting,2024-01-02,"12,000"\nD1,Closed Won,2024-02-01,\n',
        extra="amount",
    )
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and len(notes[0]) > 200, result.stdout
    assert notes[0].endswith("pass --decimal-comma for the other way)")
    done = result.stdout.splitlines()[-1]
    assert done.startswith("Done: ") and done.endswith(".")


def test_the_closing_line_keeps_brackets_and_reads_to_the_second(tmp_path: Path) -> None:
    # A project folder named "[draft]" had lost its brackets to markup in the
    # quarantine path, and the time had printed with microseconds.
    (tmp_path / "[draft]").mkdir()
    root = _project(tmp_path / "[draft]")
    result = _import_events(
        root,
        tmp_path / "events.csv",
        "id,stage,at\nD1,Prospecting,2024-01-02 10:00:00.123456\nD2,Prospecting,1900-01-01\n",
    )
    done = result.stdout.splitlines()[-1]
    assert f"(see {root / 'quarantine'}" in done
    assert done.endswith("; observed until 2024-01-02 10:00:00.")


def test_the_problem_list_explains_a_skipped_copy(tmp_path: Path) -> None:
    result = _import_events(
        _project(tmp_path),
        tmp_path / "events.csv",
        "id,stage,at\nD1,Prospecting,2024-01-02\nD1,Prospecting,2024-01-02\n"
        "D1,Closed Won,2024-02-01\n",
    )
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Problems ("))
    assert "skipped: an exact copy of a loaded row" in header
    assert any("duplicate (skipped)" in line for line in lines), result.stdout
