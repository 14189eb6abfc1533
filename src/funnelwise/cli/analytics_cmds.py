"""Analytics commands: funnel, outcomes, timing, ... Each opens the log with the
common filters, calls one analysis and prints its result. No computation here.

A command is written as `name(log, *, own options) -> Result`; the
`analysis_command` decorator adds the options every command shares (--as-of,
--since, --until, --pipeline, --format, --frame), opens the log and prints the result.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable
from typing import Annotated, Any

import typer

from funnelwise import analytics
from funnelwise.analytics.outcomes import HORIZONS
from funnelwise.analytics.result import Result
from funnelwise.cli.context import cli_context, cut
from funnelwise.cli.render import FrameOpt, OutputFormat, print_result
from funnelwise.errors import InputError
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
CohortOpt = Annotated[
    str | None, typer.Option("--cohort", help="Split by created week, month, quarter, year.")
]
LimitOpt = Annotated[
    int,
    typer.Option("--limit", min=0, help="Most deals listed (the summary counts them all)."),
]


def _log(
    ctx: typer.Context,
    *,
    as_of: str | None,
    since: str | None,
    until: str | None,
    pipeline: str | None,
) -> EventLog:
    log = cli_context(ctx).log(read_only=True).filter(pipeline=pipeline, since=since, until=until)
    return cut(log, as_of)


_SHARED = (
    inspect.Parameter("as_of", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=AsOfOpt),
    inspect.Parameter("since", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SinceOpt),
    inspect.Parameter("until", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UntilOpt),
    inspect.Parameter(
        "pipeline", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=PipelineOpt
    ),
    inspect.Parameter(
        "fmt", inspect.Parameter.KEYWORD_ONLY, default=OutputFormat.table, annotation=FormatOpt
    ),
    inspect.Parameter("frame", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=FrameOpt),
)
_COMMANDS: list[Callable[..., None]] = []


def analysis_command(analysis: Callable[..., Result]) -> Callable[..., None]:
    """A Typer command from `analysis(log, *, options) -> Result`, with the shared options."""
    own = [
        p for p in inspect.signature(analysis, eval_str=True).parameters.values() if p.name != "log"
    ]

    def command(ctx: typer.Context, **options: Any) -> None:
        fmt, frame = options.pop("fmt"), options.pop("frame")
        shared = {name: options.pop(name) for name in ("as_of", "since", "until", "pipeline")}
        print_result(analysis(_log(ctx, **shared), **options), fmt, frame=frame)

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    command.__signature__ = inspect.Signature([context, *own, *_SHARED])  # type: ignore[attr-defined]
    command.__name__ = analysis.__name__
    command.__doc__ = analysis.__doc__
    command.__annotations__ = {}
    _COMMANDS.append(command)
    return command


@analysis_command
def funnel(
    log: EventLog,
    *,
    by: ByOpt = None,
    cohort: CohortOpt = None,
) -> Result:
    """Deals reaching each stage (or a later one), conversion by count and value."""
    return analytics.funnel(log, by=by, cohort=cohort)


@analysis_command
def outcomes(
    log: EventLog,
    *,
    by: ByOpt = None,
    horizon: Annotated[
        list[int] | None, typer.Option("--horizon", help="Days to report (repeatable).")
    ] = None,
    days: DaysOpt = "calendar",
) -> Result:
    """Chance of won / lost / no decision with open deals censored, beside won/closed."""
    bad = [h for h in horizon or () if h < 1]
    if bad:
        raise InputError(
            f"--horizon must be a positive number of days (got {bad[0]}), for example 90"
        )
    horizons = tuple(horizon) if horizon else HORIZONS
    return analytics.outcomes(log, by=by, horizons=horizons, days=days)


@analysis_command
def timing(log: EventLog, *, by: ByOpt = None, days: DaysOpt = "calendar") -> Result:
    """Time per visit to each stage (median, p75, p90, mean, share over target) and cycle time."""
    return analytics.timing(log, by=by, days=days)


@analysis_command
def snapshot(log: EventLog, *, by: ByOpt = None) -> Result:
    """Open deals per stage (count, value, weighted value) as known at --as-of."""
    return analytics.snapshot(log, by=by)


@analysis_command
def flow(
    log: EventLog,
    *,
    start: Annotated[str, typer.Option("--start", help="Start of the period (date).")],
    end: Annotated[str, typer.Option("--end", help="End of the period (date).")],
    by: ByOpt = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Count only deals at or beyond this stage.")
    ] = None,
    close_from: Annotated[
        str | None,
        typer.Option("--close-from", help="Only deals expected to close on or after this date."),
    ] = None,
    close_until: Annotated[
        str | None,
        typer.Option("--close-until", help="Only deals expected to close before this date."),
    ] = None,
) -> Result:
    """Pipeline flow from --start to --end: created, moved, won, lost... adding up exactly."""
    return analytics.flow(
        log,
        start=start,
        end=end,
        by=by,
        stage=stage,
        close_from=close_from,
        close_until=close_until,
    )


@analysis_command
def kpis(
    log: EventLog,
    *,
    by: ByOpt = None,
    target: Annotated[
        float | None, typer.Option("--target", help="Revenue target for pipeline coverage.")
    ] = None,
    cost: Annotated[
        list[str] | None,
        typer.Option("--cost", help="Spend per source as SOURCE=AMOUNT (repeatable)."),
    ] = None,
) -> Result:
    """Win rate, deal size, cycle, velocity, coverage, lead conversion, CPA and ROI."""
    return analytics.kpis(log, by=by, target=target, costs=_costs(cost) if cost else None)


@analysis_command
def bottlenecks(log: EventLog, *, by: ByOpt = None, days: DaysOpt = "calendar") -> Result:
    """Stages ranked by value lost there and by waiting beyond target × value."""
    return analytics.bottlenecks(log, by=by, days=days)


@analysis_command
def variants(
    log: EventLog,
    *,
    by: ByOpt = None,
    top: Annotated[
        int | None, typer.Option("--top", help="Only the most frequent variants per group.")
    ] = None,
) -> Result:
    """Variants (stage sequences) with counts, and the directly-follows graph."""
    if top is not None and top < 1:
        raise InputError(f"--top must be at least 1 (got {top}); leave it out for every variant")
    return analytics.discovery(log, by=by, top=top)


@analysis_command
def conformance(
    log: EventLog,
    *,
    by: ByOpt = None,
    limit: LimitOpt = 1000,
) -> Result:
    """Skipped stages, moves back, re-entries and unmet exit criteria; adherence per owner."""
    return analytics.conformance(log, by=by, list_limit=limit)


@analysis_command
def hygiene(
    log: EventLog,
    *,
    by: ByOpt = None,
    stale: Annotated[
        str, typer.Option("--stale", help="Stale after: p90 (learned), target, or days.")
    ] = "p90",
    limit: LimitOpt = 1000,
) -> Result:
    """Open deals that are stale, past close date, pushed, re-priced or missing fields."""
    threshold: str | float = stale
    with contextlib.suppress(ValueError):
        threshold = float(stale)
    if isinstance(threshold, float) and not threshold > 0:
        raise InputError(
            f"--stale must be a positive number of days, p90 or target (got {stale!r})"
        )
    return analytics.hygiene(log, by=by, stale=threshold, list_limit=limit)


@analysis_command
def whose_move(log: EventLog, *, by: ByOpt = None, days: DaysOpt = "calendar") -> Result:
    """Each stage's time split into waiting for the buyer and for the seller."""
    return analytics.whose_move(log, by=by, days=days)


def _costs(pairs: list[str]) -> dict[str, float]:
    costs = {}
    for pair in pairs:
        source, sep, amount = pair.partition("=")
        try:
            costs[source.strip()] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not source.strip():
            raise InputError(f"--cost {pair!r}: write SOURCE=AMOUNT, for example web=1200")
        if not 0 <= costs[source.strip()] < math.inf:
            raise InputError(
                f"--cost {pair!r}: a spend is an amount of 0 or more, for example web=1200"
            )
    return costs


def register(app: typer.Typer) -> None:
    """Attach the analytics commands to the root app."""
    for command in _COMMANDS:
        app.command(command.__name__.replace("_", "-"))(command)
