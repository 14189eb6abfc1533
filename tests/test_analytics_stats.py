"""Wilson intervals, Kaplan–Meier summaries and Aalen–Johansen incidence by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelwise.analytics.stats import (
    cumulative_incidence,
    incidence_quantile,
    summarize_durations,
    value_at,
    wilson_interval,
)


def test_wilson_matches_the_formula_and_its_edges() -> None:
    lower, upper = wilson_interval([4, 0, 5, 0], [5, 5, 5, 0])
    # 4 of 5 at 95%: centre (0.8 + z²/10) / (1 + z²/5), z = 1.95996.
    z = 1.959963984540054
    centre = (0.8 + z**2 / 10) / (1 + z**2 / 5)
    half = z * math.sqrt(0.8 * 0.2 / 5 + z**2 / 100) / (1 + z**2 / 5)
    assert lower[0] == pytest.approx(centre - half) and lower[0] == pytest.approx(0.3755, abs=1e-4)
    assert upper[0] == pytest.approx(centre + half) and upper[0] == pytest.approx(0.9638, abs=1e-4)
    # 0 of 5: the lower bound is 0, the upper bound is not.
    assert lower[1] == 0.0 and upper[1] == pytest.approx(0.4345, abs=1e-4)
    assert upper[2] == 1.0 and lower[2] == pytest.approx(1 - 0.4345, abs=1e-4)
    assert np.isnan(lower[3]) and np.isnan(upper[3])


def test_kaplan_meier_summary_by_hand() -> None:
    # Durations 10, 10 finished; 29 and 37 still running.
    s = summarize_durations([10, 29, 37], [False, True, True], [2, 1, 1], target=14)
    assert (s.n, s.n_censored) == (4, 2)
    assert s.median == 10  # S drops to 1/2 at 10
    assert np.isnan(s.p75) and np.isnan(s.p90)  # never observed to fall that low
    assert s.mean == pytest.approx(10 * 1 + 27 * 0.5)  # area under S up to 37
    assert s.over_target == pytest.approx(0.5)
    # Frequency counts give the same answer as repeated rows.
    r = summarize_durations([10, 10, 29, 37], [False, False, True, True], target=14)
    assert (r.median, r.mean, r.over_target) == (s.median, s.mean, s.over_target)


def test_share_over_target_is_unknown_past_the_follow_up() -> None:
    # 500 deals that entered the stage today: nothing says whether they will
    # overrun a 7-day target, and there is no mean time yet.
    s = summarize_durations([0], [True], [500], target=7)
    assert np.isnan(s.over_target) and np.isnan(s.over_target_lower) and np.isnan(s.mean)
    # All ended by day 20, none still running: none over 30 days, with the Wilson
    # bound for 0 of 5 as the upper end; all 5 over 5 days, bounded below alike.
    z2 = 1.959964**2
    done = summarize_durations([10, 20], [False, False], [3, 2], target=30)
    assert (done.over_target, done.over_target_lower) == (0.0, 0.0)
    assert done.over_target_upper == pytest.approx(z2 / (5 + z2))
    early = summarize_durations([10, 20], [False, False], [3, 2], target=5)
    assert (early.over_target, early.over_target_upper) == (1.0, 1.0)
    assert early.over_target_lower == pytest.approx(1 - z2 / (5 + z2))
    # Two still running at day 20: beyond it the share is not known.
    assert np.isnan(summarize_durations([10, 20], [False, True], [3, 2], target=30).over_target)


def test_aalen_johansen_handles_ties_exactly() -> None:
    # Day 5: one won and one lost of 4 at risk; day 7: one censored; day 10: the last won.
    curve = cumulative_incidence([5, 5, 7, 10], [1, 2, 0, 1], [1, 1, 1, 1])
    won = curve[curve.outcome == "won"].reset_index(drop=True)
    lost = curve[curve.outcome == "lost"].reset_index(drop=True)
    assert value_at(won, 5, ["cif"]) == [pytest.approx(0.25)]
    assert value_at(lost, 5, ["cif"]) == [pytest.approx(0.25)]
    # After day 5 half survive; at day 10 the one left at risk wins: 0.25 + 0.5.
    assert value_at(won, 10, ["cif"]) == [pytest.approx(0.75)]
    assert value_at(won, 4, ["cif"]) == [0.0]
    assert value_at(won, 10, ["at_risk"]) == [1.0]
    nd = curve[curve.outcome == "no_decision"]
    assert nd.cif.tolist() == [0.0, 0.0, 0.0]
    # Never happened: the Wilson upper bound for none of the deals closed so far,
    # z^2 / (n + z^2) with 2 closed by day 5 and 3 by day 10.
    z2 = 1.959964**2
    assert nd.upper.tolist() == pytest.approx([z2 / (2 + z2), z2 / (2 + z2), z2 / (3 + z2)])
    lo, hi = value_at(won, 10, ["lower", "upper"])
    assert lo < 0.75 < hi
    # The day by which half of the eventual wins happened (0.375 of 0.75): day 10.
    assert incidence_quantile(won, 0.5) == 10
    assert incidence_quantile(won, 0.3) == 5


def test_incidence_at_one_has_a_finite_interval() -> None:
    # 4238 deals, every one won on day 0 (an export that books the stages at the
    # close): the estimate is 1 and the interval the Wilson one for 4238 of 4238,
    # not [0, 1].
    curve = cumulative_incidence([0], [1], [4238])
    won = curve[curve.outcome == "won"]
    z2 = 1.959964**2
    assert won[["cif", "upper"]].values.tolist() == [[1.0, 1.0]]
    assert won.lower.iloc[0] == pytest.approx(1 - z2 / (4238 + z2))
    lost = curve[curve.outcome == "lost"]
    assert lost.upper.iloc[0] == pytest.approx(z2 / (4238 + z2))


def test_aalen_johansen_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    days = rng.integers(0, 30, 200)
    codes = rng.integers(0, 4, 200)
    raw = cumulative_incidence(days, codes, np.ones(200))
    pairs, counts = np.unique(np.stack([days, codes]), axis=1, return_counts=True)
    pooled = cumulative_incidence(pairs[0], pairs[1], counts)
    np.testing.assert_allclose(raw.cif, pooled.cif)
    np.testing.assert_allclose(raw.upper, pooled.upper)
    # Incidences and survival add up to one at every day.
    last = raw.groupby("outcome").cif.last().sum()
    closed = (codes > 0).sum()
    assert 0 < last <= 1 and closed < 200


def test_incidence_bounds_match_lifelines_where_it_defines_them() -> None:
    from lifelines import AalenJohansenFitter

    rng = np.random.default_rng(7)
    days = rng.permutation(np.arange(1, 301))[:120]  # distinct times: lifelines needs no jitter
    codes = rng.integers(0, 4, 120)
    ours = cumulative_incidence(days, codes, np.ones(120))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = AalenJohansenFitter().fit(days + 0.1, codes, event_of_interest=1)
    ref_ci = ref.confidence_interval_.iloc[1:]  # first row is time 0
    won = ours[ours.outcome == "won"].iloc[1:]
    cif = ref.cumulative_density_.iloc[1:, 0].to_numpy()
    np.testing.assert_allclose(won.cif, cif)
    defined = ~np.isnan(ref_ci.to_numpy()).any(axis=1) & (cif > 0)
    np.testing.assert_allclose(won.lower[defined], ref_ci.min(axis=1)[defined], rtol=1e-9)
    np.testing.assert_allclose(won.upper[defined], ref_ci.max(axis=1)[defined], rtol=1e-9)


def test_wilson_bounds_are_exact_when_none_or_all_succeed() -> None:
    # Floating point left the upper bound at 1 - 1.1e-16 for some k == n (and
    # the lower bound a hair above 0 for some k == 0): the interval then missed
    # its own estimate of 1 (or 0).
    n = np.arange(1, 3001)
    lower, upper = wilson_interval(n, n)
    assert (upper == 1.0).all() and (lower < 1.0).all()
    lower, upper = wilson_interval(np.zeros_like(n), n)
    assert (lower == 0.0).all() and (upper > 0.0).all()
    # Between the edges every interval contains its estimate.
    k, m = n[1:] // 2, n[1:]
    lower, upper = wilson_interval(k, m)
    assert ((lower <= k / m) & (k / m <= upper) & (lower > 0) & (upper < 1)).all()
