"""What a report section is: a title, a one-line takeaway, and tiles, charts,
tables and notes, plus the titles of every section and small helpers the
section functions share. Nothing here reads an analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from funnelwise.report.fmt import Table

TITLES: Mapping[str, str] = {
    "data": "What this data can tell",
    "kpis": "Key figures",
    "funnel": "Funnel",
    "outcomes": "Outcomes: won, lost, no decision",
    "timing": "Time in stage",
    "whose_move": "Whose move: buyer or seller",
    "bottlenecks": "Bottlenecks in money",
    "discovery": "Process map",
    "conformance": "Process adherence",
    "hygiene": "Pipeline hygiene",
    "snapshot": "Pipeline today",
    "flow": "Pipeline flow",
    "forecast": "Forecast",
    "backtest": "Forecast backtest",
    "scores": "Deals to work on first",
    "scoring": "Win scores: checked on later deals",
    "leads": "Leads becoming deals",
    "lead_scores": "Leads to work on first",
    "lead_scoring": "Lead scores: checked on later leads",
}


@dataclass(frozen=True, eq=False)
class Chart:
    """A figure and the one line that says what it shows."""

    figure: go.Figure
    takeaway: str


@dataclass(frozen=True)
class Tile:
    """One key figure: a label, the value, and a line of context (interval, denominator)."""

    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True, eq=False)
class Section:
    """A titled part of the report: its takeaway, then tiles, charts, tables, bullets
    (one sentence per item) and notes (method and denominators). `empty` marks a
    section that had nothing to show."""

    key: str
    title: str
    takeaway: str
    tiles: tuple[Tile, ...] = ()
    charts: tuple[Chart, ...] = ()
    tables: tuple[Table, ...] = ()
    bullets: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    empty: bool = False


def notice(key: str, title: str, text: str) -> Section:
    """A section that only says why there is nothing to show."""
    return Section(key=key, title=title, takeaway=text, empty=True)


def first_row(frame: pd.DataFrame, **where: Any) -> pd.Series | None:
    """The first row whose columns equal the given values, or None."""
    for col, value in where.items():
        frame = frame[frame[col] == value]
    return None if frame.empty else frame.iloc[0]


def confidence(meta: Mapping[str, Any]) -> float:
    """The confidence level of a result's intervals (1 - alpha; 0.95 by default)."""
    return 1 - float(meta.get("alpha", 0.05))
