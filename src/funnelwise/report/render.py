"""Render a built report as one self-contained HTML page.

plotly.js is embedded once, inline, in the page head; every figure is a div
with its data, drawn by that one copy. No file, font or script is fetched
from anywhere, so the page opens offline and can be mailed as it is.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import plotly.io as pio
import plotly.offline
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from funnelwise.report import charts, fmt

if TYPE_CHECKING:
    from funnelwise.report.build import Report

_env = Environment(
    loader=PackageLoader("funnelwise.report", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def figure_html(figure: Any, div_id: str) -> Markup:
    """One figure as a div and its drawing script, without plotly.js itself."""
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
    """The report as one HTML page."""
    figures: dict[tuple[int, str, int], Markup] = {}
    for k, part in enumerate(report.parts):
        for s in part.sections:
            for i, chart in enumerate(s.charts):
                figures[k, s.key, i] = figure_html(chart.figure, f"fig-{k}-{s.key}-{i}")
    template = _env.get_template("report.html")
    return template.render(
        report=report,
        figures=figures,
        plotlyjs=Markup(plotly.offline.get_plotlyjs()),
        as_of=fmt.date(report.as_of),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
