"""The foundation commands through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

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


def test_process_check_reports_problems_with_lines(tmp_path: Path) -> None:
    bad = tmp_path / "process.yaml"
    bad.write_text(template_text().replace("target_days: 14", "target_days: -3", 1))
    result = runner.invoke(app, ["process", "check", str(bad)])
    assert result.exit_code == 2
    assert "process.yaml:40: pipelines[0].stages[1].target_days" in result.output


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


def test_info_on_missing_project_teaches(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--project", str(tmp_path), "info"])
    assert result.exit_code == 2
    assert "funnelwise demo" in result.output
