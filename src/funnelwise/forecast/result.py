"""Typed, immutable results of forecasts and backtests.

A `ForecastResult` carries everything a reader or a chart needs: per period
and segment the expected bookings and the P10 / P50 / P90 quantiles, the
horizon totals with the probability of reaching a target, the cumulative
fan (quantiles at each period end), past bookings per period for context,
the method, seed, number of paths, and whether the method fell back to a
baseline and why. A `BacktestResult` holds one row per cut-off and method
(actual against forecast) and the accuracy of each method. Amounts are in
the process currency (`amount_base`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from funnelwise.forecast.periods import PeriodGrid

FAN_QUANTILES: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95)
ALL = "all"  # the segment label of totals over every segment


def plain(value: Any) -> Any:
    """JSON-ready Python values from numpy, pandas, dates, NaN and containers."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON-ready records."""
    cols = [str(c) for c in frame.columns]
    return [
        {c: plain(v) for c, v in zip(cols, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def _frozen(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.reset_index(drop=True).copy()
    for col in out.columns:
        values = out[col].to_numpy()
        if isinstance(values, np.ndarray) and values.dtype != object:
            values.setflags(write=False)
    return out


@dataclass(frozen=True)
class ForecastSummary:
    """The three frames every forecaster produces (see ForecastResult)."""

    periods: pd.DataFrame
    totals: pd.DataFrame
    fan: pd.DataFrame


def _fan_frame(grid: PeriodGrid, expected: np.ndarray, qs: np.ndarray) -> pd.DataFrame:
    fan = pd.DataFrame({"end": list(grid.ends), "end_day": grid.end_days, "expected": expected})
    for j, q in enumerate(FAN_QUANTILES):
        fan[f"q{round(q * 100):02d}"] = qs[j]
    return fan


def _period_rows(
    grid: PeriodGrid, segments: list[str], mean: np.ndarray, q: np.ndarray
) -> pd.DataFrame:
    """mean: (n_seg, K); q: (3, n_seg, K) for P10, P50, P90."""
    n_seg, k = mean.shape
    return pd.DataFrame(
        {
            "segment": np.repeat(segments, k),
            "period": grid.labels * n_seg,
            "start": grid.shown_starts * n_seg,
            "end": grid.shown_ends * n_seg,
            "days": list(np.diff(grid.end_days, prepend=0)) * n_seg,
            "expected": mean.ravel(),
            "p10": q[0].ravel(),
            "p50": q[1].ravel(),
            "p90": q[2].ravel(),
        }
    )


def summary_from_paths(
    paths: np.ndarray,
    expected: np.ndarray,
    grid: PeriodGrid,
    segments: list[str],
    target: float | None,
) -> ForecastSummary:
    """Summaries of simulated bookings `paths` (n_paths, n_seg, K) with exact
    expectations `expected` (n_seg, K). Segment rows only when there are several."""
    total = paths.sum(axis=1)  # (n_paths, K)
    if len(segments) > 1:
        seg_paths = np.concatenate([total[:, None, :], paths], axis=1)
        seg_mean = np.vstack([expected.sum(axis=0), expected])
        labels = [ALL, *segments]
    else:
        seg_paths, seg_mean, labels = total[:, None, :], expected.sum(0, keepdims=True), [ALL]
    q = np.quantile(seg_paths, [0.1, 0.5, 0.9], axis=0)  # (3, n_seg, K)
    horizon = seg_paths.sum(axis=2)  # (n_paths, n_seg)
    hq = np.quantile(horizon, [0.1, 0.5, 0.9], axis=0)
    totals = pd.DataFrame(
        {
            "segment": labels,
            "expected": seg_mean.sum(axis=1),
            "p10": hq[0],
            "p50": hq[1],
            "p90": hq[2],
            "prob_target": [
                float(np.mean(horizon[:, 0] >= target)) if target is not None and i == 0 else np.nan
                for i in range(len(labels))
            ],
        }
    )
    cum = np.cumsum(total, axis=1)
    fan = _fan_frame(grid, np.cumsum(seg_mean[0]), np.quantile(cum, FAN_QUANTILES, axis=0))
    return ForecastSummary(_period_rows(grid, labels, seg_mean, q), totals, fan)


@dataclass(frozen=True)
class ForecastResult:
    """Bookings expected in `(as_of, as_of + horizon]`, as a distribution.

    Frames (copies come out of the accessors):
    - `periods` (`to_frame()`): segment, period, start, end, days, expected, p10,
      p50, p90 (bookings inside each period; segment `all` is the total). A period
      holds the instants after `start` up to `end`; on a log whose closes are dates,
      `start` and `end` are the first and last dates it holds; `days` is the number
      of the horizon's whole days in it (less than the calendar's in a first or last
      period cut by the as-of date or the horizon);
    - `totals`: per segment the horizon total with p10/p50/p90, and
      `prob_target` (probability that the total reaches `target`, `all` row);
    - `fan`: cumulative bookings at each period end: expected and quantiles
      q05 … q95 (the fan chart);
    - `history`: bookings actually won per past period before `as_of`.

    `fallback` is None, or says why the requested method could not run and which
    baseline answered instead (then `method` names the baseline). `components`
    splits the expected total into the open pipeline and deals not yet created.
    `pipeline` is the one pipeline forecast (None: every pipeline of the process).
    """

    method: str
    as_of: pd.Timestamp
    horizon_days: float
    period: str
    by: str | None
    currency: str
    target: float | None
    periods: pd.DataFrame
    totals: pd.DataFrame
    fan: pd.DataFrame
    history: pd.DataFrame
    components: Mapping[str, float] = field(default_factory=dict)
    n_paths: int | None = None
    seed: int | None = None
    requested: str | None = None
    fallback: str | None = None
    notes: tuple[str, ...] = ()
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    pipeline: str | None = None

    def __post_init__(self) -> None:
        for name in ("periods", "totals", "fan", "history"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))
        object.__setattr__(self, "diagnostics", MappingProxyType(dict(self.diagnostics)))

    # -- the headline numbers --------------------------------------------------------
    def _total(self, column: str) -> float:
        row = self.totals[self.totals.segment == ALL]
        return float(row[column].iloc[0])

    @property
    def expected(self) -> float:
        """Expected bookings over the horizon (process currency)."""
        return self._total("expected")

    @property
    def p10(self) -> float:
        """10th percentile of bookings over the horizon."""
        return self._total("p10")

    @property
    def p50(self) -> float:
        """Median bookings over the horizon."""
        return self._total("p50")

    @property
    def p90(self) -> float:
        """90th percentile of bookings over the horizon."""
        return self._total("p90")

    @property
    def prob_target(self) -> float | None:
        """Probability that bookings over the horizon reach `target` (None without one)."""
        return None if self.target is None else self._total("prob_target")

    # -- frames ------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Bookings per segment and period (a copy)."""
        return self.periods.copy()

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """Every frame by name (copies), the main one (`periods`) first."""
        names = ("periods", "totals", "fan", "history")
        return {name: getattr(self, name).copy() for name in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metadata, the headline total and every frame as records."""
        return {
            "method": self.method,
            "requested": self.requested or self.method,
            "fallback": self.fallback,
            "as_of": plain(self.as_of),
            "horizon_days": self.horizon_days,
            "period": self.period,
            "pipeline": self.pipeline,
            "by": self.by,
            "currency": self.currency,
            "target": self.target,
            "expected": self.expected,
            "p10": self.p10,
            "p50": self.p50,
            "p90": self.p90,
            "prob_target": plain(self.prob_target),
            "components": plain(dict(self.components)),
            "n_paths": self.n_paths,
            "seed": self.seed,
            "notes": list(self.notes),
            "diagnostics": plain(dict(self.diagnostics)),
            "periods": records(self.periods),
            "totals": records(self.totals),
            "fan": records(self.fan),
            "history": records(self.history),
        }

    def __repr__(self) -> str:
        flag = f", fell back: {self.fallback}" if self.fallback else ""
        return (
            f"<ForecastResult {self.method} as of {self.as_of:%Y-%m-%d}, "
            f"{self.horizon_days:g} days: expected {self.expected:,.0f} {self.currency} "
            f"[P10 {self.p10:,.0f} – P90 {self.p90:,.0f}]{flag}>"
        )


@dataclass(frozen=True)
class MethodScore:
    """Accuracy of one method over a backtest's cut-offs.

    `wape` = Σ|expected − actual| / Σ actual; `bias` = Σ(expected − actual) / Σ actual
    (positive: over-forecast); `pinball_p10/p50/p90` are mean pinball losses at those
    quantiles divided by the mean actual, `pinball` their average (lower is better, a
    proper score of the whole distribution); `coverage80` is the share of cut-offs whose
    actual fell within [P10, P90]. `n_fallback` counts cut-offs answered by the
    baseline because the method lacked history.
    """

    method: str
    wape: float
    bias: float
    pinball: float
    pinball_p10: float
    pinball_p50: float
    pinball_p90: float
    coverage80: float
    n_cutoffs: int
    n_fallback: int
    mean_actual: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        out: dict[str, Any] = plain(dict(self.__dict__))
        return out


@dataclass(frozen=True)
class BacktestResult:
    """Forecasts made as of past cut-offs against what was actually booked.

    `rows` (`to_frame()`): one per cut-off and method: cutoff, method, actual,
    expected, p10, p50, p90, covered (actual within [P10, P90]), actual_open and
    actual_new (booked from deals open at the cut-off, and from deals created
    after it), expected_open and expected_new (the method's expected value split
    the same way, where it gives one), fallback (why a baseline answered, else
    None), weekly_shocks (the Monte Carlo measured shared shocks over weeks: the
    log was too short for months). `scores` maps each method
    to its MethodScore; `chosen` is the method with the lowest pinball loss and `reason` says why.
    `spread` is the Monte Carlo's calibration factor from every backtest forecast,
    for a forecast made at the end of observation (1 without any). `pipeline` is
    the one pipeline backtested, forecasts and actuals alike (None: every pipeline).
    """

    horizon_days: float
    every_days: float
    start: pd.Timestamp
    end: pd.Timestamp
    rows: pd.DataFrame
    scores: Mapping[str, MethodScore]
    chosen: str
    reason: str
    n_paths: int
    seed: int
    notes: tuple[str, ...] = ()
    spread: float = 1.0
    pipeline: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", _frozen(self.rows))
        object.__setattr__(self, "scores", MappingProxyType(dict(self.scores)))

    @property
    def cutoffs(self) -> list[pd.Timestamp]:
        """The cut-off instants, in order."""
        return sorted(pd.Timestamp(t) for t in self.rows.cutoff.unique())

    def to_frame(self) -> pd.DataFrame:
        """One row per cut-off and method (a copy)."""
        return self.rows.copy()

    def scores_frame(self) -> pd.DataFrame:
        """One row per method with its accuracy figures."""
        return pd.DataFrame([s.to_dict() for s in self.scores.values()])

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """Every frame by name (copies): `cutoffs` (the rows, main) and `scores`."""
        return {"cutoffs": self.to_frame(), "scores": self.scores_frame()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `{"methods": {name: scores}, "chosen": ..., "reason": ..., ...}`."""
        return {
            "methods": {name: s.to_dict() for name, s in self.scores.items()},
            "chosen": self.chosen,
            "reason": self.reason,
            "pipeline": self.pipeline,
            "horizon_days": self.horizon_days,
            "every_days": self.every_days,
            "start": plain(self.start),
            "end": plain(self.end),
            "n_paths": self.n_paths,
            "seed": self.seed,
            "notes": list(self.notes),
            "spread": self.spread,
            "cutoffs": records(self.rows),
        }

    def __repr__(self) -> str:
        return (
            f"<BacktestResult {len(self.cutoffs)} cut-offs, {self.horizon_days:g}-day horizon, "
            f"chosen {self.chosen}>"
        )
