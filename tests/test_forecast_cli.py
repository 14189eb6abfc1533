"""`funnelwise forecast` and `funnelwise backtest` through Typer's CliRunner."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast_data import Memoryless, build_memoryless
from funnelwise.cli import app
from two_pipelines import WEIGHTED, build_two_pipelines

runner = CliRunner()
SCORE_KEYS = {"wape", "bias", "pinball", "coverage80", "n_cutoffs"}


@pytest.fixture(scope="module")
def memoryless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_memoryless(tmp_path_factory.mktemp("cli"), Memoryless(rate=4.0, days=240), seed=1)


@pytest.fixture(scope="module")
def two_pipelines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_two_pipelines(tmp_path_factory.mktemp("pipelines"))


def test_forecast_json_flags_the_fallback(tiny_project: Path) -> None:
    result = runner.invoke(
        app, ["--project", str(tiny_project), "forecast", "--horizon", "30d", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["requested"], out["method"]) == ("montecarlo", "weighted_pipeline")
    assert "closed deals: the log has 3" in out["fallback"]
    assert out["expected"] == pytest.approx(400.0)
    assert [p["period"] for p in out["periods"]] == ["2024-03"]
    # The CSV holds figures only: stderr says which method answered, and why.
    csv = runner.invoke(app, ["--project", str(tiny_project), "forecast", "-f", "csv"])
    assert csv.exit_code == 0, csv.output
    assert "note: weighted_pipeline forecast" in csv.stderr
    assert "fell back: " in csv.stderr and "closed deals: the log has 3" in csv.stderr
    # One line per message, however long: scripts grep stderr for them.
    lines = csv.stderr.splitlines()
    assert all(line.startswith(("note: ", "fell back: ")) for line in lines), lines
    assert max(len(line) for line in lines) > 100


def test_forecast_csv_and_table(tiny_project: Path) -> None:
    args = ["--project", str(tiny_project), "forecast", "--method", "weighted_pipeline"]
    csv = runner.invoke(app, [*args, "--horizon", "90d", "--by", "source", "--format", "csv"])
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(io.StringIO(csv.stdout))
    web = frame[(frame.segment == "web") & (frame.period == "2024-03")]
    assert web.expected.tolist() == [400.0]
    assert "totals, fan, history" in csv.stderr
    totals = runner.invoke(app, [*args, "--by", "source", "-f", "csv", "--frame", "totals"])
    assert totals.exit_code == 0 and totals.stderr == "note: weighted_pipeline forecast\n"
    assert set(pd.read_csv(io.StringIO(totals.stdout)).segment) == {"all", "partner", "web"}
    table = runner.invoke(
        app, [*args, "--target", "500", "--as-of", "2024-02-05", "--horizon", "30d"]
    )
    assert table.exit_code == 0, table.output
    assert "expected 440 USD" in table.stdout
    assert "chance of reaching 500 USD" in table.stdout
    # Periods cut by the as-of date and the horizon say how many days they hold.
    # Feb 6 to 29 and Mar 1 to 6 (the dates after the as-of date): 24 + 6 days.
    assert re.search(r"2024-02 │ +24 │", table.stdout), table.stdout
    assert re.search(r"2024-03 │ +6 │", table.stdout), table.stdout


def test_forecast_bad_options_exit_2(tiny_project: Path) -> None:
    base = ["--project", str(tiny_project), "forecast"]
    bad_method = runner.invoke(app, [*base, "--method", "magic"])
    assert bad_method.exit_code == 2
    assert "unknown method 'magic'" in bad_method.output
    bad_period = runner.invoke(app, [*base, "--period", "fortnight"])
    assert bad_period.exit_code == 2 and "not one of week" in bad_period.output


NONSENSE = [
    (["--horizon", "99999d"], "--horizon must be at most 10 years"),
    (["--horizon", "250y"], "--horizon must be at most 10 years"),
    (["--horizon", "-30"], "--horizon must be positive"),
    (["--horizon", "0d"], "--horizon must be positive"),
    (["--paths", "0"], "--paths must be at least 100"),
    (["--paths", "-3"], "--paths must be at least 100"),
    (["--paths", "1"], "cannot give an 80% interval"),
    (["--target", "-500"], "--target must be a positive amount"),
    (["--every", "-14d"], "--every must be positive"),
]


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        (command, options, message)
        for command in ("forecast", "backtest")
        for options, message in NONSENSE
        if not (command == "backtest" and options[0] == "--target")  # backtest has none
    ],
)
def test_forecast_and_backtest_refuse_nonsense_sizes(
    tiny_project: Path, command: str, options: list[str], message: str
) -> None:
    result = runner.invoke(app, ["--project", str(tiny_project), command, *options])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --") and message in result.output, result.output


def test_backtest_start_after_end_is_said(tiny_project: Path) -> None:
    args = ["--start", "2024-02-01", "--end", "2024-01-01"]
    result = runner.invoke(app, ["--project", str(tiny_project), "backtest", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --start 2024-02-01 is after --end 2024-01-01")


def test_backtest_of_one_cut_off_says_so_in_the_singular(tiny_project: Path) -> None:
    args = ["--start", "2024-02-01", "--end", "2024-02-01", "--horizon", "14d", "--paths", "200"]
    result = runner.invoke(app, ["--project", str(tiny_project), "backtest", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Backtest: 1 cut-off every 14 days"), result.stdout
    assert result.stderr == ""


def _json(root: Path, command: str, *options: str) -> dict[str, Any]:
    """Run a command on the project with 1,000 paths and JSON output; the parsed JSON."""
    args = ["--project", str(root), command, *options, "--paths", "1000", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_backtest_json_shape(memoryless: Path) -> None:
    out = _json(memoryless, "backtest", "--horizon", "30d", "--every", "45d")
    # The result's own JSON: its notes and cut-off rows too, not the scores alone.
    assert set(out) >= {"methods", "chosen", "reason", "notes", "cutoffs", "spread"}
    assert any(n.startswith("montecarlo_calibrated: ") for n in out["notes"]), out["notes"]
    assert len(out["cutoffs"]) == 4 * 5
    assert set(out["methods"]) == {
        "weighted_pipeline",
        "weighted_historical",
        "run_rate",
        "montecarlo",
        "montecarlo_calibrated",
    }
    for scores in out["methods"].values():
        assert set(scores) >= SCORE_KEYS
        assert scores["n_cutoffs"] == 4  # days 60, 105, 150 and 195 of 240
    assert out["chosen"] in out["methods"]


def test_forecast_auto_says_why(memoryless: Path) -> None:
    out = _json(memoryless, "forecast", "--method", "auto", "--every", "60d", "--horizon", "30d")
    assert out["requested"] == "auto"
    assert out["method"] in {"weighted_pipeline", "weighted_historical", "run_rate", "montecarlo"}
    assert out["notes"][0].startswith("method chosen by a backtest of 3 cut-offs:")


def test_backtest_every_auto_spaces_the_cut_offs_itself(tiny_project: Path) -> None:
    # The tiny log (two months) fits 14-day horizons; auto keeps enough cut-offs,
    # a week apart at the closest.
    args = ["--horizon", "14d", "--paths", "200", "--every", "auto"]
    result = runner.invoke(app, ["--project", str(tiny_project), "backtest", *args])
    assert result.exit_code == 0, result.output
    assert re.match(r"Backtest: \d+ cut-offs every 7 days from ", result.stdout), result.stdout


def test_backtest_table_prints_shares_as_percentages(memoryless: Path) -> None:
    args = ["--horizon", "30d", "--every", "45d", "--paths", "1000"]
    result = runner.invoke(app, ["--project", str(memoryless), "backtest", *args])
    assert result.exit_code == 0, result.output
    lines = [line.split("│") for line in result.stdout.splitlines() if line.startswith("│")]
    cells = {parts[1].strip(): [c.strip() for c in parts[2:6]] for parts in lines}
    # WAPE, bias and coverage are shares; pinball is a ratio to mean bookings.
    for method in ("run_rate", "montecarlo"):
        wape, bias, pinball, coverage = cells[method]
        assert wape.endswith("%") and bias.endswith("%") and coverage.endswith("%"), cells
        assert not pinball.endswith("%"), cells
    assert "coverage80: nearest 80%" in " ".join(result.stdout.split())
    # What the backtest noted (a method left out, the calibration) is printed too.
    assert "note: montecarlo_calibrated: at the end of observation" in result.stdout


def test_forecast_as_of_after_the_data_says_so(tiny_project: Path) -> None:
    # As every analysis command: the figures are of the data's end, and stderr says so.
    args = ["--project", str(tiny_project), "forecast", "--as-of", "2030-01-01", "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "note: --as-of 2030-01-01 is after the end of the data" in result.stderr
    assert json.loads(result.stdout)["as_of"] == "2024-03-01T00:00:00"


def test_forecast_of_one_day_says_so_in_the_singular(tiny_project: Path) -> None:
    args = ["--project", str(tiny_project), "forecast", "--horizon", "1d"]
    result = runner.invoke(app, [*args, "--method", "weighted_pipeline"])
    assert result.exit_code == 0, result.output
    assert "forecast of bookings, 2024-03-01 + 1 day\n" in result.stdout, result.stdout


def test_forecast_of_one_pipeline_counts_its_own_open_deals(two_pipelines: Path) -> None:
    def weighted(*pipeline: str) -> dict[str, Any]:
        args = ["forecast", "--method", "weighted_pipeline", "--horizon", "90d", *pipeline]
        return _json(two_pipelines, *args)

    both = weighted()
    new, renewals = weighted("--pipeline", "new-business"), weighted("--pipeline", "renewals")
    # Amount × probability of the pipeline's own open deals closing by 2024-09-29:
    # N5 1,000 × 0.2 + N6 2,000 × 0.6 (N7 closes after it); R5 3,000 × 0.5 + R6 500 × 0.9.
    assert new["expected"] == pytest.approx(1000 * 0.2 + 2000 * 0.6) == WEIGHTED["new-business"]
    assert renewals["expected"] == pytest.approx(3000 * 0.5 + 500 * 0.9) == WEIGHTED["renewals"]
    assert new["expected"] + renewals["expected"] == pytest.approx(both["expected"]) == 3350.0
    assert [o["diagnostics"]["open_deals"] for o in (both, new, renewals)] == [5, 3, 2]
    assert [o["pipeline"] for o in (both, new, renewals)] == [None, "new-business", "renewals"]
    table = runner.invoke(
        app,
        ["--project", str(two_pipelines), "forecast", "--pipeline", "renewals", "--paths", "100"],
    )
    assert table.exit_code == 0, table.output
    assert "forecast of bookings of pipeline renewals, 2024-07-01 + 90 days" in table.stdout


def test_backtest_of_one_pipeline_scores_against_its_own_bookings(two_pipelines: Path) -> None:
    def actuals(*pipeline: str) -> dict[str, float]:
        out = _json(two_pipelines, "backtest", "--horizon", "30d", "--every", "30d", *pipeline)
        assert out["pipeline"] == (pipeline[1] if pipeline else None)
        rows = [r for r in out["cutoffs"] if r["method"] == "weighted_pipeline"]
        return {r["cutoff"][:10]: r["actual"] for r in rows}

    both = actuals()
    new, renewals = actuals("--pipeline", "new-business"), actuals("--pipeline", "renewals")
    # Won in the 30 days after each cut-off: N1 03-10, N2 04-15, N3 05-20; R1 03-20,
    # R2 04-05, R3 06-10.
    assert new == {"2024-03-01": 1000, "2024-03-31": 2000, "2024-04-30": 4000, "2024-05-30": 0}
    assert renewals == {"2024-03-01": 300, "2024-03-31": 500, "2024-04-30": 0, "2024-05-30": 700}
    assert both == {day: new[day] + renewals[day] for day in new}
    one = ["--start", "2024-05-30", "--end", "2024-05-30", "--horizon", "30d", "--paths", "100"]
    table = runner.invoke(
        app, ["--project", str(two_pipelines), "backtest", *one, "--pipeline", "renewals"]
    )
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("Backtest of pipeline renewals: 1 cut-off every 14 days")
