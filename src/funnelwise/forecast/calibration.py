"""Calibrating the spread of a forecast on its own past errors.

A model's interval can be too narrow (a shared shock the log is too short to
measure) or too wide (shocks measured on a log still filling up). Its own
backtest shows which: for each past forecast, the least factor `k` by which
its deviations from the expected value must be scaled for the 80% interval to
hold what was booked,

    k_i = (expected − actual) / (expected − P10)   if actual < expected,
          (actual − expected) / (P90 − expected)   otherwise,

so that an interval scaled by `k` covers forecast i exactly when k ≥ k_i. The
80th percentile of the k_i is the factor that would have covered 80% of them
(split-conformal style, on |residual| scaled by the model's own spread).

Honesty rules: at a cut-off `t` only forecasts whose whole horizon ended by
`t` count (their outcome was known then); windows that overlap are not
independent, so they count as the number of disjoint horizons they span; and
with few of those the factor is pulled towards 1 (the model as it is) with the
weight of `PRIOR_WINDOWS` windows, on the log scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVEL = 0.8  # the interval calibrated: P10 to P90
PRIOR_WINDOWS = 2.0  # disjoint horizons of weight behind factor 1 (the model as it is)
MAX_FACTOR = 10.0  # a past forecast with no spread at all asks for an endless factor


@dataclass(frozen=True)
class Spread:
    """A calibration factor: `factor` scales every path's deviation from the expected
    path; `n` past forecasts, spanning `windows` disjoint horizons, gave `raw` (the
    factor before shrinkage towards 1)."""

    factor: float
    raw: float
    n: int
    windows: float

    def describe(self) -> str:
        """One sentence for notes."""
        if self.n == 0:
            return "no past forecast has a known outcome yet: the spread is the model's own"
        return (
            f"interval scaled by {self.factor:.2f} from {self.n} past forecasts "
            f"({self.windows:.1f} disjoint horizons; alone they ask for {self.raw:.2f})"
        )


def needed_factors(
    actual: np.ndarray, expected: np.ndarray, p10: np.ndarray, p90: np.ndarray
) -> np.ndarray:
    """Per forecast, the least factor k with expected + k (P10 − expected) ≤ actual ≤
    expected + k (P90 − expected) (MAX_FACTOR when no finite factor does)."""
    below = actual < expected
    gap = np.where(below, expected - actual, actual - expected)
    half = np.where(below, expected - p10, p90 - expected)
    k = np.divide(gap, half, out=np.full(len(gap), MAX_FACTOR), where=half > 0)
    return np.clip(np.where(gap <= 0, 0.0, k), 0.0, MAX_FACTOR)


def spread_factor(past: pd.DataFrame, *, horizon_days: float, every_days: float) -> Spread:
    """The calibration factor from past forecasts (rows with actual, expected, p10, p90,
    made every `every_days` with a `horizon_days` horizon, all of them with known
    outcomes)."""
    n = len(past)
    if n == 0:
        return Spread(1.0, 1.0, 0, 0.0)
    k = needed_factors(
        past.actual.to_numpy(float),
        past.expected.to_numpy(float),
        past.p10.to_numpy(float),
        past.p90.to_numpy(float),
    )
    raw = float(np.quantile(k, LEVEL))
    windows = min(float(n), 1.0 + (n - 1) * min(1.0, every_days / horizon_days))
    weight = windows / (windows + PRIOR_WINDOWS)
    factor = float(np.exp(weight * np.log(max(raw, 1.0 / MAX_FACTOR))))
    return Spread(factor, raw, n, windows)


def scaled(frame: pd.DataFrame, factor: float, columns: tuple[str, ...]) -> pd.DataFrame:
    """frame with `columns` moved to expected + factor · (value − expected), floored at 0."""
    out = frame.copy()
    for c in columns:
        out[c] = np.maximum(0.0, out.expected + factor * (out[c] - out.expected))
    return out


def sequential(
    rows: pd.DataFrame, *, horizon_days: float, every_days: float
) -> tuple[pd.DataFrame, list[Spread]]:
    """Backtest rows of one method recalibrated cut-off by cut-off: at each cut-off the
    factor comes from the earlier rows whose horizon had ended by then (and that the
    method answered itself). Returns the new rows (p10 / p50 / p90 / covered) and the
    factor used at each."""
    rows = rows.sort_values("cutoff").reset_index(drop=True)
    ends = rows.cutoff + pd.Timedelta(days=horizon_days)
    own = rows.fallback.isna()
    out, spreads = [], []
    for i, t in enumerate(rows.cutoff):
        past = rows[(ends <= t) & own]
        spread = spread_factor(past, horizon_days=horizon_days, every_days=every_days)
        spreads.append(spread)
        row = rows.iloc[[i]]
        out.append(scaled(row, spread.factor, ("p10", "p50", "p90")) if own[i] else row)
    frame = pd.concat(out, ignore_index=True)
    frame["covered"] = (frame.p10 <= frame.actual) & (frame.actual <= frame.p90)
    return frame, spreads
