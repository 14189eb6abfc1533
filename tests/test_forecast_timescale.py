"""Carrying a shock measured over short windows to the horizon: exact recovery of
the persistent and transient parts by hand, and weekly counts with a known
shared shock whose size over the horizon is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelwise.forecast.hazards import drift_sigma
from funnelwise.forecast.timescale import to_horizon


def test_parts_are_recovered_exactly() -> None:
    # σ²(s) = 0.01 + 0.7 / s measured at 7, 14 and 21 days: σ²(91) = 0.01 + 0.7 / 91.
    scales = [7.0, 14.0, 21.0]
    sigmas = [math.sqrt(0.01 + 0.7 / s) for s in scales]
    s = to_horizon(scales, sigmas, [6, 4, 2], 91.0)
    assert s.persistent == pytest.approx(0.01)
    assert s.transient == pytest.approx(0.7)
    assert s.sigma == pytest.approx(math.sqrt(0.01 + 0.7 / 91))
    assert (s.scales, s.windows) == ((7.0, 14.0, 21.0), 12)


def test_purely_transient_and_purely_persistent_shocks() -> None:
    # Halving with every doubling of the window: transient, it shrinks to the horizon.
    t = to_horizon([7.0, 14.0, 28.0], [0.4, 0.4 / math.sqrt(2), 0.2], [5, 4, 2], 112.0)
    assert t.persistent == pytest.approx(0.0, abs=1e-12)
    assert t.sigma == pytest.approx(0.4 * math.sqrt(7 / 112))
    # The same at every window: persistent, it stays.
    p = to_horizon([7.0, 14.0, 28.0], [0.3, 0.3, 0.3], [5, 4, 2], 112.0)
    assert p.transient == pytest.approx(0.0, abs=1e-12)
    assert p.sigma == pytest.approx(0.3)


def test_a_variance_growing_with_the_window_counts_as_persistent() -> None:
    # No transient part can explain growth: the fit is the weighted mean level, never
    # a negative part.
    s = to_horizon([7.0, 14.0], [0.1, 0.2], [3, 1], 90.0)
    assert s.transient == 0.0
    assert s.persistent == pytest.approx((3 * 0.01 + 1 * 0.04) / 4)


def test_one_window_length_is_taken_as_lasting_and_none_as_nothing() -> None:
    s = to_horizon([7.0, 14.0], [0.25, 0.9], [3, 0], 90.0)
    assert (s.sigma, s.scales, s.windows) == (pytest.approx(0.25), (7.0,), 3)
    empty = to_horizon([], [], [], 90.0)
    assert (empty.sigma, empty.windows) == (0.0, 0)


@pytest.mark.parametrize("kind", ["weekly", "none"])
def test_weekly_counts_with_a_known_shock(kind: str) -> None:
    """Weekly counts (400 a week) with a log-normal shock of sd 0.2 drawn afresh each
    week (transient: over 13 weeks its sd is 0.2 / √13 = 0.055, the Poisson noise
    aside), or with none: measured over spans of 1–4 weeks on 26 weeks and carried
    to 13 weeks, over 200 seeds."""
    got = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        sigma = 0.2 if kind == "weekly" else 0.0
        level = np.exp(sigma * rng.standard_normal(26) - sigma**2 / 2)
        observed = rng.poisson(400 * level).astype(float)
        expected = np.full(26, observed.mean())
        measured = [drift_sigma(observed, expected, k) for k in (1, 2, 3, 4)]
        scales = [7.0 * k for k in (1, 2, 3, 4)]
        got.append(
            to_horizon(scales, [m[0] for m in measured], [m[1] for m in measured], 91.0).sigma
        )
    mean = float(np.mean(got))
    if kind == "weekly":
        # Noise in the measured variances lands partly in the persistent part, so the
        # estimate errs wide (0.074 on these seeds), far below the 0.2 of one week.
        assert 0.04 < mean < 0.1, mean
    else:
        # Poisson noise alone is taken out: nearly nothing is left.
        assert mean < 0.02, mean
