"""Analytics commands: funnel, outcomes, timing, ... Each opens the log with the
common filters, calls one analysis and prints its result. No computation here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from funnelwise import analytics
from funnelwise.analytics.outcomes import HORIZONS
from funnelwise.analytics.result import Result
from funnelwise.cli.context import cli_context
from funnelwise.cli.render import OutputFormat, console, print_frame, to_json
from funnelwise.log import EventLog

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Split by a deal column (owner_id, source, ...) or attribute."),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Analyse the log as it was known at this date.")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only deals created on or after this date.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only deals created before this date.")
]
PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline (id).")]
DaysOpt = Annotated[str, typer.Option("--days", help="Count calendar or business days (Mon–Fri).")]


def _log(
    ctx: typer.Context,
    *,
    as_of: str | None,
    since: str | None,
    until: str | None,
    pipeline: str | None,
) -> EventLog:
    log = cli_context(ctx).log().filter(pipeline=pipeline, since=since, until=until)
    return log.as_of(as_of) if as_of else log


def _emit(result: Result, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(result.to_dict()) + "\n")
    elif fmt is OutputFormat.csv:
        print_frame(result.to_frame(), fmt)
    else:
        console.print(result)


def funnel(
    ctx: typer.Context,
    by: ByOpt = None,
    cohort: Annotated[
        str | None, typer.Option("--cohort", help="Split by created week, month, quarter, year.")
    ] = None,
    as_of: AsOfOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pipeline: PipelineOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Deals reaching each stage (or a later one), conversion by count and value."""
    log = _log(ctx, as_of=as_of, since=since, until=until, pipeline=pipeline)
    _emit(analytics.funnel(log, by=by, cohort=cohort), fmt)


def outcomes(
    ctx: typer.Context,
    by: ByOpt = None,
    horizon: Annotated[
        list[int] | None, typer.Option("--horizon", help="Days to report (repeatable).")
    ] = None,
    days: DaysOpt = "calendar",
    as_of: AsOfOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pipeline: PipelineOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Chance of won / lost / no decision with open deals censored, beside won/closed."""
    log = _log(ctx, as_of=as_of, since=since, until=until, pipeline=pipeline)
    horizons = tuple(horizon) if horizon else HORIZONS
    _emit(analytics.outcomes(log, by=by, horizons=horizons, days=days), fmt)


def timing(
    ctx: typer.Context,
    by: ByOpt = None,
    days: DaysOpt = "calendar",
    as_of: AsOfOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    pipeline: PipelineOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Time in each stage (median, p75, p90, mean, share over target) and cycle time."""
    log = _log(ctx, as_of=as_of, since=since, until=until, pipeline=pipeline)
    _emit(analytics.timing(log, by=by, days=days), fmt)


def register(app: typer.Typer) -> None:
    """Attach the analytics commands to the root app."""
    for command in (funnel, outcomes, timing):
        app.command()(command)
