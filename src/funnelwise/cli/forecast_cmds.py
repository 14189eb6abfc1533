"""Forecast commands: `funnelwise forecast` and `funnelwise backtest`. They parse
options, call `funnelwise.forecast` and render its results; no computation here."""

from __future__ import annotations

import sys
from typing import Annotated

import pandas as pd
import typer

from funnelwise.cli.context import cli_context
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import (
    FrameOpt,
    OutputFormat,
    console,
    err_console,
    print_frame,
    print_frames,
    to_json,
)
from funnelwise.errors import InputError
from funnelwise.forecast import METHODS, BacktestResult, ForecastResult, backtest, forecast
from funnelwise.progressing import ProgressCallback
from funnelwise.timeutil import to_days, to_timestamp

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]
HorizonOpt = Annotated[
    str, typer.Option("--horizon", help="How far ahead: days or 90d, 12w, 3m, 1q, 1y.")
]
PathsOpt = Annotated[int, typer.Option("--paths", help="Monte Carlo paths (simulated futures).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (recorded in the result).")]
EveryOpt = Annotated[str, typer.Option("--every", help="Days between backtest cut-offs.")]


MAX_HORIZON_YEARS = 10
MIN_PATHS = 100


def _check_horizon(horizon: str) -> None:
    """InputError unless `--horizon` is a positive duration of at most ten years: the
    history cannot speak for longer, and dates beyond a few centuries do not exist."""
    days = to_days(horizon, name="--horizon")
    if days <= 0:
        raise InputError(f"--horizon must be positive (got {horizon!r}); for example 90d or 1q")
    if days > MAX_HORIZON_YEARS * 365.25:
        raise InputError(
            f"--horizon must be at most {MAX_HORIZON_YEARS} years (got {horizon!r}, "
            f"{days:,.0f} days); forecast a shorter span, for example 1y"
        )


def _check_paths(paths: int) -> None:
    """InputError unless `--paths` can give the 80% interval (P10 and P90)."""
    if paths < MIN_PATHS:
        raise InputError(
            f"--paths must be at least {MIN_PATHS} (got {paths}): fewer simulated futures "
            "cannot give an 80% interval; the default is 10000"
        )


def _check_every(every: str) -> None:
    """InputError unless `--every` is a positive duration."""
    if to_days(every, name="--every") <= 0:
        raise InputError(f"--every must be positive (got {every!r}); for example 14d")


def _check_cutoff_range(start: str | None, end: str | None) -> None:
    """InputError when the backtest's --start is after its --end."""
    if start is None or end is None:
        return
    if to_timestamp(start, name="--start") > to_timestamp(end, name="--end"):
        raise InputError(
            f"--start {start} is after --end {end}: the cut-offs run from --start to --end; "
            "swap them"
        )


def _money(value: float | None, currency: str) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.0f} {currency}"


def _print_forecast(r: ForecastResult) -> None:
    head = (
        f"[bold]{r.method}[/] forecast of bookings, {r.as_of:%Y-%m-%d} + "
        f"{round(r.horizon_days, 1):g} days" + (f" by {r.by}" if r.by else "")
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
        console.print(f"note: {note}", highlight=False, markup=False)
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
    by: Annotated[
        str | None,
        typer.Option(
            "--by", help="Per segment: a deal column (owner_id, source, ...) or attribute."
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
        typer.Option("--every", help="With --method auto: days between the backtest's cut-offs."),
    ] = "14d",
    fmt: FormatOpt = OutputFormat.table,
    frame: FrameOpt = None,
) -> None:
    """Bookings expected over the horizon, as a distribution: P10 / P50 / P90 per period."""
    _check_horizon(horizon)
    _check_paths(paths)
    _check_every(every)
    if target is not None and not target > 0:
        raise InputError(f"--target must be a positive amount (got {target:g})")
    log = cli_context(ctx).log(read_only=True)

    def run(progress: ProgressCallback | None = None) -> ForecastResult:
        return forecast(
            log,
            horizon=horizon,
            as_of=as_of,
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
        say = lambda text: err_console.print(text, highlight=False, markup=False)  # noqa: E731
        say(f"note: {result.method} forecast")
        if result.fallback:
            say(f"fell back: {result.fallback}")
        for note in result.notes:
            say(f"note: {note}")
    print_frames(result.frames, fmt, frame=frame, whole=whole)


def _print_backtest(bt: BacktestResult) -> None:
    n = len(bt.cutoffs)
    console.print(
        f"Backtest: {n} cut-off{'' if n == 1 else 's'} every {bt.every_days:g} days from "
        f"{bt.start:%Y-%m-%d} to {bt.end:%Y-%m-%d}, {bt.horizon_days:g}-day horizon",
        highlight=False,
    )
    scores = bt.scores_frame()[
        ["method", "wape", "bias", "pinball", "coverage80", "n_cutoffs", "n_fallback"]
    ]
    print_frame(scores, OutputFormat.table, title="accuracy per method (lower is better)")
    console.print(f"[bold]chosen: {bt.chosen}[/] — {bt.reason}", highlight=False)


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
    paths: PathsOpt = 10_000,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.table,
    frame: FrameOpt = None,
) -> None:
    """Forecast as of past dates with every method and score them against what was booked."""
    _check_horizon(horizon)
    _check_paths(paths)
    _check_every(every)
    _check_cutoff_range(start, end)
    log = cli_context(ctx).log(read_only=True)

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
            scores = {m: s.to_dict() for m, s in bt.scores.items()}
            sys.stdout.write(to_json({"methods": scores, "chosen": bt.chosen}) + "\n")
            err_console.print(f"chosen {bt.chosen}: {bt.reason}", highlight=False, markup=False)
        else:
            _print_backtest(bt)

    print_frames(bt.frames, fmt, frame=frame, whole=whole)


def register(app: typer.Typer) -> None:
    """Attach `forecast` and `backtest` to the root app."""
    app.command("forecast")(forecast_cmd)
    app.command("backtest")(backtest_cmd)
