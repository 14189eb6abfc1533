"""Censoring-aware outcomes on the tiny log by hand; coverage on synthetic truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from analytics_data import load_tables
from funnelwise.analytics.stats import wilson_interval


def test_outcomes_from_creation_by_hand(tiny_log: fw.EventLog) -> None:
    r = fw.outcomes(tiny_log)
    s = r.summary.set_index("scope")
    created = s.loc["created"]
    assert (created.n, created.open, created.won, created.lost, created.no_decision) == (
        5,
        2,
        1,
        1,
        1,
    )
    # Whole days from creation, rounded up: D2 lost 18, D4 open 29, D1 won 31,
    # D5 no decision 41, D3 open 51 (censored at 2024-03-01).
    # Aalen–Johansen: day 18, 1 of 5 lost -> S = 4/5; day 31, 1 of 3 at risk won ->
    # 4/5 * 1/3; S = 8/15; day 41, 1 of 2 no decision -> 8/15 * 1/2.
    assert created.p_won == pytest.approx(4 / 15)
    assert created.p_lost == pytest.approx(1 / 5)
    assert created.p_no_decision == pytest.approx(4 / 15)
    assert created.followup_days == 51
    # The naive rate pretends the two open deals do not exist: 1 won of 3 closed.
    assert created.naive_win_rate == pytest.approx(1 / 3) and created.naive_win_n == 3
    lo, hi = wilson_interval(1, 3)
    assert (created.naive_win_lower, created.naive_win_upper) == pytest.approx(
        (float(lo), float(hi))
    )
    assert created.p_won_lower < 4 / 15 < created.p_won_upper
    curve = r.curves
    won = curve[(curve.scope == "created") & (curve.outcome == "won")]
    assert won.day.tolist() == [0, 18, 29, 31, 41, 51]
    assert won.cif.tolist() == pytest.approx([0, 0, 0, 4 / 15, 4 / 15, 4 / 15])
    assert won.at_risk.tolist() == [5, 5, 4, 3, 2, 1]


def test_outcomes_from_each_stage_by_hand(tiny_log: fw.EventLog) -> None:
    s = fw.outcomes(tiny_log).summary.set_index("scope")
    assert s.index.tolist() == [
        "created",
        "lead",
        "qualification",
        "needs-assessment",
        "proposal",
        "negotiation",
        "closing",
    ]
    # Qualification reached by D1 (01-05), D2 (01-10), D3 (01-12), D4 (02-01):
    # D2 lost after 10 days (1 of 4), D1 won after 27 days (1 of 3 left).
    q = s.loc["qualification"]
    assert (q.n, q.open) == (4, 2)
    assert q.p_lost == pytest.approx(1 / 4) and q.p_won == pytest.approx(3 / 4 * 1 / 3)
    # Needs-assessment reached by D3 (entered) and D1 (via proposal on 01-15).
    n = s.loc["needs-assessment"]
    assert (n.n, n.won, n.open) == (2, 1, 1)
    assert n.p_won == pytest.approx(1 / 2)
    # D1 reached negotiation only by being won: won on day 0 from there.
    assert s.loc["negotiation"].followup_days == 0 and s.loc["negotiation"].p_won == 1.0


def test_outcome_horizons_say_nothing_beyond_follow_up(tiny_log: fw.EventLog) -> None:
    h = fw.outcomes(tiny_log, horizons=(30, 45, 90)).horizons
    won = h[(h.scope == "created") & (h.outcome == "won")].set_index("day")
    assert won.loc[30, "cif"] == 0 and won.loc[30, "at_risk"] == 3
    assert won.loc[45, "cif"] == pytest.approx(4 / 15) and won.loc[45, "at_risk"] == 1
    assert np.isnan(won.loc[90, "cif"]) and won.loc[90, "at_risk"] == 0


def test_outcomes_as_of_and_by_segment(tiny_log: fw.EventLog) -> None:
    # On 2024-01-21 only D2 had closed (lost): nothing won yet, four deals.
    past = fw.outcomes(tiny_log.as_of("2024-01-21"), from_stages=False).summary
    assert past.scope.tolist() == ["created"]
    row = past.iloc[0]
    assert (row.n, row.open, row.lost, row.won) == (4, 3, 1, 0)
    assert row.p_won == 0 and row.naive_win_rate == 0
    seg = fw.outcomes(tiny_log, by="source", from_stages=False).summary.set_index("source")
    # web: D1 won day 31, D5 no decision day 41, D3 open day 51.
    assert seg.loc["web"].p_won == pytest.approx(1 / 3)
    assert seg.loc["partner"].p_lost == pytest.approx(1 / 2)  # D2 lost day 18 of D2, D4


def test_outcomes_in_business_days(tiny_log: fw.EventLog) -> None:
    s = fw.outcomes(tiny_log, days="business", from_stages=False).curves
    won = s[(s.outcome == "won") & (s.cif > 0)]
    # D1: Monday 2024-01-01 to Thursday 2024-02-01 = 4 weeks + 3 days = 23 business days.
    assert won.day.iloc[0] == 23
    with pytest.raises(fw.InputError, match="calendar, business"):
        fw.outcomes(tiny_log, days="weekdays")


def test_censoring_aware_win_rate_covers_the_truth_where_naive_is_biased() -> None:
    synth = pytest.importorskip("funnelwise.synth", reason="needs funnelwise.synth")
    errors, naive_errors, covered = [], [], 0
    seeds = range(50)
    for seed in seeds:
        # No planted change: one true win probability for the whole window.
        data = synth.generate(deals=2000, seed=seed, params=synth.SynthParams(change=None))
        truth = float(data.truth.absorption_overall()[0])
        log = load_tables(data.tables, data.observed_until.isoformat())
        try:
            s = fw.outcomes(log, from_stages=False).summary.iloc[0]
        finally:
            log.store.close()
        assert s.open > 0  # censoring is really there to handle
        covered += s.p_won_lower <= truth <= s.p_won_upper
        errors.append(s.p_won - truth)
        naive_errors.append(s.naive_win_rate - truth)
    assert covered >= 0.9 * len(seeds)
    # Wins take longer than losses, so the closed deals under-represent them: the
    # naive rate is off by more than four standard errors, the estimate is not.
    naive_bias, naive_se = np.mean(naive_errors), np.std(naive_errors) / np.sqrt(len(seeds))
    assert abs(naive_bias) > 4 * naive_se
    assert abs(np.mean(errors)) < abs(naive_bias) / 3


def test_an_empty_log_says_so(tmp_path: Path) -> None:
    from funnelwise.ingest.quality import quality_report
    from funnelwise.process import template_text
    from funnelwise.project import Project

    (tmp_path / "process.yaml").write_text(template_text(), encoding="utf-8")
    Project(tmp_path).open_store(create=True).close()
    log = fw.open(tmp_path)
    try:
        with pytest.raises(fw.NotEnoughDataError, match="outcomes: the log holds no deals"):
            fw.outcomes(log)
        with pytest.raises(fw.NotEnoughDataError, match="timing: the log holds no stage"):
            fw.timing(log)
        # Counting analyses count nothing: empty frames, no error, and they say why.
        counted = [
            fw.funnel(log),
            fw.snapshot(log),
            fw.flow(log, start="2024-01-01", end="2024-02-01"),
            fw.kpis(log),
            fw.bottlenecks(log),
            fw.discovery(log),
            fw.conformance(log),
            fw.hygiene(log),
            fw.whose_move(log),
            quality_report(log),
        ]
        assert fw.funnel(log).to_frame().empty and fw.discovery(log).variants.empty
        assert counted[2].waterfall.value.sum() == 0
        for result in counted:
            assert "the log holds no deals as of" in result.meta["empty"], result.analysis
            shown = _printed(result)
            assert "Nothing to count: the log holds no deals" in shown, result.analysis
            assert "Nothing to count" in result._repr_html_()
    finally:
        log.store.close()


def _printed(result: object) -> str:
    from rich.console import Console

    console = Console(width=300, record=True)
    console.print(result)
    return console.export_text()


def test_an_empty_table_says_why_only_when_no_deal_is_there(
    tiny_project: Path, tmp_path: Path
) -> None:
    from analytics_data import tiny_changed

    log = fw.open(tiny_project)
    try:
        assert "empty" not in fw.funnel(log).meta
        # Deals loaded but a clean pipeline: no hygiene flags is not "no deals".
        assert "empty" not in fw.whose_move(log).meta
        narrowed = fw.funnel(log.filter(source="no-such-source"))
        assert narrowed.to_frame().empty
        assert "holds no deals with these filters" in narrowed.meta["empty"]
        before = fw.funnel(log.as_of("2023-06-01"))
        assert "as of 2023-06-01" in before.meta["empty"]
        # Cut before the data begins: a later date helps, loading deals does not.
        assert before.meta["empty"].endswith(
            "its first deal was created on 2024-01-01: use a later --as-of"
        )
        with pytest.raises(fw.NotEnoughDataError, match="created on 2024-01-01: use a later"):
            fw.outcomes(log.as_of("2023-06-01"))
        # The header line shows instants to the second, dates at midnight alone.
        assert "as_of: 2023-06-01;" in _printed(before)
    finally:
        log.store.close()
    sql = (
        "DELETE FROM stage_events; DELETE FROM deal_changes; DELETE FROM activities; "
        "DELETE FROM deals; INSERT INTO leads (lead_id, created_at, source, origin) VALUES "
        "('L1', TIMESTAMP '2024-01-05', 'web', 'test')"
    )
    with tiny_changed(tiny_project, tmp_path / "leads-only", sql) as leads_only:
        assert "holds no deals as of 2024-03-01, only 1 lead" in fw.funnel(leads_only).meta["empty"]


def test_incidence_at_horizons_and_by_source_covers_the_truth() -> None:
    # The interval of every horizon and of every source's win probability, not
    # only the overall rate at the end of follow-up, must hold the true value.
    synth = pytest.importorskip("funnelwise.synth", reason="needs funnelwise.synth")
    params = synth.SynthParams(change=None)
    truth = synth.generate(deals=200, seed=0, params=params).truth
    horizons = (30, 90, 180, 365)  # the defaults
    curve = truth.true_cumulative_incidence(list(horizons)).set_index("days")
    seg = truth.segments()
    by_segment = truth.absorption_by_segment()
    won_by_source = (
        seg.assign(won=seg.weight * by_segment[:, 0]).groupby("source").won.sum()
        / seg.groupby("source").weight.sum()
    )
    hits = {"horizon": 0, "source": 0}
    checks = {"horizon": 0, "source": 0}
    for s in range(20):
        data = synth.generate(deals=1500, seed=100 + s, params=params)
        log = load_tables(data.tables, data.observed_until.isoformat())
        try:
            h = fw.outcomes(log, from_stages=False).horizons
            by = fw.outcomes(log, by="source", from_stages=False).summary.set_index("source")
        finally:
            log.store.close()
        assert sorted(set(h.day)) == list(horizons)
        for row in h[h.outcome.isin(["won", "lost"])].itertuples():
            assert row.at_risk > 0 and np.isfinite(row.cif)
            checks["horizon"] += 1
            hits["horizon"] += row.lower <= curve.loc[row.day, row.outcome] <= row.upper
        assert set(by.index) == set(won_by_source.index)
        for source, p in won_by_source.items():
            checks["source"] += 1
            hits["source"] += by.loc[source, "p_won_lower"] <= p <= by.loc[source, "p_won_upper"]
    assert checks == {"horizon": 20 * 2 * len(horizons), "source": 20 * len(won_by_source)}
    # 95% intervals: at least 88% of the checks hold the truth (a 1-in-1000 event for
    # exact intervals with these counts), and they are not so wide that all do trivially.
    for kind in hits:
        assert hits[kind] >= 0.88 * checks[kind], (kind, hits[kind], checks[kind])


def test_win_probability_from_each_stage_covers_the_truth() -> None:
    # P(won | the deal reached the stage or a later one), the "from stage" scopes,
    # against 300,000 uncensored deals walked through the true chain.
    synth = pytest.importorskip("funnelwise.synth", reason="needs funnelwise.synth")
    from funnelwise.synth.chain import N_OPEN, ChainTables, segment_codes, simulate_paths

    params = synth.SynthParams(change=None)
    truth = synth.generate(deals=200, seed=0, params=params).truth
    rng = np.random.default_rng(1)
    n = 300_000
    seg = rng.choice(truth.segment_mix.size, n, p=truth.segment_mix / truth.segment_mix.sum())
    paths = simulate_paths(
        ChainTables.from_params(params),
        segment=seg,
        product=segment_codes(params)[1][seg],
        start_stage=(rng.random(n) < truth.initial[seg, 1]).astype(np.int64),
        start_day=np.zeros(n),
        change_day=float("inf"),
        rng=rng,
    )
    walk = pd.DataFrame({"deal": paths.deal, "state": paths.stage})
    won = walk.groupby("deal").state.last() == N_OPEN  # the first closed state is won
    furthest = walk[walk.state < N_OPEN].groupby("deal").state.max().reindex(won.index)
    furthest[won] = N_OPEN  # a won deal has reached every stage
    stages = ["lead", "qualification", "needs-assessment", "proposal", "negotiation", "closing"]
    p_true = {s: float(won[furthest >= k].mean()) for k, s in enumerate(stages)}
    assert p_true["closing"] > 3 * p_true["lead"]  # the scopes really differ
    hits = 0
    for seed in range(5):
        data = synth.generate(deals=2000, seed=300 + seed, params=params)
        log = load_tables(data.tables, data.observed_until.isoformat())
        try:
            s = fw.outcomes(log).summary.set_index("scope")
        finally:
            log.store.close()
        for stage, p in p_true.items():
            hits += s.loc[stage, "p_won_lower"] <= p <= s.loc[stage, "p_won_upper"]
    assert hits >= 0.88 * 5 * len(stages), hits
