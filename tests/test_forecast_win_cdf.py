"""Win-time distributions by FFT against the day-by-day sums they replace.

`renewal` solves the chance of a win on each day after entering a stage, and
`new_win_cdf` convolves a new deal's exit days with those chances. Both were sums
over every pair of days; the FFT versions must give the same numbers (to rounding)
on spans that split several times, and the exact days of a hand-built process.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnelwise.forecast.hazards import RENEWAL_LEAF, Design, new_win_cdf, renewal


def _day_by_day(moves: np.ndarray, won: np.ndarray) -> np.ndarray:
    """g(d) = (I − F0)⁻¹ (won(d) + Σ_{1≤m≤d} F_m g(d − m)), one day at a time."""
    g_n, h_n, s_n = won.shape
    g = np.zeros_like(won)
    for k in range(g_n):
        solve = np.linalg.inv(np.eye(s_n) - moves[k, 0])
        for d in range(h_n):
            rhs = won[k, d].copy()
            for m in range(1, d + 1):
                rhs += moves[k, m] @ g[k, d - m]
            g[k, d] = solve @ rhs
    return g


def _sub_stochastic(rng: np.random.Generator, g_n: int, h_n: int, s_n: int) -> tuple:
    """Random daily move and win chances whose total per stage stays below 1."""
    raw = rng.exponential(size=(g_n, h_n, s_n, s_n + 1))
    raw /= raw.sum(axis=(1, 3), keepdims=True) * 1.25
    for s in range(s_n):
        raw[:, :, s, s] = 0.0  # no move from a stage to itself
    return raw[..., :s_n], raw[..., s_n]


@pytest.mark.parametrize("h_n", [1, RENEWAL_LEAF, RENEWAL_LEAF + 1, 5 * RENEWAL_LEAF + 7])
def test_renewal_matches_the_day_by_day_recursion(h_n: int) -> None:
    moves, won = _sub_stochastic(np.random.default_rng(h_n), 2, h_n, 3)
    assert np.allclose(renewal(moves, won), _day_by_day(moves, won), rtol=1e-9, atol=1e-13)


def test_renewal_places_a_win_on_the_exact_day_across_spans() -> None:
    # Stage 0 moves to stage 1 after 40 days; stage 1 is won 50 days after entry:
    # entering stage 0 is won on day 90 and no other. 40 crosses the one-by-one spans.
    h_n = 4 * RENEWAL_LEAF
    moves = np.zeros((1, h_n, 2, 2))
    won = np.zeros((1, h_n, 2))
    moves[0, 40, 0, 1] = 1.0
    won[0, 50, 1] = 1.0
    g = renewal(moves, won)
    assert g[0, 90, 0] == pytest.approx(1.0)
    assert np.abs(np.delete(g[0, :, 0], 90)).max() < 1e-12
    assert g[0, 50, 1] == pytest.approx(1.0)


def _design(s_n: int) -> Design:
    stages = pd.DataFrame(
        {"pipeline_id": "p", "stage_id": [f"s{i}" for i in range(s_n)], "position": range(s_n)}
    )
    stages["state"] = range(s_n)
    return Design(stages=stages, forward=np.ones((s_n, s_n + 2), dtype=bool))


def test_new_deal_win_chances_are_the_sum_over_exit_days() -> None:
    rng = np.random.default_rng(5)
    s_n, h_n, n = 3, 70, 4
    design = _design(s_n)
    q = rng.exponential(size=(n, h_n + 1, design.n_dest))
    q /= q.sum(axis=(1, 2), keepdims=True)
    cg = np.cumsum(rng.exponential(size=(s_n, h_n + 1)), axis=1)
    cg /= cg[:, -1:] * 1.5
    expected = np.zeros((n, h_n))
    for e in range(h_n):
        for p in range(e + 1):
            expected[:, e] += q[:, p, design.won] + q[:, p, :s_n] @ cg[:, e - p]
    assert np.allclose(new_win_cdf(q, cg, design), expected, rtol=1e-9, atol=1e-13)
