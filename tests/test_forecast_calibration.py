"""Calibrating a forecast's spread on its own past errors: factors by hand, the
as-of discipline (no outcome after a cut-off), and coverage over many seeds of
forecasts whose true spread is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from funnelwise.forecast.calibration import (
    MAX_FACTOR,
    PRIOR_WINDOWS,
    needed_factors,
    sequential,
    spread_factor,
)

Z90 = 1.2815515655446004  # standard normal 90th percentile


def test_needed_factors_by_hand() -> None:
    actual = np.array([80.0, 110.0, 100.0, 90.0, 130.0])
    expected = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    p10 = np.array([90.0, 90.0, 90.0, 100.0, 60.0])
    p90 = np.array([120.0, 120.0, 120.0, 100.0, 160.0])
    # 20 below with 10 of room: 2; 10 above with 20 of room: 0.5; on the mean: 0;
    # no spread at all: the cap; 30 above with 60 of room: 0.5.
    k = needed_factors(actual, expected, p10, p90)
    assert k.tolist() == pytest.approx([2.0, 0.5, 0.0, MAX_FACTOR, 0.5])


def _rows(cutoffs: pd.DatetimeIndex, actual: np.ndarray, half: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cutoff": cutoffs,
            "actual": actual,
            "expected": 100.0,
            "p10": 100.0 - half,
            "p50": 100.0,
            "p90": 100.0 + half,
            "fallback": None,
        }
    )


def test_factor_shrinks_towards_one_by_disjoint_windows() -> None:
    days = pd.date_range("2024-01-01", periods=5, freq="90D")
    rows = _rows(days, np.array([130.0, 70.0, 120.0, 90.0, 100.0]), half=10.0)
    # Needed factors 3, 3, 2, 1, 0: their 80th percentile is 3 (linear between 3 and 3).
    s = spread_factor(rows, horizon_days=90, every_days=90)
    assert (s.raw, s.n, s.windows) == (pytest.approx(3.0), 5, 5.0)
    assert s.factor == pytest.approx(3.0 ** (5 / (5 + PRIOR_WINDOWS)))
    # The same five forecasts made a week apart overlap: they count as 1 + 4·7/90 windows.
    weekly = spread_factor(rows, horizon_days=90, every_days=7)
    w = 1 + 4 * 7 / 90
    assert weekly.windows == pytest.approx(w)
    assert weekly.factor == pytest.approx(3.0 ** (w / (w + PRIOR_WINDOWS)))
    assert spread_factor(rows.iloc[:0], horizon_days=90, every_days=7).factor == 1.0


def test_a_cutoff_never_sees_an_outcome_after_it() -> None:
    days = pd.date_range("2024-01-01", periods=40, freq="7D")
    rng = np.random.default_rng(1)
    rows = _rows(days, 100 + 30 * rng.standard_normal(40), half=10.0)
    first, spreads = sequential(rows, horizon_days=30, every_days=7)
    # Change every outcome after cut-off 20's date: cut-offs up to 20 must not move.
    later = rows.copy()
    later.loc[later.cutoff > days[20], "actual"] *= 5
    second, _ = sequential(later, horizon_days=30, every_days=7)
    cols = ["p10", "p50", "p90"]
    pd.testing.assert_frame_equal(first.loc[:20, cols], second.loc[:20, cols])
    # The first cut-offs have no past forecast with a known outcome: factor 1.
    assert [s.n for s in spreads[:6]] == [0, 0, 0, 0, 0, 1]
    assert spreads[0].factor == 1.0
    # Forecasts far too narrow (sd 30 against an interval of ±10) get wider.
    assert spreads[-1].factor > 2.0


@pytest.mark.parametrize("true_over_model", [0.5, 1.0, 2.5])
def test_calibrated_intervals_cover_near_nominal(true_over_model: float) -> None:
    """Forecasts with a known future: the model's interval is right, too wide or too
    narrow by a known ratio; over 30 seeds of 60 disjoint horizons each, the calibrated
    intervals cover 80% give or take the binomial noise and the prior's pull."""
    coverage = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = 60
        days = pd.date_range("2023-01-01", periods=n, freq="30D")
        model_sd = 10.0
        actual = 100.0 + true_over_model * model_sd * rng.standard_normal(n)
        rows = _rows(days, actual, half=Z90 * model_sd)
        calibrated, _ = sequential(rows, horizon_days=30, every_days=30)
        # Score the later half, once a dozen past windows are known.
        coverage.append(calibrated.covered.iloc[n // 2 :].mean())
    mean = float(np.mean(coverage))
    # 900 scored forecasts: binomial standard error 1.3 points; the factor's own
    # estimation error and the pull towards 1 cost a few points more.
    assert 0.72 <= mean <= 0.88, mean
    raw = 2 * (1 - 0.5 * math.erfc(Z90 / true_over_model / math.sqrt(2))) - 1
    if true_over_model != 1.0:
        assert abs(mean - 0.8) < abs(raw - 0.8)  # calibration moved it towards 80%
