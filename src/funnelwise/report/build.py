"""Build the report: run the analyses, turn their results into sections.

The report computes nothing itself. `build_report` runs each analysis on the
log (cut at `as_of` when given) and hands the results to the section
functions; `Report.html()` renders them as one self-contained page (see
`render`). An analysis this version of funnelwise lacks is left out with its
section; one that says it has not enough data (NotEnoughDataError) leaves a
section saying so. A process with several pipelines gets one part per
pipeline (their stages differ).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from funnelwise.analytics.common import stage_frame
from funnelwise.errors import NotEnoughDataError
from funnelwise.log import EventLog
from funnelwise.outfile import atomic_output
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.report import fmt, outlook, sections
from funnelwise.report.render import render
from funnelwise.report.section import TITLES, Section, notice
from funnelwise.scoring.features import has_leads
from funnelwise.timeutil import Instant

# The flow waterfall covers this many days up to the report's instant.
FLOW_DAYS = 90
FORECAST_HORIZON = "90d"
# Backtest cut-offs (None: no backtest) one forecast horizon apart where the log
# allows enough of them, so that each is a separate check of what was then booked
# and the history is pulled as few times as possible (the pull per cut-off is most
# of the report's time); closer on a shorter log, so that there are enough cut-offs
# to judge the methods (forecast.backtest.auto_spacing).
BACKTEST_EVERY = "auto"
# Simulated paths of the forecast: as many as `funnelwise forecast` draws, so the
# report and the command give the same figures for the same date and seed.
N_PATHS = 10_000
# Per backtest cut-off: fewer, as the backtest scores ranges over many cut-offs.
BACKTEST_PATHS = 2000


@dataclass(frozen=True)
class Options:
    """How the report calls the analyses."""

    flow_days: int = FLOW_DAYS
    horizon: str = FORECAST_HORIZON
    backtest_every: str | None = BACKTEST_EVERY
    n_paths: int = N_PATHS
    scoring: bool = True
    progress: ProgressCallback = no_progress
    backtest_paths: int = BACKTEST_PATHS


@dataclass(frozen=True)
class Analysis:
    """One analysis the report runs: its key (the section's), where its function
    lives, how to call it (returning None: not wanted with these options), and
    what in it needs closed deals (empty: nothing), said when no deal has closed."""

    name: str
    module: str
    call: Callable[[Callable[..., Any], EventLog, Options], Any]
    needs_closed: str = ""
    function_name: str | None = None  # default: the name

    def function(self) -> Callable[..., Any] | None:
        """The analysis function, or None when this version of funnelwise lacks it."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError:
            return None
        fn = getattr(module, self.function_name or self.name, None)
        return fn if callable(fn) else None


def _flow(f: Callable[..., Any], log: EventLog, o: Options) -> Any:
    return f(log, start=log.now - pd.Timedelta(days=o.flow_days), end=log.now)


def _backtest(f: Callable[..., Any], log: EventLog, o: Options) -> Any:
    if o.backtest_every is None:
        return None
    return f(
        log,
        horizon=o.horizon,
        every=o.backtest_every,
        n_paths=o.backtest_paths,
        progress=o.progress,
    )


def _leads(kpis: Callable[..., Any], log: EventLog) -> Any:
    """The lead figures per source, with the overall row of an unsplit run in meta."""
    per = kpis(log, by="source")
    overall = kpis(log).leads
    meta = dict(per.meta) | {"leads_overall": overall.iloc[0].to_dict() if len(overall) else None}
    return type(per)(dict(per.frames), meta)


def _scoring(f: Callable[..., Any], log: EventLog, o: Options) -> Any:
    return f(log, progress=o.progress) if o.scoring else None


def _lead_scoring(f: Callable[..., Any], log: EventLog, o: Options) -> Any:
    return f(log, target="converted", progress=o.progress) if o.scoring else None


ANALYTICS, FORECAST = "funnelwise.analytics", "funnelwise.forecast"
# In the order they run; the sections follow SECTION_ORDER.
ANALYSES: tuple[Analysis, ...] = (
    Analysis("funnel", ANALYTICS, lambda f, log, o: f(log)),
    Analysis(
        "data",
        "funnelwise.ingest.quality",
        lambda f, log, o: f(log),
        function_name="quality_report",
    ),
    Analysis("outcomes", ANALYTICS, lambda f, log, o: f(log)),
    Analysis(
        "kpis",
        ANALYTICS,
        lambda f, log, o: f(log),
        needs_closed="win rate, deal size and cycle time need closed deals",
    ),
    Analysis("timing", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("whose_move", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("bottlenecks", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("discovery", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("conformance", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("hygiene", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("snapshot", ANALYTICS, lambda f, log, o: f(log)),
    Analysis("flow", ANALYTICS, _flow),
    Analysis("forecast", FORECAST, lambda f, log, o: f(log, horizon=o.horizon, n_paths=o.n_paths)),
    Analysis("backtest", FORECAST, _backtest),
    Analysis(
        "scores",
        "funnelwise.scoring.registry",
        lambda f, log, o: {"won": f(log, target="won")},
        function_name="latest_scores",
    ),
    Analysis(
        "scoring",
        "funnelwise.scoring",
        _scoring,
        needs_closed="a win model learns from closed deals and is checked on later ones",
        function_name="evaluate_scorers",
    ),
)
# The leads' own part of the report (leads belong to no pipeline).
LEAD_ANALYSES: tuple[Analysis, ...] = (
    Analysis("leads", ANALYTICS, lambda f, log, o: _leads(f, log), function_name="kpis"),
    Analysis(
        "lead_scores",
        "funnelwise.scoring.registry",
        lambda f, log, o: {"converted": f(log, target="converted")},
        function_name="latest_scores",
    ),
    Analysis("lead_scoring", "funnelwise.scoring", _lead_scoring, function_name="evaluate_scorers"),
)
SECTION_ORDER = (
    "data",
    "kpis",
    "funnel",
    "outcomes",
    "timing",
    "whose_move",
    "bottlenecks",
    "discovery",
    "conformance",
    "hygiene",
    "snapshot",
    "flow",
    "forecast",
    "backtest",
    "scores",
    "scoring",
    "leads",
    "lead_scores",
    "lead_scoring",
)


def available_analyses() -> list[str]:
    """Names of the analyses this version of funnelwise has, that the report runs."""
    return [a.name for a in ANALYSES if a.function() is not None]


@dataclass(frozen=True, eq=False)
class Part:
    """The sections of one pipeline (`label` is None when the process has only one)
    and the analysis results they were drawn from, by analysis name."""

    pipeline_id: str | None
    label: str | None
    sections: tuple[Section, ...]
    results: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", MappingProxyType(dict(self.results)))


@dataclass(frozen=True, eq=False)
class Report:
    """A built report: title, the instant it describes, and its parts.

    `html()` renders the self-contained page; `write(path)` saves it.
    """

    title: str
    process: str
    as_of: pd.Timestamp
    currency: str
    parts: tuple[Part, ...]

    @property
    def sections(self) -> tuple[Section, ...]:
        """Every section, part after part."""
        return tuple(s for p in self.parts for s in p.sections)

    def section(self, key: str, pipeline: str | None = None) -> Section:
        """The section with this key (of the given pipeline, else of the first part)."""
        for part in self.parts:
            if pipeline is not None and part.pipeline_id != pipeline:
                continue
            for s in part.sections:
                if s.key == key:
                    return s
        keys = ", ".join(dict.fromkeys(s.key for s in self.sections))
        raise KeyError(f"no section {key!r}; sections: {keys}")

    def html(self) -> str:
        """The whole page as one string: plotly.js inline once, then every figure."""
        return render(self)

    def write(self, path: str | Path) -> Path:
        """Write the page to `path` (UTF-8) and return the path. Missing folders are
        created; the file appears whole or not at all (see `atomic_output`)."""
        out = Path(path)
        page = self.html()
        with atomic_output(out) as temp:
            temp.write_text(page, encoding="utf-8")
        return out


def _stage_names(log: EventLog) -> dict[str, str]:
    stages = stage_frame(log)
    return dict(zip(stages["stage_id"], stages["name"], strict=True))


# How each analysis result becomes its section.
SECTIONS: Mapping[str, Callable[[Any, EventLog], Section]] = {
    "data": lambda r, log: sections.data_section(r),
    "kpis": lambda r, log: sections.kpis_section(r),
    "funnel": lambda r, log: sections.funnel_section(r),
    "outcomes": lambda r, log: sections.outcomes_section(r, _stage_names(log)),
    "timing": lambda r, log: sections.timing_section(r),
    "bottlenecks": lambda r, log: sections.bottlenecks_section(r),
    "discovery": lambda r, log: sections.discovery_section(r, stage_frame(log)),
    "whose_move": lambda r, log: sections.whose_move_section(r),
    "conformance": lambda r, log: sections.conformance_section(r),
    "hygiene": lambda r, log: outlook.hygiene_section(r, _stage_names(log)),
    "snapshot": lambda r, log: outlook.snapshot_section(r),
    "flow": lambda r, log: outlook.flow_section(r),
    "forecast": lambda r, log: outlook.forecast_section(r),
    "backtest": lambda r, log: outlook.backtest_section(r, log.process.currency),
    "scores": lambda r, log: outlook.scores_section(r),
    "scoring": lambda r, log: outlook.scoring_section(r),
    "leads": lambda r, log: sections.leads_section(r),
    "lead_scores": lambda r, log: outlook.scores_section(r, key="lead_scores"),
    "lead_scoring": lambda r, log: outlook.scoring_section(r, key="lead_scoring"),
}


def _no_deals(results: Mapping[str, Any]) -> bool:
    funnel = results.get("funnel")
    if funnel is None:
        return False
    stages = funnel.to_frame()
    return bool(stages.empty) or int(stages["reached"].iloc[0]) == 0


def _no_closed_deals(results: Mapping[str, Any]) -> bool:
    outcomes = results.get("outcomes")
    if outcomes is None:
        return False
    s = outcomes.to_frame()
    s = s[s["scope"] == "created"]
    return bool(s.empty) or int(s[["won", "lost", "no_decision"]].to_numpy().sum()) == 0


def _part(
    log: EventLog,
    label: str | None,
    options: Options,
    step: Callable[[], None],
    analyses: Sequence[Analysis] = ANALYSES,
) -> Part:
    """Run the analyses of one pipeline (or the leads') and build its sections."""
    results: dict[str, Any] = {}
    missing: dict[str, str] = {}  # analysis -> why it has nothing to show
    for analysis in analyses:
        fn = analysis.function()
        if fn is None:
            continue
        if analysis.needs_closed and _no_closed_deals(results):
            missing[analysis.name] = (
                f"No deal has closed yet as of {fmt.date(log.now)}: {analysis.needs_closed}."
            )
        else:
            try:
                result = analysis.call(fn, log, options)
            except NotEnoughDataError as exc:
                missing[analysis.name] = f"Not enough data yet: {str(exc).rstrip('.')}."
            else:
                if result is not None:
                    results[analysis.name] = result
        step()
        if analysis.name == "funnel" and _no_deals(results):
            # Nothing else has anything to say about a log without deals. Cut at a
            # date, the funnel says why, as the command line does: before the first
            # deal it names that deal's date, which no advice to load deals gives.
            why = str(results["funnel"].meta.get("empty") or "")
            empty = notice(
                "no-deals",
                "No deals",
                why[:1].upper() + why[1:] + "."
                if why and log.cutoff is not None
                else f"This log holds no deals as of {fmt.date(log.now)}: load deals "
                "(funnelwise import) or choose a later --as-of date.",
            )
            return Part(log.pipeline_id, label, (empty,), results)
    built = [
        SECTIONS[name](results[name], log)
        if name in results
        else notice(name, TITLES[name], missing[name])
        for name in SECTION_ORDER
        if name in results or name in missing
    ]
    return Part(log.pipeline_id, label, tuple(built), results)


def build_report(
    log: EventLog,
    *,
    as_of: Instant | None = None,
    flow_days: int = FLOW_DAYS,
    horizon: str = FORECAST_HORIZON,
    backtest_every: str | None = BACKTEST_EVERY,
    n_paths: int = N_PATHS,
    scoring: bool = True,
    title: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Run the analyses on `log` (as known at `as_of`, default: its own instant) and
    collect their sections.

    Args:
        log: the event log (filtered as you like).
        as_of: describe the log as it was known at this instant (naive UTC).
        flow_days: the pipeline-flow waterfall covers the days up to the instant.
        horizon: the forecast horizon (a duration such as "90d").
        backtest_every: days between backtest cut-offs ("45d", or "auto": a horizon
            apart where that leaves enough of them); None leaves the backtest out
            (it is the slowest part of the report).
        n_paths: simulated paths of the forecast (each backtest cut-off draws
            `BACKTEST_PATHS`, or n_paths if fewer).
        scoring: include the win-score evaluation (fits the model and its
            baselines on a time-ordered split: slow, like the backtest).
        title: the page title (default: the process name).
        progress: called as `("report", done, total)` after each analysis (the
            backtest reports its own steps too).
    """
    cut = log.as_of(as_of) if as_of is not None else log
    pipelines = (
        [cut.process.pipeline(cut.pipeline_id)] if cut.pipeline_id else list(cut.process.pipelines)
    )
    report = progress or no_progress
    options = Options(
        flow_days,
        horizon,
        backtest_every,
        n_paths,
        scoring,
        report,
        backtest_paths=min(n_paths, BACKTEST_PATHS),
    )
    leads = has_leads(cut)
    lead_steps = len(LEAD_ANALYSES) if leads else 0
    total = len(available_analyses()) * len(pipelines) + lead_steps
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        report("report", min(done, total), total)

    if len(pipelines) == 1:
        parts = [_part(cut, None, options, step)]
    else:
        parts = [_part(cut.filter(pipeline=p.id), p.label, options, step) for p in pipelines]
    if leads:
        parts.append(_part(cut, "Leads", options, step, LEAD_ANALYSES))
    report("report", total, total)
    name = cut.process.name
    return Report(
        title=title or name,
        process=name,
        as_of=cut.now,
        currency=cut.process.currency,
        parts=tuple(parts),
    )


def write_report(
    log: EventLog,
    path: str | Path,
    *,
    as_of: Instant | None = None,
    quick: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Build the report of `log` and write it as one self-contained HTML file.
    `quick` leaves out the slow parts: the forecast backtest and the score evaluation."""
    report = build_report(
        log,
        as_of=as_of,
        backtest_every=None if quick else BACKTEST_EVERY,
        scoring=not quick,
        progress=progress,
    )
    return report.write(path)
