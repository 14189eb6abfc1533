"""What every forecaster shares: the scikit-learn contract and the result plumbing.

A forecaster's `__init__` only stores its keyword options; `fit(log)` learns
from the log as it stands at `log.now` (pass `log.as_of(t)` to forecast from a
past date) and returns `self`; fitted state ends in `_`; `predict(...)` returns
a ForecastResult for the horizon after `log.now`. Calling `predict` before
`fit` raises NotFittedError.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.forecast.history import History, pull_history
from funnelwise.forecast.options import check_target, horizon_days
from funnelwise.forecast.periods import PeriodGrid, period_grid, starts_a_period, sum_by_period
from funnelwise.forecast.result import ForecastResult, ForecastSummary
from funnelwise.log import EventLog

DAY = pd.Timedelta(days=1)


class NotFittedError(InputError):
    """A forecaster was asked to predict before `fit(log)`."""


def _booked(
    history: History, frames: list[pd.DataFrame], bounds: list[pd.Timestamp]
) -> pd.DataFrame:
    """The periods of `frames` (in order, `bounds` their limits) with the amount won
    in each."""
    booked = sum_by_period(
        history.wins.closed_at.to_numpy(), history.wins.amount_base.fillna(0.0).to_numpy(), bounds
    )
    return pd.concat(frames, ignore_index=True).drop(columns="end_day").assign(booked=booked)


def past_bookings(
    history: History, *, period: str, lookback_days: float, horizon_days: float | None = None
) -> pd.DataFrame:
    """Bookings won per calendar period over `lookback_days` before `history.now`,
    not before the first deal (empty frame without history): the left side of a fan chart.
    With period "horizon", per whole window of `horizon_days` (default: the look-back)."""
    days = min(lookback_days, history.history_days)
    if days < 1:
        return pd.DataFrame(columns=["period", "start", "end", "booked"])
    if period == "horizon" and horizon_days is not None:
        # Past windows as long as the forecast's one, or the two would not compare (two
        # horizons under one label read as bookings doubled); a window cut short by the
        # first deal is left out, as a cut-short month is.
        n = int(days // horizon_days + 1e-9)
        if n < 1:
            return pd.DataFrame(columns=["period", "start", "end", "booked"])
        grids = [
            period_grid(
                history.now - pd.Timedelta(days=(n - i) * horizon_days),
                horizon_days,
                period,
                dated=history.dated,
            )
            for i in range(n)
        ]
        bounds = [grids[0].starts[0], *(g.ends[0] for g in grids)]
        return _booked(history, [g.frame() for g in grids], bounds)
    grid = period_grid(history.now - pd.Timedelta(days=days), days, period, dated=history.dated)
    out = _booked(history, [grid.frame()], [grid.starts[0], *grid.ends])
    if len(out) > 1 and not starts_a_period(grid.starts[0], grid.period, dated=history.dated):
        # The look-back's first period is cut short: under a whole period's label it
        # would read as a poor month (or quarter).
        out = out.iloc[1:].reset_index(drop=True)
    return out


class Forecaster:
    """Base of every forecaster: fit on a log (as of its `now`), then predict."""

    name: ClassVar[str] = "forecaster"

    def __init__(self, *, by: str | None = None) -> None:
        self.by = by

    # -- fitting -------------------------------------------------------------------
    def fit(self, log: EventLog) -> Forecaster:
        """Learn from `log` as known at `log.now`; returns self."""
        return self.fit_history(pull_history(log, by=self.by))

    def fit_history(self, history: History) -> Forecaster:
        """Learn from aggregates already pulled with `pull_history` (backtests share them)."""
        if history.by != self.by:
            raise InputError(
                f"{type(self).__name__}(by={self.by!r}) got history pulled with by={history.by!r}"
            )
        self.history_ = history
        self.as_of_ = history.now
        self._fit(history)
        return self

    def _fit(self, history: History) -> None:
        """Subclasses learn their parameters here (raise NotEnoughDataError if they can't)."""

    def _check_fitted(self) -> History:
        if not hasattr(self, "history_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(log) first "
                "(for a past date: .fit(log.as_of(date)))"
            )
        return self.history_

    # -- predicting ----------------------------------------------------------------
    def predict(
        self, *, horizon: str | float = "90d", period: str = "month", target: float | None = None
    ) -> ForecastResult:
        """Bookings (won amount_base) expected in `(now, now + horizon]`, per period."""
        history = self._check_fitted()
        check_target(target)
        days = horizon_days(horizon, history.now)
        grid = period_grid(history.now, days, period, dated=history.dated)
        summary, extra = self._predict(history, grid, target)
        return ForecastResult(
            method=self.name,
            as_of=history.now,
            horizon_days=days,
            period=grid.period,
            by=self.by,
            pipeline=history.pipeline,
            currency=history.currency,
            target=target,
            periods=summary.periods,
            totals=summary.totals,
            fan=summary.fan,
            history=past_bookings(
                history, period=grid.period, lookback_days=2 * days, horizon_days=days
            ),
            **extra,
        )

    def _predict(
        self, history: History, grid: PeriodGrid, target: float | None
    ) -> tuple[ForecastSummary, dict[str, Any]]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The constructor options, as given."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def segments_of(history: History, *values: pd.Series) -> list[str]:
    """Sorted segment labels seen in the given columns (['all'] without `by`)."""
    if history.by is None:
        return ["all"]
    seen = pd.concat([v.astype(str) for v in values]) if values else pd.Series([], dtype=str)
    return sorted(seen.unique().tolist()) or ["all"]


def require(what: str, have: int, need: int, as_of: pd.Timestamp, fix: str) -> None:
    """Raise NotEnoughDataError naming what is missing, the counts and the fix."""
    if have < need:
        raise NotEnoughDataError(
            f"{what}: the log has {have:,} as of {as_of:%Y-%m-%d} and needs at least {need:,}; "
            f"{fix}"
        )


def day_of(instants: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """1-based day of the forecast grid on which each instant falls (day k is
    (as_of + k - 1 days, as_of + k days])."""
    delta = (pd.to_datetime(instants) - as_of) / DAY
    return np.ceil(delta.to_numpy(dtype=float)).astype(np.int64)


def fill_amounts(history: History, amount: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Open deals' amounts with the missing ones at the mean amount of the wins of the
    last year (of all wins if the year has none), and a note saying so. A deal without
    an amount is not worth nothing: counting it at zero would quietly shrink the forecast.
    """
    missing = np.isnan(amount)
    if not missing.any():
        return amount, []
    w = history.wins.dropna(subset=["amount_base"])
    recent = w[w.closed_at > history.now - pd.Timedelta(days=365)]
    pool = recent if len(recent) else w
    if not len(pool):
        note = f"{int(missing.sum()):,} open deals have no amount and no win shows a usual one"
        return np.where(missing, 0.0, amount), [note + ": counted as 0"]
    fill = float(pool.amount_base.mean())
    note = (
        f"{int(missing.sum()):,} open deals have no amount; each counts at the mean amount "
        f"of {len(pool):,} recent wins ({fill:,.0f})"
    )
    return np.where(missing, fill, amount), [note]
