"""Build the report: call the analyses, turn their results into sections, render
one self-contained HTML file.

The report computes nothing itself. `build_report` runs each analysis on the
log (cut at `as_of` when given) and hands the results to the section
functions; `Report.html()` renders them with plotly.js embedded once, inline,
so the file opens anywhere without a network. A process with several
pipelines gets one part per pipeline (their stages differ).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import plotly.io as pio
import plotly.offline
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from funnelwise import analytics
from funnelwise.analytics.common import stage_frame
from funnelwise.analytics.result import Result
from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.report import charts, fmt, sections
from funnelwise.report.sections import Section
from funnelwise.timeutil import Instant

# The flow waterfall covers this many days up to the report's instant.
FLOW_DAYS = 90


@dataclass(frozen=True, eq=False)
class Part:
    """The sections of one pipeline (`label` is None when the process has only one)
    and the analysis results they were drawn from, by analysis name."""

    pipeline_id: str | None
    label: str | None
    sections: tuple[Section, ...]
    results: Mapping[str, Result] = field(default_factory=dict)

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
        """Write the page to `path` (UTF-8) and return the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html(), encoding="utf-8")
        return out


def _stage_names(log: EventLog) -> dict[str, str]:
    stages = stage_frame(log)
    return dict(zip(stages["stage_id"], stages["name"], strict=True))


# The analyses the report runs, in order: name in funnelwise.analytics, how to call
# it, and whether it needs closed deals (then a log without any gets a notice instead).
# One this version of funnelwise lacks is skipped, and so are its sections.
Call = Callable[[Callable[..., Result], EventLog, int], Result]
ANALYSES: tuple[tuple[str, Call, bool], ...] = (
    ("funnel", lambda f, log, _: f(log), False),
    ("outcomes", lambda f, log, _: f(log), False),
    ("kpis", lambda f, log, _: f(log), True),
    ("timing", lambda f, log, _: f(log), False),
    ("bottlenecks", lambda f, log, _: f(log), False),
    ("discovery", lambda f, log, _: f(log), False),
    ("snapshot", lambda f, log, _: f(log), False),
    (
        "flow",
        lambda f, log, flow_days: f(log, start=log.now - pd.Timedelta(days=flow_days), end=log.now),
        False,
    ),
)


def available_analyses() -> list[str]:
    """Names of the analyses this version of funnelwise has, that the report runs."""
    return [name for name, _, _ in ANALYSES if callable(getattr(analytics, name, None))]


def _sections(log: EventLog, r: Mapping[str, Any]) -> list[Section]:
    """Every section whose results are there, in reading order."""
    out = []
    if "kpis" in r:
        out.append(sections.kpis_section(r["kpis"]))
    elif "kpis" in available_analyses():
        out.append(sections.kpis_need_closed_deals(log.now))
    if "funnel" in r:
        out.append(sections.funnel_section(r["funnel"]))
    if "outcomes" in r:
        out.append(sections.outcomes_section(r["outcomes"], _stage_names(log)))
    if "timing" in r:
        out.append(sections.timing_section(r["timing"]))
    if "bottlenecks" in r:
        out.append(sections.bottlenecks_section(r["bottlenecks"]))
    if "discovery" in r:
        out.append(sections.discovery_section(r["discovery"], stage_frame(log)))
    if "snapshot" in r:
        out.append(sections.snapshot_section(r["snapshot"]))
    if "flow" in r:
        out.append(sections.flow_section(r["flow"]))
    return out


def _no_deals(results: Mapping[str, Result]) -> bool:
    funnel = results.get("funnel")
    if funnel is None:
        return False
    stages = funnel.to_frame()
    return stages.empty or int(stages["reached"].iloc[0]) == 0


def _no_closed_deals(results: Mapping[str, Result]) -> bool:
    outcomes = results.get("outcomes")
    if outcomes is None:
        return False
    s = outcomes.to_frame()
    s = s[s["scope"] == "created"]
    return s.empty or int(s[["won", "lost", "no_decision"]].to_numpy().sum()) == 0


def _part(log: EventLog, label: str | None, flow_days: int, step: Callable[[str], None]) -> Part:
    """Run the analyses of one pipeline and build its sections."""
    results: dict[str, Result] = {}
    for name, call, needs_closed in ANALYSES:
        fn = getattr(analytics, name, None)
        if not callable(fn):
            continue
        if not (needs_closed and _no_closed_deals(results)):
            results[name] = call(fn, log, flow_days)
        step(name)
        if name == "funnel" and _no_deals(results):
            # Nothing else has anything to say about a log without deals.
            empty = sections.notice(
                "no-deals",
                "No deals",
                f"This log holds no deals as of {fmt.date(log.now)}: load deals "
                "(funnelwise import) or choose a later --as-of date.",
            )
            return Part(log.pipeline_id, label, (empty,), results)
    return Part(log.pipeline_id, label, tuple(_sections(log, results)), results)


def build_report(
    log: EventLog,
    *,
    as_of: Instant | None = None,
    flow_days: int = FLOW_DAYS,
    title: str | None = None,
    progress: ProgressCallback | None = None,
) -> Report:
    """Run the analyses on `log` (as known at `as_of`, default: its own instant) and
    collect their sections.

    Args:
        log: the event log (filtered as you like).
        as_of: describe the log as it was known at this instant (naive UTC).
        flow_days: the pipeline-flow waterfall covers the days up to the instant.
        title: the page title (default: the process name).
        progress: called as `("report", done, total)` after each analysis.
    """
    cut = log.as_of(as_of) if as_of is not None else log
    pipelines = (
        [cut.process.pipeline(cut.pipeline_id)] if cut.pipeline_id else list(cut.process.pipelines)
    )
    report_progress = progress or no_progress
    total = len(available_analyses()) * len(pipelines)
    done = 0

    def step(_: str) -> None:
        nonlocal done
        done += 1
        report_progress("report", min(done, total), total)

    if len(pipelines) == 1:
        parts = [_part(cut, None, flow_days, step)]
    else:
        parts = [_part(cut.filter(pipeline=p.id), p.label, flow_days, step) for p in pipelines]
    report_progress("report", total, total)
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
    progress: ProgressCallback | None = None,
) -> Path:
    """Build the report of `log` and write it as one self-contained HTML file."""
    return build_report(log, as_of=as_of, progress=progress).write(path)


# -- rendering -----------------------------------------------------------------------
_env = Environment(
    loader=PackageLoader("funnelwise.report", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _figure_html(figure: Any, div_id: str) -> Markup:
    html = pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=charts.CONFIG,
        default_width="100%",
    )
    # Plotly's own markup: the figure data inside is JSON-encoded by plotly.
    return Markup(html)


def render(report: Report) -> str:
    """The report as one HTML page (see the module docstring)."""
    figures: dict[tuple[int, str, int], Markup] = {}
    for k, part in enumerate(report.parts):
        for s in part.sections:
            for i, chart in enumerate(s.charts):
                figures[k, s.key, i] = _figure_html(chart.figure, f"fig-{k}-{s.key}-{i}")
    template = _env.get_template("report.html")
    return template.render(
        report=report,
        figures=figures,
        plotlyjs=Markup(plotly.offline.get_plotlyjs()),
        as_of=fmt.date(report.as_of),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
