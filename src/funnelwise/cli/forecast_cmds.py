"""Forecast commands: `funnelwise forecast` and `funnelwise backtest`. They parse
options, call `funnelwise.forecast` and render its results; no computation here."""

from __future__ import annotations

import sys
from typing import Annotated

import pandas as pd
import typer

from funnelwise.cli.analytics_cmds import PipelineOpt
from funnelwise.cli.context import cli_context, cut
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import (
    FrameOpt,
    OutputFormat,
    console,
    print_frame,
    print_frames,
    say,
    to_json,
)
from funnelwise.forecast import METHODS, BacktestResult, ForecastResult, backtest, forecast
from funnelwise.forecast.options import (
    check_cutoff_range,
    check_paths,
    check_spacing,
    check_target,
    horizon_days,
)
from funnelwise.progressing import ProgressCallback

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]
HorizonOpt = Annotated[
    str, typer.Option("--horizon", help="How far ahead: days or 90d, 12w, 3m, 1q, 1y.")
]
PathsOpt = Annotated[int, typer.Option("--paths", help="Monte Carlo paths (simulated futures).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded in the result).")]
EveryOpt = Annotated[
    str,
    typer.Option(
        "--every",
        help="Days between backtest cut-offs, or auto: a horizon apart where that leaves "
        "the 8 needed, else as far apart as 8 allow.",
    ),
]


def _money(value: float | None, currency: str) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f} {currency}"


def _of(pipeline: str | None) -> str:
    """' of pipeline X' for a result cut to one pipeline: its figures are that
    pipeline's alone, which nothing else in a table says."""
    return f" of pipeline {pipeline}" if pipeline else ""


def _print_forecast(r: ForecastResult) -> None:
    days = round(r.horizon_days, 1)
    head = (
        f"[bold]{r.method}[/] forecast of bookings{_of(r.pipeline)}, {r.as_of:%Y-%m-%d} + "
        f"{days:g} day{'' if days == 1 else 's'}" + (f" by {r.by}" if r.by else "")
    )
    console.print(head)
    console.print(
        f"  expected {_money(r.expected, r.currency)}; 80% interval "
        f"{_money(r.p10, r.currency)} – {_money(r.p90, r.currency)}; "
        f"median {_money(r.p50, r.currency)}",
        highlight=False,
    )
    if r.target is not None and r.prob_target is not None:
        console.print(
            f"  chance of reaching {_money(r.target, r.currency)}: {r.prob_target:.0%}",
            highlight=False,
        )
    parts = {k: v for k, v in r.components.items() if not pd.isna(v)}
    if parts:
        console.print(
            "  from "
            + ", ".join(f"{k.replace('_', ' ')} {_money(v, r.currency)}" for k, v in parts.items()),
            highlight=False,
        )
    if r.fallback:
        console.print(f"[yellow]fell back:[/] {r.fallback}", highlight=False, markup=True)
    for note in r.notes:
        say(f"note: {note}")
    frame = r.to_frame().drop(columns=["start", "end"])
    print_frame(frame, OutputFormat.table, title="bookings per period")
    if r.by:
        print_frame(r.totals, OutputFormat.table, title=f"horizon totals by {r.by}")


def forecast_cmd(
    ctx: typer.Context,
    horizon: HorizonOpt = "90d",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Forecast from this date (the log as known then).")
    ] = None,
    pipeline: PipelineOpt = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Per segment: a deal column (owner_id, source, ...) or attribute; it splits "
            "the forecast and leaves the model as it is.",
        ),
    ] = None,
    target: Annotated[
        float | None, typer.Option("--target", help="Amount to reach; prints its probability.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help=f"{', '.join(METHODS)} or auto (best backtest).")
    ] = "montecarlo",
    period: Annotated[
        str, typer.Option("--period", help="Report per week, month, quarter or horizon.")
    ] = "month",
    paths: PathsOpt = 10_000,
    seed: SeedOpt = 0,
    every: Annotated[
        str,
        typer.Option(
            "--every",
            help="With --method auto: days between the backtest's cut-offs (or auto).",
        ),
    ] = "14d",
    fmt: FormatOpt = OutputFormat.table,
    frame: FrameOpt = None,
) -> None:
    """Bookings expected over the horizon, as a distribution: P10 / P50 / P90 per period."""
    horizon_days(horizon, name="--horizon")
    check_paths(paths, name="--paths")
    check_spacing(every, name="--every")
    check_target(target, name="--target")
    # As every analysis command: a date after the end of the data is noted on stderr.
    log = cut(cli_context(ctx).log(read_only=True).filter(pipeline=pipeline), as_of)

    def run(progress: ProgressCallback | None = None) -> ForecastResult:
        return forecast(
            log,
            horizon=horizon,
            period=period,
            by=by,
            target=target,
            method=method,
            n_paths=paths,
            seed=seed,
            every=every,
            progress=progress,
        )

    if fmt is OutputFormat.table and method == "auto":
        with progress_bar() as progress:
            result = run(progress)
    else:
        result = run()

    def whole() -> None:
        if fmt is OutputFormat.json:
            sys.stdout.write(to_json(result.to_dict()) + "\n")
        else:
            _print_forecast(result)

    if fmt is OutputFormat.csv or (fmt is OutputFormat.table and frame is not None):
        # A table alone does not say which method answered, nor why: stderr does.
        say(f"note: {result.method} forecast{_of(result.pipeline)}", err=True)
        if result.fallback:
            say(f"fell back: {result.fallback}", err=True)
        for note in result.notes:
            say(f"note: {note}", err=True)
    print_frames(result.frames, fmt, frame=frame, whole=whole)


def _print_backtest(bt: BacktestResult) -> None:
    n = len(bt.cutoffs)
    console.print(
        f"Backtest{_of(bt.pipeline)}: {n} cut-off{'' if n == 1 else 's'} every "
        f"{bt.every_days:g} days from {bt.start:%Y-%m-%d} to {bt.end:%Y-%m-%d}, "
        f"{bt.horizon_days:g}-day horizon",
        highlight=False,
    )
    scores = bt.scores_frame()[
        ["method", "wape", "bias", "pinball", "coverage80", "n_cutoffs", "n_fallback"]
    ]
    print_frame(
        scores,
        OutputFormat.table,
        title="accuracy per method (wape, |bias| and pinball: lower is better; "
        "coverage80: nearest 80%)",
        percent=("wape", "bias", "coverage80"),
    )
    console.print(f"[bold]chosen: {bt.chosen}[/] — {bt.reason}", highlight=False)
    for note in bt.notes:
        say(f"note: {note}")


def backtest_cmd(
    ctx: typer.Context,
    horizon: HorizonOpt = "90d",
    every: EveryOpt = "14d",
    start: Annotated[
        str | None, typer.Option("--start", help="First cut-off (default: two horizons in).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last cut-off (default: a horizon before the end).")
    ] = None,
    pipeline: PipelineOpt = None,
    paths: PathsOpt = 10_000,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.table,
    frame: FrameOpt = None,
) -> None:
    """Forecast as of past dates with every method and score them against what was booked."""
    horizon_days(horizon, name="--horizon")
    check_paths(paths, name="--paths")
    check_spacing(every, name="--every")
    check_cutoff_range(start, end, names=("--start", "--end"))
    log = cli_context(ctx).log(read_only=True).filter(pipeline=pipeline)

    def run(progress: ProgressCallback | None = None) -> BacktestResult:
        return backtest(
            log,
            horizon=horizon,
            every=every,
            start=start,
            end=end,
            n_paths=paths,
            seed=seed,
            progress=progress,
        )

    if fmt is OutputFormat.table:
        with progress_bar() as progress:
            bt = run(progress)
    else:
        bt = run()

    def whole() -> None:
        if fmt is OutputFormat.json:
            sys.stdout.write(to_json(bt.to_dict()) + "\n")
            say(f"chosen {bt.chosen}: {bt.reason}", err=True)
        else:
            _print_backtest(bt)

    if fmt is OutputFormat.csv or (fmt is OutputFormat.table and frame is not None):
        # A table alone does not say which method a backtest left out, nor why, nor
        # which pipeline it covers: stderr does.
        if bt.pipeline:
            say(f"note: backtest{_of(bt.pipeline)}", err=True)
        for note in bt.notes:
            say(f"note: {note}", err=True)
    print_frames(bt.frames, fmt, frame=frame, whole=whole)


def register(app: typer.Typer) -> None:
    """Attach `forecast` and `backtest` to the root app."""
    app.command("forecast")(forecast_cmd)
    app.command("backtest")(backtest_cmd)
