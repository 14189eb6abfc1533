"""Backtests: scores by hand, as-of discipline (the future cannot leak into a forecast),
fallbacks, and interval coverage over many cut-offs of a synthetic log."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from forecast_data import START, Memoryless, build_memoryless
from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.forecast import MonteCarlo, backtest
from funnelwise.forecast.backtest import (
    AUTO_MIN_SPACING,
    MIN_CUTOFFS,
    auto_spacing,
    choose,
    cutoff_dates,
    score,
)
from funnelwise.forecast.history import History, pull_history
from funnelwise.forecast.result import BacktestResult, MethodScore

T0 = START + pd.Timedelta(days=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_memoryless(tmp_path_factory.mktemp("bt"), Memoryless(rate=5.0, days=420), seed=7)


def _backtest(root: Path, **kwargs: Any) -> BacktestResult:
    """A backtest of the project at `root`, its store closed afterwards."""
    log = fw.open(root)
    try:
        return backtest(log, **kwargs)
    finally:
        log.store.close()


def _rows(actual: list[float], **cols: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"actual": actual, **cols, "fallback": [None] * len(actual)})


def test_scores_by_hand() -> None:
    rows = _rows(
        [100.0, 200.0],
        expected=[150.0, 150.0],
        p10=[50.0, 180.0],
        p50=[100.0, 200.0],
        p90=[150.0, 250.0],
    )
    s = score("m", rows)
    assert s.wape == pytest.approx(100 / 300)
    assert s.bias == pytest.approx(0.0)
    # Pinball at 0.1: (0.1·50 + 0.1·20) / 2 = 3.5; at 0.9: (0.1·50 + 0.1·50) / 2 = 5;
    # each divided by the mean actual, 150.
    assert s.pinball_p10 == pytest.approx(3.5 / 150)
    assert s.pinball_p50 == 0.0
    assert s.pinball_p90 == pytest.approx(5 / 150)
    assert s.pinball == pytest.approx((3.5 / 150 + 5 / 150) / 3)
    assert (s.coverage80, s.n_cutoffs, s.n_fallback) == (1.0, 2, 0)


def test_choose_ignores_methods_that_always_fell_back() -> None:
    def ms(method: str, pinball: float, fallback: int = 0) -> MethodScore:
        return MethodScore(method, 0.5, 0.0, pinball, 0, 0, 0, 0.8, 4, fallback, 1.0)

    scores = {
        "weighted_pipeline": ms("weighted_pipeline", 0.3),
        "montecarlo": ms("montecarlo", 0.1, fallback=4),
        "run_rate": ms("run_rate", 0.2),
    }
    chosen, reason = choose(scores)
    assert chosen == "run_rate"
    assert reason.startswith("run_rate has the lowest pinball loss (0.200")
    assert "0% lower" in reason
    # Four cut-offs prove little, and the choice says so.
    assert "but 4 cut-offs cannot tell the methods apart" in reason
    one = {"run_rate": replace(ms("run_rate", 0.2), n_cutoffs=1)}
    assert "over 1 cut-off;" in choose(one)[1]
    many = {"run_rate": replace(ms("run_rate", 0.2), n_cutoffs=8)}
    assert "cannot tell" not in choose(many)[1]


def test_nothing_booked_puts_no_interval_to_the_test() -> None:
    s = score(
        "m", _rows([0.0, 0.0], expected=[0.0, 0.0], p10=[0.0, 0.0], p50=[0.0] * 2, p90=[0.0] * 2)
    )
    assert np.isnan(s.coverage80) and np.isnan(s.wape) and s.n_cutoffs == 2


def _mutate_future(root: Path, cut: pd.Timestamp) -> None:
    """Rewrite everything after `cut`: outcomes flipped, later events moved, deals
    created later replaced by one huge win, an amount change recorded after the cut."""
    log = fw.open(root)
    db = log.store.raw
    t = cut.isoformat()
    db.execute(
        "UPDATE deals SET outcome = CASE outcome WHEN 'won' THEN 'lost' ELSE 'won' END, "
        f"closed_at = closed_at + INTERVAL 3 DAY WHERE closed_at > TIMESTAMP '{t}'"
    )
    db.execute(
        "UPDATE stage_events SET stage_id = CASE stage_id WHEN 'won' THEN 'lost' "
        "WHEN 'lost' THEN 'won' ELSE stage_id END, entered_at = entered_at + INTERVAL 3 DAY "
        f"WHERE entered_at > TIMESTAMP '{t}'"
    )
    db.execute(
        "DELETE FROM stage_events WHERE deal_id IN "
        f"(SELECT deal_id FROM deals WHERE created_at > TIMESTAMP '{t}')"
    )
    db.execute(f"DELETE FROM deals WHERE created_at > TIMESTAMP '{t}'")
    open_at_cut = db.execute(
        f"SELECT deal_id, amount FROM deals WHERE created_at <= TIMESTAMP '{t}' "
        f"AND (closed_at IS NULL OR closed_at > TIMESTAMP '{t}') ORDER BY deal_id LIMIT 1"
    ).fetchone()
    deal_id, amount = open_at_cut
    db.execute(
        f"UPDATE deals SET amount = {amount * 50}, amount_base = {amount * 50} "
        f"WHERE deal_id = '{deal_id}'"
    )
    later = cut + pd.Timedelta(days=2)
    log.store.insert(
        "deal_changes",
        pd.DataFrame(
            {
                "deal_id": [deal_id],
                "field": ["amount"],
                "old_value": [str(amount)],
                "new_value": [str(amount * 50)],
                "changed_at": [later],
            }
        ),
    )
    huge = pd.DataFrame(
        {
            "deal_id": ["FUTURE"],
            "pipeline_id": ["new-business"],
            "amount": [1e9],
            "currency": ["USD"],
            "amount_base": [1e9],
            "created_at": [later],
            "closed_at": [later + pd.Timedelta(days=5)],
            "outcome": ["won"],
            "version": [1],
        }
    )
    log.store.insert("deals", huge)
    log.store.insert(
        "stage_events",
        pd.DataFrame(
            {
                "deal_id": ["FUTURE", "FUTURE"],
                "stage_id": ["lead", "won"],
                "entered_at": [later, later + pd.Timedelta(days=5)],
                "seq": [0, 1],
            }
        ),
    )
    log.store.close()


def _same_history(a: History, b: History) -> None:
    names = ("visits", "weekly_visits", "open_deals", "wins", "creations", "stage_rates", "stages")
    for name in names:
        if getattr(a, name) is None or getattr(b, name) is None:
            assert getattr(a, name) is None and getattr(b, name) is None, name
            continue
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_like=True)
    assert (a.now, a.outcomes, a.amount_edges, a.first_created) == (
        b.now,
        b.outcomes,
        b.amount_edges,
        b.first_created,
    )


def test_nothing_after_the_cutoff_reaches_a_forecast(project: Path, tmp_path: Path) -> None:
    mutated = tmp_path / "mutated"
    shutil.copytree(project, mutated)
    _mutate_future(mutated, T0)
    logs = [fw.open(project), fw.open(mutated)]
    try:
        histories = [pull_history(log.as_of(T0)) for log in logs]
        _same_history(*histories)
        results = [
            MonteCarlo(n_paths=2000, seed=4).fit_history(h).predict(horizon="30d")
            for h in histories
        ]
        pd.testing.assert_frame_equal(results[0].to_frame(), results[1].to_frame())
        runs = [
            backtest(
                log,
                horizon="30d",
                every="60d",
                start=T0 - pd.Timedelta(days=60),
                end=T0,
                methods=["montecarlo", "weighted_pipeline"],
                n_paths=1000,
            )
            for log in logs
        ]
        cols = ["cutoff", "method", "expected", "p10", "p50", "p90"]
        pd.testing.assert_frame_equal(runs[0].to_frame()[cols], runs[1].to_frame()[cols])
        # ... while what was booked after the cut-off did change.
        assert not runs[0].to_frame().actual.equals(runs[1].to_frame().actual)
    finally:
        for log in logs:
            log.store.close()


def test_every_cutoff_sees_only_its_past(project: Path) -> None:
    seen: list[History] = []

    def spy(log: fw.EventLog) -> History:
        h = pull_history(log)
        seen.append(h)
        return h

    bt = _backtest(
        project,
        horizon="30d",
        every="150d",
        start=START + pd.Timedelta(days=10),
        methods=["montecarlo", "run_rate"],
        n_paths=500,
        pull=spy,
    )
    assert [h.now for h in seen] == bt.cutoffs
    for h in seen:
        assert (h.wins.closed_at <= h.now).all()
        assert (pd.to_datetime(h.creations.day) <= h.now).all()
        assert (h.open_deals.created_at <= h.now).all()
        assert (pd.to_datetime(h.visits.month) <= h.now).all()
    # Ten days in, too few deals have closed for the Monte Carlo: the baseline
    # answered, and the row says so.
    rows = bt.to_frame()
    first = rows[(rows.method == "montecarlo")].iloc[0]
    assert first.answered_by == "weighted_pipeline"
    assert re.search(
        r"closed deals: the log has \d as of 2023-01-12 and needs at least 20", first.fallback
    )
    assert bt.scores["montecarlo"].n_fallback == 1
    assert set(bt.to_dict()) >= {"methods", "chosen", "reason", "cutoffs"}


def test_bad_windows_are_explained(project: Path) -> None:
    log = fw.open(project)
    try:
        with pytest.raises(NotEnoughDataError, match="no cut-off fits") as err:
            backtest(log, horizon="300d")
        # The longest horizon it suggests has a cut-off, one day more has none.
        found = re.search(r"the log covers ([\d,]+) days .* at most (\d+) days", str(err.value))
        assert found is not None, str(err.value)
        longest = int(found.group(2))
        assert longest == pytest.approx(int(found.group(1).replace(",", "")) / 3, abs=1)
        fits = backtest(log, horizon=longest, methods=["run_rate"], n_paths=100)
        assert len(fits.cutoffs) == 1
        with pytest.raises(NotEnoughDataError, match="no cut-off fits"):
            backtest(log, horizon=longest + 1, methods=["run_rate"])
        with pytest.raises(InputError, match="leaves less than the 30-day horizon"):
            backtest(log, horizon="30d", end=START + pd.Timedelta(days=419))
        with pytest.raises(InputError, match="unknown method 'magic'"):
            backtest(log, methods=["magic"])
    finally:
        log.store.close()


@pytest.mark.slow
def test_intervals_cover_near_nominal_over_many_cutoffs(tmp_path: Path) -> None:
    root = build_memoryless(tmp_path / "long", Memoryless(rate=4.0, days=700), seed=12)
    bt = _backtest(
        root,
        horizon="30d",
        every="30d",
        start=START + pd.Timedelta(days=100),
        methods=["montecarlo", "weighted_pipeline"],
        n_paths=2000,
    )
    mc, wp = bt.scores["montecarlo"], bt.scores["weighted_pipeline"]
    assert mc.n_cutoffs == 20
    # 20 cut-offs: a binomial standard error of 9 points around the nominal 80%.
    assert 0.65 <= mc.coverage80 <= 0.95
    assert abs(mc.bias) < 0.08
    assert mc.wape < 0.5 * wp.wape
    assert bt.chosen in ("montecarlo", "montecarlo_calibrated")
    # Calibrated on its own past errors, the interval stays near nominal too (the model
    # here is right, so the factor stays near 1), and the centre does not move.
    cal = bt.scores["montecarlo_calibrated"]
    assert 0.65 <= cal.coverage80 <= 0.95
    assert cal.wape == pytest.approx(mc.wape)
    assert 0.6 < bt.spread < 1.6


def test_cutoffs_with_weeks_of_history_are_flagged(project: Path) -> None:
    bt = _backtest(
        project,
        horizon="30d",
        every="14d",
        start=START + pd.Timedelta(days=40),
        end=START + pd.Timedelta(days=166),
        methods=["montecarlo"],
        n_paths=500,
    )
    mc = bt.rows[bt.rows.method == "montecarlo"].sort_values("cutoff")
    # 40 days in, the log holds two months since its first win: weeks it is. By day 166
    # months can be compared and the trailing arrival rate replayed on its own past.
    assert mc.weekly_shocks.iloc[0] and not mc.weekly_shocks.iloc[-1]
    n = int(mc.weekly_shocks.sum())
    assert any(note.startswith(f"montecarlo: at {n} of 10 cut-offs (from") for note in bt.notes)


def test_rows_split_bookings_into_open_and_new_deals(project: Path) -> None:
    log = fw.open(project)
    try:
        cut = START + pd.Timedelta(days=200)
        bt = backtest(
            log,
            horizon="30d",
            every="14d",
            start=cut,
            end=cut,
            methods=["weighted_pipeline", "montecarlo"],
            n_paths=500,
        )
        deals = log.deals.select("created_at", "closed_at", "outcome", "amount_base").to_pandas()
    finally:
        log.store.close()
    end = cut + pd.Timedelta(days=30)
    won = deals[(deals.outcome == "won") & (deals.closed_at > cut) & (deals.closed_at <= end)]
    new = float(won.amount_base[won.created_at > cut].sum())
    old = float(won.amount_base[won.created_at <= cut].sum())
    assert new > 0 and old > 0
    for _, r in bt.rows[bt.rows.method != "montecarlo_calibrated"].iterrows():
        assert r.actual_new == pytest.approx(new)
        assert r.actual_open == pytest.approx(old)
        assert r.expected_open + r.expected_new == pytest.approx(r.expected, rel=1e-9)
    pipeline = bt.rows[bt.rows.method == "weighted_pipeline"].iloc[0]
    assert pipeline.expected_new == 0.0


def test_a_process_without_probabilities_leaves_the_weighted_pipeline_out(
    project: Path, tmp_path: Path
) -> None:
    # BPI Challenge 2012's example sets no stage probability: the CRM baseline
    # cannot run, and the other methods are still compared on every cut-off.
    root = Path(shutil.copytree(project, tmp_path / "p"))
    text = (root / "process.yaml").read_text(encoding="utf-8")
    (root / "process.yaml").write_text(
        "\n".join(ln for ln in text.splitlines() if "probability:" not in ln) + "\n",
        encoding="utf-8",
    )
    r = _backtest(root, horizon="30d", every="60d", start=T0, n_paths=300)
    assert "weighted_pipeline" not in set(r.rows.method)
    assert "weighted_historical" in r.scores and "montecarlo" in r.scores
    counts = r.rows.groupby("method").size()
    assert counts.nunique() == 1  # the same cut-offs for every method
    assert any(n.startswith("weighted_pipeline: left out, stages ") for n in r.notes)
    assert r.chosen in r.scores


@pytest.mark.parametrize(
    ("call", "options", "message"),
    [
        ("forecast", {"horizon": "11y"}, "horizon must be at most 10 years"),
        ("forecast", {"horizon": -30}, "horizon must be positive"),
        ("forecast", {"horizon": 0.5}, "horizon must be at least 1 day"),
        ("forecast", {"n_paths": 1}, "n_paths must be at least 100"),
        ("forecast", {"target": -500.0}, "target must be a positive amount"),
        ("forecast", {"method": "auto", "every": "0d"}, "every must be positive"),
        ("backtest", {"horizon": "11y"}, "horizon must be at most 10 years"),
        ("backtest", {"n_paths": 50}, "n_paths must be at least 100"),
        ("backtest", {"every": 0.5}, "every must be at least 1 day"),
        ("backtest", {"start": "2024-03-01", "end": "2024-02-01"}, "start 2024-03-01 is after end"),
    ],
)
def test_python_callers_get_the_same_option_checks_as_the_command_line(
    tiny_log: fw.EventLog, call: str, options: dict[str, Any], message: str
) -> None:
    run = fw.forecast if call == "forecast" else backtest
    with pytest.raises(InputError, match=re.escape(message)):
        run(tiny_log, **options)


def test_a_forecaster_checks_its_own_paths_and_target(tiny_log: fw.EventLog) -> None:
    with pytest.raises(InputError, match="n_paths must be at least 100"):
        MonteCarlo(n_paths=10).fit(tiny_log)
    fitted = fw.WeightedPipeline().fit(tiny_log)
    with pytest.raises(InputError, match="target must be a positive amount"):
        fitted.predict(horizon="30d", target=0.0)


def test_auto_spacing_keeps_enough_cut_offs_as_far_apart_as_it_can() -> None:
    first, day = pd.Timestamp("2023-01-01 09:30"), pd.Timedelta(days=1)

    def count(until: pd.Timestamp, horizon: float, every: float) -> int:
        return len(cutoff_dates(first, until, horizon=horizon, every=every, start=None, end=None))

    # A long log: cut-offs a whole horizon apart, windows that do not overlap.
    long = first + 1500 * day
    assert auto_spacing(first, long, horizon=90) == 90
    assert count(long, 90, 90) >= MIN_CUTOFFS
    # Two years: as far apart as MIN_CUTOFFS allow, one day more leaves fewer.
    two = first + 730 * day
    step = auto_spacing(first, two, horizon=90)
    assert 7 < step < 90
    assert count(two, 90, step) == MIN_CUTOFFS
    assert count(two, 90, step + 1) < MIN_CUTOFFS
    # Too short for MIN_CUTOFFS a week apart: a week, and the backtest says too few.
    short = first + 300 * day
    assert auto_spacing(first, short, horizon=90) == AUTO_MIN_SPACING
    assert count(short, 90, AUTO_MIN_SPACING) < MIN_CUTOFFS


def test_a_backtest_spaced_automatically_has_enough_cut_offs(project: Path) -> None:
    log = fw.open(project)
    try:
        bt = backtest(log, horizon="90d", every="auto", methods=["run_rate"], n_paths=100)
        first = pd.Timestamp(log.deals.created_at.min().execute())
    finally:
        log.store.close()
    # 500 days: too short for cut-offs a horizon apart, so closer, and just enough.
    assert len(bt.cutoffs) == MIN_CUTOFFS
    assert bt.every_days == auto_spacing(first, log.now, horizon=90) < 90


def test_auto_without_history_for_a_backtest_falls_back_and_says_why(
    tiny_log: fw.EventLog,
) -> None:
    # Two months cannot hold the three 90-day horizons a backtest needs: as any method
    # short of history, auto answers with a fallback that says so, and does not fail.
    r = fw.forecast(tiny_log, method="auto", horizon="90d", n_paths=200)
    assert (r.requested, r.method) == ("auto", "weighted_pipeline")
    assert r.fallback is not None
    assert r.fallback.startswith("auto: a backtest chooses the method, and no cut-off fits")
    assert "montecarlo: closed deals: the log has 3" in r.fallback
    assert r.expected == pytest.approx(fw.forecast(tiny_log, horizon="90d").expected)


def test_a_start_before_the_first_deal_is_named(tiny_log: fw.EventLog) -> None:
    # A cut-off before any deal has nothing to forecast from: the backtest says so in
    # its own terms, not with a forecast's advice to pick a later --as-of.
    with pytest.raises(
        NotEnoughDataError,
        match="start 2023-12-01 is before the log's first deal, created on 2024-01-01; "
        "use a later start",
    ):
        backtest(tiny_log, horizon="14d", start="2023-12-01", end="2024-01-15", n_paths=200)


def test_a_cut_off_no_method_can_answer_names_itself(tiny_project: Path, tmp_path: Path) -> None:
    # Without stage probabilities no baseline answers a day after the first deal: the
    # backtest says at which cut-off and what helps (its start), not an --as-of.
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    text = (root / "process.yaml").read_text(encoding="utf-8")
    (root / "process.yaml").write_text(
        "\n".join(ln for ln in text.splitlines() if "probability:" not in ln) + "\n",
        encoding="utf-8",
    )
    log = fw.open(root)
    try:
        with pytest.raises(NotEnoughDataError) as caught:
            backtest(log, horizon="14d", start="2024-01-02", end="2024-01-02", n_paths=200)
    finally:
        log.store.close()
    message = str(caught.value)
    assert message.startswith("at the cut-off of 2024-01-02, no forecasting method has")
    assert message.endswith("; start the backtest later")
