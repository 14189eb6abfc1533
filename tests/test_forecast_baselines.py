"""Baselines and the forecast calendar, computed by hand on the tiny log (tests/tiny.py).

At 2024-03-01 the open deals are D3 (qualification, 2,000, expected close
2024-03-15 after a push) and D4 (qualification, 300, expected close
2024-04-01). The process gives qualification a probability of 0.2; closed
deals that visited qualification are D1 (won) and D2 (lost): a historical
rate of 1/2. The only win is D1 (1,000 on 2024-02-01), 60 days into the log.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import funnelwise as fw
from analytics_data import tiny_changed
from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.forecast import (
    NotFittedError,
    RunRate,
    WeightedHistorical,
    WeightedPipeline,
)
from funnelwise.forecast.arrivals import AmountPool
from funnelwise.forecast.history import pull_history
from funnelwise.forecast.montecarlo import independent_paths
from funnelwise.forecast.options import horizon_days
from funnelwise.forecast.periods import period_grid, starts_a_period, sum_by_period
from two_pipelines import WEIGHTED, build_two_pipelines

T = pd.Timestamp
Z90 = 1.2815515655446004  # standard normal 90th percentile


def test_weighted_pipeline_of_one_pipeline_reads_its_own_probabilities(tmp_path: Path) -> None:
    log = fw.open(build_two_pipelines(tmp_path / "two"))
    fitted = WeightedPipeline(n_paths=100).fit(log.filter(pipeline="renewals"))
    probs = fitted.probabilities_.set_index("stage_id").probability
    assert set(fitted.probabilities_.pipeline_id) == {"renewals"}
    assert probs[["renewal-review", "renewal-quote"]].tolist() == [0.5, 0.9]
    r = fitted.predict(horizon="90d")
    assert r.expected == pytest.approx(WEIGHTED["renewals"]) and r.pipeline == "renewals"
    assert fw.forecast(log, method="weighted_pipeline", n_paths=100).pipeline is None
    log.store.close()


def test_weighted_pipeline_by_hand(tiny_log: fw.EventLog) -> None:
    r = WeightedPipeline().fit(tiny_log).predict(horizon="30d", period="month")
    # Only D3 closes by 2024-03-31: 2,000 × 0.2 expected, but it books 2,000 (one time
    # in five) or nothing: P10 and P50 are 0 and P90 2,000 (a normal curve said 1,425).
    assert r.expected == pytest.approx(400.0)
    assert (r.p10, r.p50, r.p90) == (0.0, 0.0, 2000.0)
    assert r.n_paths == 10_000 and r.seed == 0
    reach = WeightedPipeline().fit(tiny_log).predict(horizon="30d", target=2000.0)
    assert reach.prob_target == pytest.approx(0.2, abs=0.015)
    assert r.as_of == T("2024-03-01") and r.method == "weighted_pipeline"
    longer = WeightedPipeline().fit(tiny_log).predict(horizon="90d", period="month")
    per = longer.to_frame().set_index("period").expected
    # D4's 2024-04-01 is April's first day.
    assert per.to_dict() == pytest.approx({"2024-03": 400.0, "2024-04": 60.0, "2024-05": 0.0})
    fan = longer.fan
    assert fan.expected.tolist() == pytest.approx([400.0, 460.0, 460.0])
    # Nothing closes in the next ten days: zero, and said so.
    short = WeightedPipeline().fit(tiny_log).predict(horizon="10d")
    assert short.expected == 0.0
    assert short.notes == (
        "no open deal is expected to close by 2024-03-11: the weighted pipeline is zero",
    )


def test_weighted_pipeline_uses_close_dates_as_they_stood(tiny_log: fw.EventLog) -> None:
    # On 2024-02-05 D3 still expected to close on 2024-02-15 (pushed on 02-10) and D5
    # (lead, 0.05, 800) was open with 2024-02-20.
    r = WeightedPipeline().fit(tiny_log.as_of("2024-02-05")).predict(horizon="30d", period="week")
    per = r.to_frame().set_index("period").expected
    assert per["2024-W07"] == pytest.approx(400.0)
    assert per["2024-W08"] == pytest.approx(40.0)
    assert r.expected == pytest.approx(440.0)


def test_weighted_pipeline_by_segment(tiny_log: fw.EventLog) -> None:
    r = WeightedPipeline(by="source").fit(tiny_log).predict(horizon="90d", target=500.0)
    totals = r.totals.set_index("segment")
    assert totals.expected.to_dict() == pytest.approx({"all": 460.0, "web": 400.0, "partner": 60.0})
    # D3 (web, 2,000) and D4 (partner, 300), each won with chance 0.2: the total is 0,
    # 300, 2,000 or 2,300 with chances 0.64, 0.16, 0.16, 0.04; 500 is reached when D3 is.
    assert r.prob_target == pytest.approx(0.2, abs=0.015)
    assert totals.loc["all", ["p10", "p50", "p90"]].tolist() == [0.0, 0.0, 2000.0]
    assert totals.loc["partner", ["p50", "p90"]].tolist() == [0.0, 300.0]
    assert totals.loc["web", ["p50", "p90"]].tolist() == [0.0, 2000.0]


def test_weighted_historical_by_hand(tiny_log: fw.EventLog) -> None:
    est = WeightedHistorical(min_closed=3).fit(tiny_log)
    rates = est.probabilities_.set_index("stage_id")
    assert rates.loc["qualification", ["closed", "won", "probability"]].tolist() == [2, 1, 0.5]
    assert rates.loc["lead", "probability"] == pytest.approx(1 / 3)
    r = est.predict(horizon="30d")
    assert r.expected == pytest.approx(1000.0)
    assert (r.p10, r.p90) == (0.0, 2000.0)  # D3's 2,000 at even odds


def test_run_rate_by_hand(tiny_log: fw.EventLog) -> None:
    est = RunRate(min_wins=1).fit(tiny_log)
    assert est.window_days_ == 60.0  # the log is shorter than the 26-week window
    r = est.predict(horizon="60d", period="horizon", target=2000.0)
    assert r.expected == pytest.approx(1000.0)
    # One win of 1,000 in 60 days: over the next 60 a Poisson(1) number of wins of
    # 1,000 each, P(N ≤ 0, 1, 2) = 0.368, 0.736, 0.920; P(N ≥ 2) = 0.264.
    assert (r.p10, r.p50, r.p90) == (0.0, 1000.0, 2000.0)
    assert r.prob_target == pytest.approx(0.264, abs=0.015)
    assert len(r.to_frame()) == 1


def test_too_little_history_says_how_much(tiny_log: fw.EventLog) -> None:
    with pytest.raises(NotEnoughDataError, match=r"has 3 .* needs at least 10"):
        WeightedHistorical().fit(tiny_log)
    with pytest.raises(
        NotEnoughDataError, match=r"won in the trailing 60 days.*has 1 .*at least 3"
    ):
        RunRate().fit(tiny_log)


def test_unfitted_and_bad_options(tiny_log: fw.EventLog) -> None:
    est = WeightedPipeline(by="source")
    assert est.get_params() == {"by": "source", "n_paths": 10_000, "seed": 0}
    assert not hasattr(est, "history_")
    with pytest.raises(NotFittedError, match=r"call \.fit\(log\) first"):
        est.predict()
    fitted = WeightedPipeline().fit(tiny_log)
    with pytest.raises(InputError, match="period 'fortnight' is not one of"):
        fitted.predict(period="fortnight")
    with pytest.raises(InputError, match="horizon"):
        fitted.predict(horizon="12h")
    with pytest.raises(InputError, match="no deal has a value for it"):
        WeightedPipeline(by="colour").fit(tiny_log)
    with pytest.raises(InputError, match="n_paths must be at least"):
        RunRate(n_paths=10).fit(tiny_log)


def test_process_without_probabilities_is_named(tiny_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "noprob"
    shutil.copytree(tiny_project, root)
    text = (root / "process.yaml").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if "probability:" not in ln]
    (root / "process.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = fw.open(root)
    try:
        with pytest.raises(InputError, match="qualification have no probability"):
            WeightedPipeline().fit(log)
    finally:
        log.store.close()


def test_past_bookings_for_the_fan_chart(tiny_log: fw.EventLog) -> None:
    r = WeightedPipeline().fit(tiny_log).predict(horizon="30d", period="month")
    h = r.history.set_index("period").booked
    # The tiny log's closes are dates: D1, won "2024-02-01", is February's, and the log,
    # observed to the end of 1 March, has seen one day of March. The look-back starts
    # with the first deal, after 1 January: a January without its first day is left out.
    assert pull_history(tiny_log).dated
    assert h.to_dict() == {"2024-02": 1000.0, "2024-03": 0.0}
    assert starts_a_period(T("2024-01-31"), "month", dated=True)
    assert not starts_a_period(T("2024-01-31"), "month")
    assert starts_a_period(T("2024-06-30 12:00"), "month", dated=True)
    assert starts_a_period(T("2024-04-01"), "quarter") and starts_a_period(T("2024-02-05"), "week")
    assert not starts_a_period(T("2024-05-01"), "quarter")
    assert not starts_a_period(T("2024-02-01 10:00"), "month")


def test_past_bookings_by_horizon_come_in_windows_of_the_horizon(tiny_log: fw.EventLog) -> None:
    # Beside a 30-day forecast, the past in 30-day windows: one 60-day window would read
    # as twice the bookings. D1 (1,000, won "2024-02-01") is in the second.
    r = WeightedPipeline().fit(tiny_log).predict(horizon="30d", period="horizon")
    assert r.history.period.tolist() == ["2024-01-02+30d", "2024-02-01+30d"]
    assert r.history.booked.tolist() == [0.0, 1000.0]
    assert r.to_frame().period.tolist() == ["2024-03-02+30d"]
    # A history shorter than the horizon holds no whole window.
    assert WeightedPipeline().fit(tiny_log).predict(horizon="90d", period="horizon").history.empty


# -- the calendar ----------------------------------------------------------------------


def test_week_grid_clips_to_the_horizon() -> None:
    g = period_grid(T("2024-02-05 10:00"), 30, "week")
    assert g.labels == ["2024-W06", "2024-W07", "2024-W08", "2024-W09", "2024-W10"]
    assert g.starts[1] == T("2024-02-12") and g.ends[-1] == T("2024-03-06 10:00")
    assert g.end_days.tolist() == [6, 13, 20, 27, 30]
    assert g.n_days == 30


def test_month_and_quarter_grids() -> None:
    g = period_grid(T("2024-01-31"), 30, "month")
    assert (g.labels, g.end_days.tolist()) == (["2024-01", "2024-02"], [1, 30])
    q = period_grid(T("2024-02-10"), 120, "quarter")
    assert q.labels == ["2024-Q1", "2024-Q2"] and q.ends[0] == T("2024-04-01")
    h = period_grid(T("2024-02-10"), 90, "horizon")
    assert len(h) == 1 and h.labels == ["2024-02-10+90d"]


def test_a_log_is_dated_when_nearly_all_its_wins_close_at_midnight(
    tiny_log: fw.EventLog,
) -> None:
    h = pull_history(tiny_log)
    days = pd.date_range("2024-01-01", periods=20, freq="D")

    def closes(timed: int) -> bool:
        at = days.to_series(index=range(20))
        at.iloc[:timed] += pd.Timedelta(hours=10)
        return replace(h, wins=pd.DataFrame({"closed_at": at})).dated

    # One timed close in twenty (95% at midnight) keeps the dates; two do not.
    assert (closes(0), closes(1), closes(2)) == (True, True, False)
    # With fewer wins the stage entries decide: the tiny log's are all at midnight.
    assert h.events_dated and h.dated
    assert not replace(h, events_dated=False).dated


def test_dated_grid_reads_each_stamp_as_its_day() -> None:
    # As of 30 June (its stamps seen), July is the stamps 1-31 July: (30 June, 31 July].
    g = period_grid(T("2017-06-30"), 92, "month", dated=True)
    assert g.labels == ["2017-07", "2017-08", "2017-09"]
    assert list(g.ends) == [T("2017-07-31"), T("2017-08-31"), T("2017-09-30")]
    # Shown as the first and last dates each period holds.
    assert g.frame().start.tolist() == [T("2017-07-01"), T("2017-08-01"), T("2017-09-01")]
    assert g.end_days.tolist() == [31, 62, 92]
    stamps = np.array(["2017-07-01", "2017-07-31", "2017-08-01", "2017-09-30"], "datetime64[ns]")
    out = sum_by_period(stamps, np.array([1.0, 2.0, 4.0, 8.0]), [g.starts[0], *g.ends])
    assert out.tolist() == [3.0, 4.0, 8.0]
    # The instant grid puts 1 July 00:00 in June's (1 June, 1 July]; weeks and quarters
    # shift the same way.
    assert period_grid(T("2017-06-01"), 30, "month").labels == ["2017-06"]
    assert period_grid(T("2017-06-01"), 30, "month", dated=True).labels == ["2017-06", "2017-07"]
    w = period_grid(T("2024-02-05"), 14, "week", dated=True)
    assert w.labels == ["2024-W06", "2024-W07", "2024-W08"] and w.end_days.tolist() == [6, 13, 14]
    # From noon, 30 June's stamp lies in the first model day: June ends on day 10, and a
    # close stamped 30 June is June's in the models as in past bookings.
    noon = period_grid(T("2024-06-20 12:00"), 20, "month", dated=True)
    assert noon.labels == ["2024-06", "2024-07"] and noon.end_days.tolist() == [10, 20]
    q = period_grid(T("2024-03-31"), 30, "quarter", dated=True)
    assert q.labels == ["2024-Q2"] and q.end_days.tolist() == [30]


def test_sum_by_period_bounds_belong_to_the_period_they_end() -> None:
    edges = [T("2024-01-01"), T("2024-02-01"), T("2024-03-01")]
    times = np.array(
        ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-02", "2024-03-02"],
        dtype="datetime64[ns]",
    )
    out = sum_by_period(times, np.array([1.0, 2.0, 4.0, 8.0, 16.0]), edges)
    assert out.tolist() == [6.0, 8.0]


def test_a_quarter_horizon_leaves_no_empty_sliver_of_a_month() -> None:
    # 1q = 91.3125 days from 31 December ends on 1 April 07:30: no "2018-04" period
    # with no whole day in it; March runs to the end of the horizon.
    grid = period_grid(T("2017-12-31"), 91.3125, "month")
    assert grid.labels == ["2017-12", "2018-01", "2018-02", "2018-03"]
    assert grid.ends[-1] == T("2017-12-31") + pd.Timedelta(days=91.3125)
    assert grid.end_days[-1] == grid.n_days == 91
    # A bound a full day or more before the end still cuts.
    assert period_grid(T("2017-12-31"), 92.0, "month").labels[-1] == "2018-04"


def test_calendar_horizons_end_on_the_calendar() -> None:
    # A forecast's 1q is the next quarter: from a month end to the end of the third
    # month after it (Q1 2018 has 90 days, Q3 and Q4 92), else the same day 3 months on.
    days = [horizon_days("1q", T(d)) for d in ("2017-12-31", "2017-06-30", "2017-09-30")]
    assert days == [90.0, 92.0, 92.0]
    assert horizon_days("3m", T("2017-06-15")) == 92.0  # to 15 September
    assert horizon_days("1y", T("2016-02-29")) == 365.0  # to 28 February 2017
    assert horizon_days("1.5q", T("2017-01-01")) == horizon_days("1.5q") == 1.5 * 91.3125
    assert horizon_days("90d", T("2017-01-01")) == 90.0
    grid = period_grid(T("2017-12-31"), horizon_days("1q", T("2017-12-31")), "quarter", dated=True)
    assert (grid.labels, grid.ends[-1]) == (["2018-Q1"], T("2018-03-31"))


def test_a_log_without_deals_says_why_it_cannot_be_forecast(
    tiny_project: Path, tiny_log: fw.EventLog, tmp_path: Path
) -> None:
    # Before any deal: nothing to learn from yet.
    with pytest.raises(NotEnoughDataError, match="holds no deals as of 2023-06-01"):
        fw.forecast(tiny_log, as_of="2023-06-01")
    # Leads only (as the Olist funnel): a zero forecast would read as a forecast.
    sql = (
        "DELETE FROM stage_events; DELETE FROM deal_changes; DELETE FROM activities; "
        "DELETE FROM deals; INSERT INTO leads (lead_id, created_at, source, origin) VALUES "
        "('L1', TIMESTAMP '2024-01-05', 'web', 'test'), "
        "('L2', TIMESTAMP '2024-01-09', 'event', 'test')"
    )
    with tiny_changed(tiny_project, tmp_path / "leads-only", sql) as log:
        for method in ("montecarlo", "weighted_pipeline"):
            with pytest.raises(NotEnoughDataError, match="holds no deals, only 2 leads"):
                fw.forecast(log, method=method)


def test_an_as_of_before_the_first_deal_names_its_date(tiny_project: Path, tmp_path: Path) -> None:
    # Leads came first (as in the demo): the deals are in the log, only later than the
    # as-of date, so advice to import them would send the reader the wrong way.
    sql = (
        "INSERT INTO leads (lead_id, created_at, source, origin) VALUES "
        "('L1', TIMESTAMP '2023-05-05', 'web', 'test')"
    )
    with (
        tiny_changed(tiny_project, tmp_path / "leads-first", sql) as log,
        pytest.raises(NotEnoughDataError) as caught,
    ):
        fw.forecast(log, as_of="2023-06-01")
    message = str(caught.value)
    assert "its first deal was created on 2024-01-01: forecast from a later --as-of" in message
    assert "import" not in message


def test_independent_deals_follow_the_binomial_exactly_or_by_their_moments() -> None:
    # 400 deals of 1,000 at 0.3, all closing in the first of three months: the total
    # is 1,000 × Binomial(400, 0.3), whether each deal is drawn (large budget) or all
    # but the largest enter through their exact mean and variance (small budget).
    grid = period_grid(T("2024-01-01"), 90, "month")
    cum = np.tile([0.3, 0.3, 0.3], (400, 1))
    amount, seg = np.full(400, 1000.0), np.zeros(400, dtype=np.int64)
    truth = stats.binom(400, 0.3)
    for budget in (1e8, 1e5):
        paths, expected, info = independent_paths(
            cum, amount, seg, 1, grid, n_paths=10_000, seed=1, budget=budget
        )
        assert expected[0].tolist() == pytest.approx([120_000.0, 0.0, 0.0])
        total = paths.sum(axis=(1, 2)) / 1000
        for q in (0.1, 0.5, 0.9):
            assert abs(np.quantile(total, q) - truth.ppf(q)) <= 1.0
        assert np.abs(paths[:, :, 1:]).max() < 1e-6  # nothing closes after the first month
    assert info == {"exact_deals": 10, "approximated_deals": 390}


def test_a_whale_stays_a_coin_flip_beside_many_small_deals() -> None:
    # One deal of 1,000,000 at 0.2 beside 400 of 1,000 at 0.3, with room to draw only
    # ten deals one by one: the whale is among them, so P90 holds it and P50 does not.
    # Below 1,000,000, P(total ≤ x) = 0.8 F(x), F the small deals' law: the median is
    # F's 0.625 quantile; above, 0.8 + 0.2 F(x − 1,000,000): P90 is F's median on top.
    grid = period_grid(T("2024-01-01"), 30, "month")
    amount = np.concatenate([[1e6], np.full(400, 1000.0)])
    cum = np.concatenate([[0.2], np.full(400, 0.3)])[:, None]
    paths, _, info = independent_paths(
        cum, amount, np.zeros(401, dtype=np.int64), 1, grid, n_paths=10_000, seed=2, budget=1e5
    )
    total = paths.sum(axis=(1, 2))
    small = stats.binom(400, 0.3)
    assert np.quantile(total, 0.5) == pytest.approx(1000 * small.ppf(0.625), abs=2000)
    assert np.quantile(total, 0.9) == pytest.approx(1e6 + 1000 * small.ppf(0.5), abs=3000)
    assert np.mean(total >= 1e6) == pytest.approx(0.2, abs=0.015)
    assert info["exact_deals"] == 10


def test_sums_of_many_amounts_keep_the_compound_moments() -> None:
    # Beyond EXACT_SUMS draws a cell's sum comes from a gamma with the exact mean
    # (k μ) and variance (k σ²); below, each amount is drawn.
    pool = AmountPool(keys=(("all", ""),), amounts=(np.array([100.0, 300.0, 800.0]),), n_wins=3)
    rng = np.random.default_rng(3)
    for k in (5, 200):
        sums = pool.draw_sums(rng, np.full(40_000, k), np.zeros(40_000, dtype=np.int64))
        assert sums.mean() == pytest.approx(k * 400.0, rel=0.01)
        assert sums.var() == pytest.approx(k * (740_000 / 3 - 400.0**2), rel=0.05)
    few = pool.draw_sums(rng, np.array([[0, 1], [2, 0]]), np.zeros((2, 2), dtype=np.int64))
    assert few[0, 0] == 0.0 and few[1, 1] == 0.0
    assert few[0, 1] in (100.0, 300.0, 800.0)


def test_a_long_weekly_horizon_draws_every_deal_and_books_nothing_negative() -> None:
    # 200 open deals spread over three years of weeks, one or two a week, each won with
    # chance 0.25 in its week: a week books a sum of its deals' amounts or nothing. A
    # normal standing in for the deals past the budget would give such a week a
    # negative P10 (the budget must not shrink with the number of periods: the draws
    # are per deal and path).
    grid = period_grid(T("2025-01-01"), 3 * 365, "week")
    n, k = 200, len(grid)
    week = np.arange(n) % k
    cum = 0.25 * (np.arange(k)[None, :] >= week[:, None])
    amount = 1000.0 + 10.0 * np.arange(n)
    paths, expected, info = independent_paths(
        cum, amount, np.zeros(n, dtype=np.int64), 1, grid, n_paths=10_000, seed=4
    )
    assert info == {"exact_deals": n, "approximated_deals": 0}
    assert paths.min() >= 0.0
    assert np.quantile(paths, 0.1, axis=0).min() >= 0.0
    assert expected.sum() == pytest.approx(0.25 * amount.sum())
