"""The analytics commands through Typer's CliRunner: each prints its result."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import funnelwise as fw
from funnelwise.cli import app

runner = CliRunner()


def run(project: Path, *args: str) -> str:
    """What the command writes to stdout (notes go to stderr)."""
    result = runner.invoke(app, ["--project", str(project), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_funnel_json_csv_and_table(tiny_project: Path) -> None:
    data = json.loads(run(tiny_project, "funnel", "--format", "json"))
    assert data["analysis"] == "funnel"
    assert [r["reached"] for r in data["frames"]["stages"]] == [5, 4, 2, 1, 1, 1, 1]
    frame = pd.read_csv(io.StringIO(run(tiny_project, "funnel", "--by", "source", "-f", "csv")))
    assert frame.groupby("source").reached.first().to_dict() == {"partner": 2, "web": 3}
    table = run(tiny_project, "funnel", "--as-of", "2024-01-21")
    assert "Needs assessment" in table and "2024-01-21" in table


def test_filters_reach_the_analysis(tiny_project: Path) -> None:
    data = json.loads(
        run(tiny_project, "funnel", "--since", "2024-01-02", "--until", "2024-02-01", "-f", "json")
    )
    # Created in [01-02, 02-01): D2, D3, D5.
    assert data["frames"]["stages"][0]["reached"] == 3
    assert data["meta"]["since"].startswith("2024-01-02")
    bad = runner.invoke(app, ["--project", str(tiny_project), "funnel", "--pipeline", "nope"])
    assert bad.exit_code != 0


@pytest.mark.parametrize(
    "command",
    [
        ["funnel"],
        ["outcomes"],
        ["kpis"],
        ["hygiene"],
        ["flow", "--start", "2024-02-01", "--end", "2024-03-01"],
        ["quality"],
        ["export", "table"],
        ["forecast"],
        ["backtest"],
    ],
)
def test_an_unknown_pipeline_is_one_error_line(
    tiny_project: Path, tmp_path: Path, command: list[str]
) -> None:
    args = [*command, str(tmp_path / "x.csv")] if command[0] == "export" else command
    bad = runner.invoke(app, ["--project", str(tiny_project), *args, "--pipeline", "nope"])
    assert bad.exit_code == 2, bad.output
    assert bad.output == "error: no pipeline 'nope'; valid pipelines: new-business\n"


def test_outcomes_and_timing_commands(tiny_project: Path) -> None:
    data = json.loads(run(tiny_project, "outcomes", "--horizon", "45", "-f", "json"))
    created = data["frames"]["summary"][0]
    assert created["scope"] == "created" and abs(created["p_won"] - 4 / 15) < 1e-12
    assert {r["day"] for r in data["frames"]["horizons"]} == {45}
    timing = json.loads(run(tiny_project, "timing", "--days", "business", "-f", "json"))
    assert timing["meta"]["days"] == "business"
    assert "Qualification" in run(tiny_project, "timing")


def test_bad_options_teach(tiny_project: Path) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), "funnel", "--by", "colour"])
    assert result.exit_code == 2 and "owner_id" in result.output


def test_snapshot_and_flow_commands(tiny_project: Path) -> None:
    snap = json.loads(run(tiny_project, "snapshot", "--as-of", "2024-01-21", "-f", "json"))
    assert [r["deals"] for r in snap["frames"]["stages"]] == [1, 0, 1, 1, 0, 0]
    out = run(tiny_project, "flow", "--start", "2024-01-11", "--end", "2024-02-20", "-f", "csv")
    w = pd.read_csv(io.StringIO(out)).set_index("step")
    assert (w.value["start"], w.value["end"]) == (3800, 2300)
    assert w.value.drop(["start", "end"]).sum() == 2300 - 3800
    missing = runner.invoke(app, ["--project", str(tiny_project), "flow", "--start", "2024-01-11"])
    assert missing.exit_code == 2 and "--end" in missing.output


def test_kpis_command(tiny_project: Path) -> None:
    data = json.loads(
        run(tiny_project, "kpis", "--target", "4600", "--cost", "web=400", "-f", "json")
    )
    k = {r["kpi"]: r for r in data["frames"]["kpis"]}
    assert k["pipeline_coverage"]["value"] == 0.5 and k["open_deals"]["value"] == 2
    assert data["frames"]["campaigns"][0]["key"] == "web"
    bad = runner.invoke(app, ["--project", str(tiny_project), "kpis", "--cost", "web"])
    assert bad.exit_code == 2 and "SOURCE=AMOUNT" in bad.output


def test_bottlenecks_command(tiny_project: Path) -> None:
    data = json.loads(run(tiny_project, "bottlenecks", "-f", "json"))
    first = data["frames"]["ranking"][0]
    # Lead first since waiting is counted per visit (see test_analytics_bottlenecks).
    assert (first["rank"], first["stage_id"]) == (1, "lead")
    table = run(tiny_project, "bottlenecks")
    assert "Qualification" in table
    # The score sums two shares (0 to 2): printed as that sum beside the two shares,
    # not as a percentage that can read 200%.
    row = next(line for line in table.splitlines() if "│ Lead " in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    lost, waiting = f"{first['share_lost']:.1%}", f"{first['share_waiting']:.1%}"
    assert cells[3:7] == [lost, cells[4], waiting, f"{first['score']:.2f}"], cells


def test_variants_command(tiny_project: Path) -> None:
    out = run(tiny_project, "variants", "--top", "3", "-f", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert len(frame) == 3 and frame.deals.tolist() == [1, 1, 1]
    data = json.loads(run(tiny_project, "variants", "-f", "json"))
    edges = {(e["source"], e["target"]): e["count"] for e in data["frames"]["edges"]}
    assert edges[("lead", "qualification")] == 4


def test_conformance_hygiene_and_whose_move_commands(tiny_project: Path) -> None:
    conf = json.loads(run(tiny_project, "conformance", "--limit", "2", "-f", "json"))
    assert conf["frames"]["summary"][0]["deals"] == 5 and len(conf["frames"]["deals"]) == 2
    # Both open deals idle 29 days: stale after 25, not after 30 (D3 stays listed for
    # its pushed close date and amount change).
    hyg = json.loads(run(tiny_project, "hygiene", "--stale", "25", "-f", "json"))
    assert [d["deal_id"] for d in hyg["frames"]["deals"] if d["stale"]] == ["D3", "D4"]
    assert hyg["meta"]["stale"] == 25
    calm = json.loads(run(tiny_project, "hygiene", "--stale", "30", "-f", "json"))
    assert [(d["deal_id"], d["stale"]) for d in calm["frames"]["deals"]] == [("D3", False)]
    out = run(tiny_project, "whose-move", "-f", "csv")
    assert pd.read_csv(io.StringIO(out)).stage_id.tolist()[0] == "lead"


def test_csv_prints_one_table_and_names_the_others(tiny_project: Path) -> None:
    base = ["--project", str(tiny_project), "hygiene", "--stale", "25"]
    first = runner.invoke(app, [*base, "-f", "csv"])
    assert first.exit_code == 0, first.output
    assert pd.read_csv(io.StringIO(first.stdout)).open_deals.tolist() == [2]
    assert "--frame" in first.stderr and "deals" in first.stderr
    deals = pd.read_csv(io.StringIO(run(tiny_project, *base[2:], "-f", "csv", "--frame", "deals")))
    assert deals.deal_id.tolist() == ["D3", "D4"]
    records = json.loads(run(tiny_project, *base[2:], "-f", "json", "--frame", "deals"))
    assert [r["deal_id"] for r in records] == ["D3", "D4"]
    table = run(tiny_project, *base[2:], "--frame", "deals")
    assert "D4" in table and "summary" not in table
    bad = runner.invoke(app, [*base, "-f", "csv", "--frame", "nope"])
    assert bad.exit_code == 2 and "summary, deals" in bad.output


def test_csv_of_a_single_table_has_no_note(tiny_project: Path) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), "whose-move", "-f", "csv"])
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["outcomes", "--horizon", "-5"], "--horizon must be a positive number of days"),
        (["outcomes", "--horizon", "30", "--horizon", "0"], "(got 0)"),
        (["variants", "--top", "0"], "--top must be at least 1"),
        (["variants", "--top", "-3"], "--top must be at least 1"),
        (["hygiene", "--stale", "-5"], "--stale must be a positive number of days"),
        (["kpis", "--cost", "web=-100"], "a spend is an amount of 0 or more"),
        (["funnel", "--since", "2024-02-01", "--until", "2024-01-01"], "is not before --until"),
        (["outcomes", "--since", "2024-02-01", "--until", "2024-02-01"], "is not before --until"),
        (["kpis", "--since", "2024-03-01", "--until", "2024-01-01"], "is not before --until"),
    ],
)
def test_nonsense_values_are_refused(tiny_project: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output, result.output


def test_whose_move_table_shows_the_time_it_cannot_split(tiny_log: fw.EventLog) -> None:
    # The tiny log has no activity with a direction: all of each stage's time is
    # unknown, and the printed table says so instead of 0 buyer and 0 seller days.
    r = fw.whose_move(tiny_log)
    shown = r.display_frame("stages")
    assert (r.stages.buyer_days == 0).all() and (r.stages.seller_days == 0).all()
    assert (r.stages.days > 0).any()
    assert shown.unknown_days.tolist() == shown.days.tolist()
