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

from funnelwise.forecast import hazards
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


def _open_by_hand(args: tuple) -> np.ndarray:
    """Each class day by day: survive to the step, leave to d, then win by each end."""
    rates, design, pair_state, pair_tau, cg, ends, cls_pair, cls_kind, cls_theta = args
    s_n, h_n = design.n_states, cg.shape[-1] - 1
    out = np.zeros((len(cls_pair), len(ends)))
    for c, (p, g) in enumerate(zip(cls_pair, cls_kind, strict=True)):
        points = pair_tau[p] + np.arange(h_n + 1)[None, :]
        inc = hazards.increments(rates, pair_state[p : p + 1], points)[0]  # (H, D)
        scale = np.where(design.forward[pair_state[p]], cls_theta[c, 0], cls_theta[c, 1])
        alive = 1.0
        for h in range(h_n):
            step = inc[h] * scale
            total = step.sum()
            leave = alive * (1.0 - np.exp(-total)) * step / total
            for k, end in enumerate(ends):
                lag = end - (h + 1)  # days after leaving, on the day after step h
                if lag >= 0:
                    out[c, k] += leave[design.won] + leave[:s_n] @ cg[g, :, lag]
            alive *= np.exp(-total)
    return out


def test_open_deals_win_chances_are_the_day_by_day_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(8)
    s_n, h_n, n_bins = 3, 40, len(hazards.EDGES)
    forward = rng.random((s_n, s_n + 2)) < 0.6
    design = Design(stages=_design(s_n).stages, forward=forward)
    cg = np.cumsum(rng.exponential(size=(2, s_n, h_n + 1)), axis=2)
    cg /= cg[..., -1:] * 1.5
    n_c = 30
    args = (
        rng.exponential(0.02, size=(s_n, n_bins, design.n_dest)),
        design,
        np.array([0, 1, 2, 1]),
        np.array([0.5, 3.0, 10.0, 40.0]),
        cg,
        np.array([9, 25, 39]),
        rng.integers(0, 4, n_c),
        rng.integers(0, 2, n_c),
        rng.uniform(0.5, 2.0, (n_c, 2)),
    )
    expected = _open_by_hand(args)
    assert expected[:, -1].min() > 0.01
    np.testing.assert_allclose(hazards.open_win_cdf(*args), expected, rtol=1e-9, atol=1e-12)
    # Taken a few classes at a time, the answer is the same.
    monkeypatch.setattr(hazards, "CLASS_CHUNK_BYTES", 8 * h_n * design.n_dest * 7)
    np.testing.assert_allclose(hazards.open_win_cdf(*args), expected, rtol=1e-9, atol=1e-12)
