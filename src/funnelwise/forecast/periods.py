"""The calendar of a forecast: the horizon after the as-of instant cut into periods.

Periods are calendar weeks (Monday first), months or quarters, clipped to
the horizon `(as_of, as_of + horizon]`, so the first and last periods may be
partial. The models work on a grid of whole days after the as-of instant:
day `k` (1-based) is `(as_of + k - 1 days, as_of + k days]`; a period ends on
the last whole day inside it.

Dated logs (closes stamped with a date, at midnight, as most CRM exports give
them) read a stamp as the whole day it names: a deal closed "1 July" belongs
to July, not to the `(1 June, 1 July]` of an instant grid. Their calendar
bounds sit one day earlier (July is `(30 June, 31 July]`), which keeps every
period `(start, end]` and the day grid unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from funnelwise.errors import InputError

PeriodKind = Literal["week", "month", "quarter", "horizon"]
# "horizon" is one period covering the whole horizon (what backtests compare).
PERIODS: tuple[str, ...] = ("week", "month", "quarter", "horizon")
_FREQ = {"week": "W-MON", "month": "MS", "quarter": "QS"}
DAY = pd.Timedelta(days=1)


def check_period(period: str) -> PeriodKind:
    """The period name, or InputError naming the valid ones."""
    if period not in PERIODS:
        raise InputError(f"period {period!r} is not one of {', '.join(PERIODS)}")
    return period  # type: ignore[return-value]


def check_horizon(horizon_days: float) -> float:
    """The horizon in days, at least one day."""
    if not horizon_days >= 1.0:
        raise InputError(f"horizon must be at least 1 day (got {horizon_days:g} days)")
    return float(horizon_days)


@dataclass(frozen=True)
class PeriodGrid:
    """Periods of a horizon: calendar bounds and the last model day inside each.

    `starts[i]`/`ends[i]` are instants (the period is `(start, end]`);
    `end_days[i]` is the 1-based day of the day grid on which period i ends;
    `n_days` is the number of whole days in the horizon; `dated` marks a grid
    for date stamps (bounds a day before the calendar's, see the module docstring).
    """

    as_of: pd.Timestamp
    horizon_days: float
    period: PeriodKind
    starts: tuple[pd.Timestamp, ...]
    ends: tuple[pd.Timestamp, ...]
    end_days: np.ndarray
    n_days: int
    dated: bool = False

    @property
    def labels(self) -> list[str]:
        """A readable label per period: 2024-W07, 2024-03, 2024-Q2, 2024-02-01+90d."""
        out = []
        # A period (s, e] belongs to the calendar period of the first instant (or,
        # dated, the first date) after s.
        step = DAY if self.dated else pd.Timedelta(microseconds=1)
        for s in self.starts:
            p = s + step
            if self.period == "horizon":
                out.append(f"{p:%Y-%m-%d}+{self.horizon_days:g}d")
            elif self.period == "week":
                iso = p.isocalendar()
                out.append(f"{iso[0]}-W{iso[1]:02d}")
            elif self.period == "month":
                out.append(f"{p.year}-{p.month:02d}")
            else:
                out.append(f"{p.year}-Q{p.quarter}")
        return out

    @property
    def shown_starts(self) -> list[pd.Timestamp]:
        """The start a reader expects: the instant after which a period begins, or,
        dated, the first date it holds (July shows 1 July, not 30 June)."""
        return [s.normalize() + DAY for s in self.starts] if self.dated else list(self.starts)

    @property
    def shown_ends(self) -> list[pd.Timestamp]:
        """The end a reader expects: the last instant, or, dated, the last date held."""
        return [e.normalize() for e in self.ends] if self.dated else list(self.ends)

    def frame(self) -> pd.DataFrame:
        """One row per period: period label, start and end as shown (`shown_starts`,
        `shown_ends`), end_day."""
        return pd.DataFrame(
            {
                "period": self.labels,
                "start": self.shown_starts,
                "end": self.shown_ends,
                "end_day": self.end_days,
            }
        )

    def __len__(self) -> int:
        return len(self.starts)


def period_grid(
    as_of: pd.Timestamp, horizon_days: float, period: str, *, dated: bool = False
) -> PeriodGrid:
    """Cut `(as_of, as_of + horizon]` into calendar periods of the given kind;
    `dated`: the times are dates stamped at midnight (see the module docstring)."""
    kind = check_period(period)
    horizon_days = check_horizon(horizon_days)
    end = as_of + pd.Timedelta(days=horizon_days)
    inner: list[pd.Timestamp] = []
    if kind != "horizon":
        bounds = pd.date_range(as_of.normalize(), end + DAY, freq=_FREQ[kind])
        if dated:
            bounds = bounds - DAY
        # A calendar bound less than a day before the end would leave a last period
        # with no whole day in it (a quarter of 91.3 days from 31 December ends 1
        # April 07:30): that sliver joins the period before.
        inner = [b for b in bounds if as_of < b and b + DAY <= end]
    edges = [as_of, *inner, end]
    n_days = max(1, math.floor(horizon_days + 1e-9))
    # A period ends on the last day inside it; dated, on the day that holds its last
    # date's stamp (the same at a midnight as-of; from noon, the day after).
    last_day = (lambda x: math.ceil(x - 1e-9)) if dated else (lambda x: math.floor(x + 1e-9))
    end_days = np.array(
        [min(n_days, max(1, last_day((e - as_of) / DAY))) for e in edges[1:]],
        dtype=np.int64,
    )
    end_days[-1] = n_days
    return PeriodGrid(
        as_of=as_of,
        horizon_days=horizon_days,
        period=kind,
        starts=tuple(edges[:-1]),
        ends=tuple(edges[1:]),
        end_days=end_days,
        n_days=n_days,
        dated=dated,
    )


def starts_a_period(at: pd.Timestamp, period: str, *, dated: bool = False) -> bool:
    """Whether a period `(at, ...]` of this kind is whole from its start: `at` is a
    calendar bound (a day before it, dated). Always true for "horizon"."""
    kind = check_period(period)
    if kind == "horizon":
        return True
    # Dated, the first stamp after `at` is the next midnight, whatever the time of `at`.
    first = at.normalize() + DAY if dated else at
    if first != first.normalize():
        return False
    if kind == "week":
        return first.dayofweek == 0
    return first.day == 1 and (kind == "month" or first.month % 3 == 1)


def sum_by_period(
    times: np.ndarray, amounts: np.ndarray, edges: list[pd.Timestamp] | tuple[pd.Timestamp, ...]
) -> np.ndarray:
    """Sum of amounts whose time falls in each `(edges[i], edges[i+1]]`."""
    t = np.asarray(times, dtype="datetime64[ns]")
    e = np.asarray([np.datetime64(x, "ns") for x in edges])
    # side="left": an instant equal to a bound belongs to the period it ends.
    idx = np.searchsorted(e, t, side="left") - 1
    keep = (idx >= 0) & (idx < len(e) - 1)
    out = np.zeros(len(e) - 1)
    np.add.at(out, idx[keep], np.asarray(amounts, dtype=float)[keep])
    return out
