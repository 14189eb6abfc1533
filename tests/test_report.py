"""The HTML report: self-contained, one section per analysis, takeaways that quote
the results, and honest about logs it cannot say much about."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import lxml.html
import numpy as np
import pandas as pd
import plotly.offline
import pytest
from typer.testing import CliRunner

import funnelwise as fw
from analytics_data import needs_assessment_renamed, without_settings, without_stage
from funnelwise import analytics
from funnelwise.analytics.result import cell_text
from funnelwise.cli import app
from funnelwise.forecast import backtest, forecast
from funnelwise.ingest.quality import quality_report
from funnelwise.log import EventLog
from funnelwise.report import Report, build_report
from funnelwise.report import fmt as f
from funnelwise.report.build import FLOW_DAYS, N_PATHS, available_analyses
from funnelwise.report.charts import METHOD_LABELS
from funnelwise.report.outlook import (
    _scoring_takeaway,
    backtest_section,
    scores_section,
    scoring_section,
)
from funnelwise.report.sections import data_section
from funnelwise.scoring import BoostedScorer, RuleScorer, evaluate_scorers
from funnelwise.scoring.registry import latest_scores, save_model, save_scores
from funnelwise.synth import generate, write_project
from tiny import build_tiny

# Which section shows which analysis (key figures draw on several).
SECTION_OF = {
    "data": "data",
    "kpis": "kpis",
    "funnel": "funnel",
    "outcomes": "outcomes",
    "timing": "timing",
    "whose_move": "whose_move",
    "bottlenecks": "bottlenecks",
    "discovery": "discovery",
    "conformance": "conformance",
    "hygiene": "hygiene",
    "forecast": "forecast",
    "backtest": "backtest",
    "scores": "scores",
    "scoring": "scoring",
    "snapshot": "snapshot",
    "flow": "flow",
}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "project"
    write_project(generate(deals=1500, seed=3), root)
    return root


@pytest.fixture(scope="module")
def log(synth_dir: Path) -> EventLog:
    return fw.open(synth_dir)


@pytest.fixture(scope="module")
def report(log: EventLog) -> Report:
    # The backtest is the slow part: tested on its own below.
    return build_report(log, backtest_every=None, scoring=False)


@pytest.fixture(scope="module")
def page(report: Report) -> str:
    return report.html()


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    log = fw.open(build_tiny(tmp_path_factory.mktemp("tiny") / "p"))
    return build_report(log, backtest_every=None, scoring=False)


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _ci(lo: float, hi: float) -> str:
    return f"95% CI {round(100 * lo)}–{round(100 * hi)}%"


# -- self-contained ---------------------------------------------------------------------
def test_page_is_self_contained_with_plotly_embedded_once(page: str, report: Report) -> None:
    doc = lxml.html.fromstring(page)
    external = [
        (el.tag, url)
        for el in doc.iter()
        if isinstance(el.tag, str)
        for url in (el.get("src"), el.get("href"))
        if url and re.match(r"^\s*(https?:)?//", url)
    ]
    assert external == []
    assert doc.xpath("//script[@src]") == [] and doc.xpath("//link[@rel='stylesheet']") == []
    styles = " ".join(s.text_content() for s in doc.xpath("//style"))
    assert "@import" not in styles and "url(" not in styles
    assert page.count(plotly.offline.get_plotlyjs()) == 1
    charts = sum(len(s.charts) for s in report.sections)
    assert charts >= 6
    assert page.count("Plotly.newPlot(") == charts
    assert len(doc.xpath("//div[contains(@class, 'plotly-graph-div')]")) == charts


def test_every_available_analysis_has_its_section(report: Report, page: str) -> None:
    # The slow parts were left out of this report (tested on their own).
    expected = {SECTION_OF[a] for a in available_analyses()} - {"backtest", "scoring"}
    # Every analysis that has landed so far is run and shown.
    assert set(SECTION_OF) <= set(available_analyses())
    keys = [s.key for s in report.sections]
    assert expected <= set(keys)
    assert keys[:2] == ["data", "kpis"]
    for k, part in enumerate(report.parts):
        for section in part.sections:
            assert f'id="s-{k}-{section.key}"' in page
    # Leads have a part of their own, after the pipeline's.
    assert [p.label for p in report.parts] == [None, "Leads"]
    assert [s.key for s in report.parts[1].sections] == ["leads", "lead_scores"]
    for s in report.sections:
        # Nothing was scored in this project: those sections say how to score.
        assert s.empty == (s.key in ("scores", "lead_scores"))
        if s.empty:
            assert "`funnelwise score apply" in s.takeaway
        assert s.takeaway in page.replace("&#39;", "'").replace("&amp;", "&")
        for c in s.charts:
            assert c.takeaway


# -- takeaways quote the results ------------------------------------------------------------
def test_leads_section_quotes_the_censoring_aware_conversion(log: EventLog, report: Report) -> None:
    ld = fw.kpis(log).leads.iloc[0]
    s = report.section("leads")
    assert s.takeaway == (
        f"{_pct(ld.conversion)} of leads become deals "
        f"({_ci(ld.conversion_lower, ld.conversion_upper)}), counting the "
        f"{int(ld.open):,} open leads as open; {int(ld.converted):,} of {int(ld.leads):,} "
        "have so far."
    )
    # One row per source, adding up to every lead.
    per = fw.kpis(log, by="source").leads
    assert len(s.tables) == 1 and len(s.tables[0].rows) == len(per)
    assert per.leads.sum() == ld.leads


def test_funnel_takeaway_names_the_weakest_step(log: EventLog, report: Report) -> None:
    st = analytics.funnel(log).stages
    i = int(st["decided_rate"].iloc[1:].idxmin())
    w, prev, last = st.loc[i], st.loc[i - 1], st.iloc[-1]
    text = report.section("funnel").takeaway
    assert f"{prev['name']} → {w['name']}" in text
    assert f"of the {int(w['decided_n']):,} deals that reached {prev['name']} and are no" in text
    assert f"open there, {_pct(w['decided_rate'])} went on" in text
    assert _ci(w["decided_lower"], w["decided_upper"]) in text
    assert f"{_pct(last['cumulative_rate'])} of all deals reached Won" in text
    # No other step converts worse, among its decided deals, than the one named.
    assert (st["decided_rate"].iloc[1:] >= w["decided_rate"]).all()


def test_outcomes_takeaway_quotes_censoring_aware_and_naive_rates(
    log: EventLog, report: Report
) -> None:
    s = analytics.outcomes(log).summary.set_index("scope").loc["created"]
    text = report.section("outcomes").takeaway
    assert f"probability {_pct(s['p_won'])} ({_ci(s['p_won_lower'], s['p_won_upper'])})" in text
    assert f"lost {_pct(s['p_lost'])}" in text
    assert f"no decision {_pct(s['p_no_decision'])}" in text
    closed = int(s["won"] + s["lost"] + s["no_decision"])
    assert f"closed deals only ({closed:,} deals) would say {_pct(s['naive_win_rate'])}" in text
    assert s["open"] > 0  # the synthetic log has open deals: censoring matters
    # What is left by the end of the follow-up is said too.
    rest = 1 - s["p_won"] - s["p_lost"] - s["p_no_decision"]
    if rest >= 0.005:
        assert f"{_pct(rest)} still undecided after {s['followup_days']:,.0f} days" in text
    else:
        assert "undecided" not in text


def test_key_figures_quote_the_kpis(log: EventLog, report: Report) -> None:
    k = analytics.kpis(log).kpis.set_index("kpi")
    section = report.section("kpis")
    won, closed = k.loc["win_rate"], k.loc["win_rate_closed"]
    assert section.takeaway == (
        f"{_pct(won['value'])} of deals end won ({_ci(won['lower'], won['upper'])}) counting "
        f"the {k.loc['open_deals', 'value']:,.0f} open deals as open; closed deals only say "
        f"{_pct(closed['value'])}; half the wins come within "
        f"{k.loc['cycle_days', 'value']:.0f} days."
    )
    tiles = {t.label: t for t in section.tiles}
    assert tiles["Win rate"].value == _pct(won["value"])
    assert f"of {int(closed['n']):,}" in tiles["Win rate"].detail
    assert tiles["Average won deal"].value == f.money(k.loc["avg_deal_size", "value"], "USD")
    assert tiles["Open pipeline"].value == f.money(k.loc["open_pipeline", "value"], "USD")
    assert tiles["Median time to won"].value == f"{k.loc['cycle_days', 'value']:.0f} days"


def test_timing_takeaway_names_the_stage_most_over_target(log: EventLog, report: Report) -> None:
    st = analytics.timing(log).stages
    w = st.loc[st["over_target"].idxmax()]
    text = report.section("timing").takeaway
    assert text.startswith(f"{w['name']} overruns its {round(w['target_days'])}-day target")
    assert f"{_pct(w['over_target'])} of visits last longer" in text
    assert _ci(w["over_target_lower"], w["over_target_upper"]) in text


def test_bottleneck_takeaway_names_the_top_ranked_stage(log: EventLog, report: Report) -> None:
    ranking = analytics.bottlenecks(log).ranking
    top = ranking.iloc[0]
    assert top["score"] == ranking["score"].max()
    section = report.section("bottlenecks")
    assert section.takeaway == (
        f"{top['name']} costs the most: {f.money(top['value_lost'], 'USD')} left the pipeline "
        f"there ({_pct(top['share_lost'])} of all value lost) and it holds "
        f"{_pct(top['share_waiting'])} of all waiting beyond target, weighted by value."
    )
    assert section.bullets == tuple(ranking["why"])
    assert [row[1] for row in section.tables[0].rows] == list(ranking["name"])


def test_process_map_takeaway_names_the_common_path_and_step_back(
    log: EventLog, report: Report
) -> None:
    d = analytics.discovery(log)
    variants, edges = d.variants, d.edges
    names = {"lead": "Lead", "qualification": "Qualification", "lost": "Lost"}
    order = ["lead", "qualification", "needs-assessment", "proposal", "negotiation", "closing"]
    top = variants.iloc[0]
    assert top["deals"] == variants["deals"].max()
    text = report.section("discovery").takeaway
    assert f"{len(variants):,} different paths" in text
    path = " → ".join(names.get(s, s) for s in top["variant"].split(","))
    assert f"the most common, {path}, covers {100 * top['share']:.1f}% of deals" in text
    rank = {s: i for i, s in enumerate(order)}
    back = edges[
        edges["source"].isin(rank)
        & edges["target"].isin(rank)
        & (edges["target"].map(rank) < edges["source"].map(rank))
    ].sort_values("count", ascending=False)
    b = back.iloc[0]
    assert f"({b['count']:,} times, {b['deals']:,} deals)" in text
    # The map draws one arc per move between stages on the line (open stages and won).
    chart = report.section("discovery").charts[0].figure
    on_line = edges["source"].isin([*order, "won"]) & edges["target"].isin([*order, "won"])
    assert len(chart.layout.shapes) == int(on_line.sum())


def test_adherence_hygiene_and_whose_move_takeaways(log: EventLog, report: Report) -> None:
    c = analytics.conformance(log)
    s = c.summary.iloc[0]
    text = report.section("conformance").takeaway
    assert text.startswith(
        f"{_pct(s['conforming_rate'])} of {s['deals']:,} deals followed the process as designed "
        f"({_ci(s['conforming_lower'], s['conforming_upper'])}); {s['backward']:,} moved back"
    )
    owners = c.owners
    low = owners.loc[owners["conforming_rate"].idxmin()]
    owner_line = report.section("conformance").charts[0].takeaway
    assert owner_line.startswith(
        f"Per owner: from {_pct(low['conforming_rate'])} of {low['owner_id']}'s"
    )
    h = analytics.hygiene(log).summary.iloc[0]
    assert report.section("hygiene").takeaway == (
        f"Of {h['open_deals']:,} open deals, {h['stale']:,} are stale, {h['past_close']:,} past "
        f"their expected close date, {h['pushed']:,} had their close date pushed "
        f"({h['days_pushed']:,} days in all), {h['amount_changed']:,} changed amount and "
        f"{h['missing_fields']:,} lack exit-criteria fields."
    )
    listed = [row[0] for row in report.section("hygiene").tables[0].rows]
    assert listed == list(analytics.hygiene(log).deals["deal_id"].head(len(listed)))
    w = analytics.whose_move(log).stages
    most = w.loc[w["buyer_share"].idxmax()]
    assert report.section("whose_move").takeaway.startswith(
        f"Deals wait longest on the buyer in {most['name']} ({_pct(most['buyer_share'])} "
    )


def test_snapshot_and_flow_takeaways_quote_totals(log: EventLog, report: Report) -> None:
    t = analytics.snapshot(log).totals.iloc[0]
    text = report.section("snapshot").takeaway
    assert text.startswith(f"{int(t['deals']):,} open deals worth {f.money(t['value'], 'USD')}")
    assert f"{int(t['over_target'])} are over" in text
    assert f"{int(t['past_close_date'])} past their expected close date" in text
    w = analytics.flow(log, start=log.now - pd.Timedelta(days=FLOW_DAYS), end=log.now)
    steps = w.waterfall.set_index("step")
    text = report.section("flow").takeaway
    assert f"from {f.money(steps.loc['start', 'value'], 'USD')} " in text
    assert f"to {f.money(steps.loc['end', 'value'], 'USD')} " in text
    assert f"{f.money(steps.loc['won', 'value'], 'USD', signed=True)} won" in text


def test_tiny_log_takeaways_by_hand(tiny_report: Report) -> None:
    # Reached: lead 5, qualification 4 (D1 won, D2, D3, D4), needs assessment 2 (D1, D3).
    # D4 is still open in qualification: of the 3 decided there, 2 went on; Wilson 95%:
    # 0.573 ± 0.365 -> 21–94%. Every later step is 1 of 1. Won: 1 of 5 deals.
    assert tiny_report.section("funnel").takeaway == (
        "The weakest step is Qualification → Needs assessment: of the 3 deals that reached "
        "Qualification and are no longer open there, 67% went on (95% CI 21–94%); 20% of "
        "all deals reached Won."
    )
    # Open at 2024-03-01: D3 (2000) and D4 (300), both in qualification since 02-01:
    # 29 days > the 14-day target; probability 0.2 -> weighted 460; close dates ahead.
    assert tiny_report.section("snapshot").takeaway == (
        "2 open deals worth $2,300 as of 2024-03-01 ($460 weighted by the stage "
        "probabilities); 2 are over their stage's target time and 0 past their expected "
        "close date."
    )
    # 90 days back nothing was open; all five deals were created since, three closed.
    assert tiny_report.section("flow").takeaway == (
        "From 2023-12-02 to 2024-03-01 the open pipeline went from $0 (0 deals) to $2,300 "
        "(2 deals): +$4,600 created, −$1,000 won, −$500 lost, −$800 no decision."
    )


def test_forecast_takeaway_quotes_the_distribution(log: EventLog, report: Report) -> None:
    # The forecast's own defaults (those of `funnelwise forecast`): the same figures.
    fc = forecast(log, horizon="90d")
    assert fc.n_paths == N_PATHS
    text = report.section("forecast").takeaway
    usd = lambda v: f.money(v, "USD")  # noqa: E731
    assert f"{usd(fc.expected)}, with 80% chance between {usd(fc.p10)} and {usd(fc.p90)}" in text
    assert f"({usd(fc.components['open_pipeline'])} from deals open today" in text
    assert "method: Monte Carlo" in text and fc.method == "montecarlo"
    rows = report.section("forecast").tables[0].rows
    assert [r[2] for r in rows] == [usd(v) for v in fc.periods["expected"]]
    # The days of the horizon the periods hold add up to the horizon.
    assert sum(int(r[1]) for r in rows) == 90


def test_backtest_section_quotes_the_scores(log: EventLog) -> None:
    start = log.now - pd.Timedelta(days=200)
    bt = backtest(
        log, horizon="90d", every="30d", start=start, end=start + pd.Timedelta(days=30), n_paths=200
    )
    assert len(bt.cutoffs) == 2
    section = backtest_section(bt, "USD")
    mc, base = bt.scores["montecarlo"], bt.scores["weighted_pipeline"]
    assert section.takeaway == (
        f"Over 2 past cut-offs, Monte Carlo missed the 90-day bookings by {_pct(mc.wape)} "
        f"(WAPE) against {_pct(base.wape)} for the weighted pipeline CRMs show; its 80% "
        f"interval held the actual {_pct(mc.coverage80)} of the time. 2 cut-offs cannot tell "
        "the methods apart nor judge an interval (at least 8 are needed): run `funnelwise "
        "backtest` with an earlier --start or a shorter --every before trusting it."
    )
    methods = [row[0] for row in section.tables[0].rows]
    assert len(methods) == len(bt.scores) == 5 and methods[0] == METHOD_LABELS[bt.chosen]
    # Another method first: the note says where its forecast is.
    other = backtest_section(replace(bt, chosen="run_rate"), "USD").notes
    assert other[-1] == (
        "The forecast above is Monte Carlo's; `funnelwise forecast --method auto --horizon "
        f"90d --every 30d` forecasts with {METHOD_LABELS['run_rate']}, which this backtest "
        "ranks first."
    )
    assert len(backtest_section(replace(bt, chosen="montecarlo"), "USD").notes) == 1
    # One band, one line per method and the actual bookings.
    assert len(section.charts[0].figure.data) == 2 + 4 + 1


def test_lead_scoring_section_speaks_of_leads(log: EventLog) -> None:
    small = BoostedScorer(target="converted", horizon_days=30, snapshots=8, n_estimators=50)
    ev = evaluate_scorers(log, target="converted", model=small, test_snapshots=4)
    section = scoring_section(ev, key="lead_scoring")
    assert section.title == "Lead scores: checked on later leads"
    units = int(ev.metrics.set_index("kind").loc["boosted", "units"])
    assert section.takeaway.startswith(f"On {units:,} later leads (")
    assert "the conversion model" in section.takeaway and "deal" not in section.takeaway
    assert section.tables[0].caption.startswith("Fitted on leads created before ")


def test_stored_scores_are_listed_most_likely_first(synth_dir: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(synth_dir, tmp_path / "p"))
    log = fw.open(root)
    try:
        early = log.as_of("2023-09-01")
        save_scores(log.store, RuleScorer().fit(early).score(early, model_id="rule-early"))
        assert latest_scores(log.as_of("2023-08-01")) is None  # nothing scored by then
        # Later, only the deals still open then are listed, with the early scores.
        later = latest_scores(log.as_of("2023-10-01"))
        assert later is not None and later.meta["as_of"] == pd.Timestamp("2023-09-01")
        still_open = log.as_of("2023-10-01").deals.filter(lambda d: d.outcome.isnull())
        open_ids = set(still_open.deal_id.to_pandas())
        scored = later.to_frame()
        assert set(scored["deal_id"]) <= open_ids
        assert len(scored) < early.counts()["deals_open"]  # some closed in September
        assert scored["probability"].is_monotonic_decreasing
        section = scores_section({"won": later, "converted": None})
        rows = section.tables[0].rows
        assert [r[0] for r in rows] == list(scored["deal_id"].head(len(rows)))
        assert rows[0][2].startswith(("+ ", "− "))
        expected = f"{scored['probability'].sum():,.0f} expected wins"
        assert expected in section.takeaway
        assert "scored as of 2023-09-01" in section.notes[0]
    finally:
        log.store.close()
    assert scores_section({"won": None, "converted": None}).empty


def test_a_ranking_claim_needs_an_interval_that_excludes_no_difference(log: EventLog) -> None:
    """Two AUCs a thousandth apart (as 0.769 against 0.768 on BPI Challenge 2012) rank
    about as well unless the interval of their difference leaves out 0."""
    small = BoostedScorer(target="won", snapshots=8, n_estimators=50)
    ev = evaluate_scorers(log, model=small, test_snapshots=4)
    m = ev.metrics.set_index("kind")
    model = m.loc["boosted"]
    auc = float(model["roc_auc"])
    # Logistic regression a thousandth above the model, with its real paired interval
    # recentred there: wide enough to cover 0 on 300-odd deals.
    lr = m.loc["logistic"]
    half = float(lr["roc_auc_vs_model_upper"] - lr["roc_auc_vs_model_lower"]) / 2
    close = m.drop(index="boosted").copy()
    close.loc["logistic", "roc_auc"] = auc + 0.001
    close.loc["logistic", "roc_auc_vs_model"] = 0.001
    close.loc["logistic", "roc_auc_vs_model_lower"] = lo = 0.001 - half
    close.loc["logistic", "roc_auc_vs_model_upper"] = hi = 0.001 + half
    assert lo < 0 and (close.drop(index="logistic")["roc_auc"] < auc + 0.001).all()
    text = _scoring_takeaway(model, close.reset_index())
    assert (
        f"The best baseline, {lr['scorer']}, ranks them about as well: ROC AUC "
        f"{auc + 0.001:.3f} against the model's {auc:.3f} (difference +0.001, 95% interval "
        f"−{-lo:.3f} to +{hi:.3f})."
    ) in text
    assert "better" not in text
    # Without an interval, no ranking claim at all.
    bare = close.drop(columns=["roc_auc_vs_model_lower", "roc_auc_vs_model_upper"])
    text = _scoring_takeaway(model, bare.reset_index())
    assert "ranks them" not in text
    assert f"The best baseline, {lr['scorer']}, has ROC AUC {auc + 0.001:.3f}." in text
    # The model clearly ahead: said with the difference the way round that is positive.
    ahead = close.loc[["logistic"]].copy()
    ahead.loc["logistic", "roc_auc"] = auc - 0.05
    ahead.loc["logistic", ["roc_auc_vs_model", "roc_auc_vs_model_lower"]] = (-0.05, -0.08)
    ahead.loc["logistic", "roc_auc_vs_model_upper"] = -0.02
    text = _scoring_takeaway(model, ahead.reset_index())
    assert (
        f"The model ranks them better than the best baseline, {lr['scorer']}: ROC AUC "
        f"{auc:.3f} against {auc - 0.05:.3f} (difference +0.050, 95% interval +0.020 to +0.080)."
    ) in text
    # The table gives each AUC with its interval.
    cells = {r[0]: r[1] for r in scoring_section(ev).tables[0].rows}
    assert cells[model["scorer"]] == (
        f"{auc:.3f} [{model['roc_auc_lower']:.3f}–{model['roc_auc_upper']:.3f}]"
    )


def test_a_rule_score_that_cannot_rank_is_said_not_ranked(synth_dir: Path, tmp_path: Path) -> None:
    """A process with no stage probabilities, checklist or required fields (as the
    BPI Challenge 2012 example) gives every deal the same rule score: AUC 0.5 by
    construction, which the section says in a sentence instead of listing it as a
    baseline."""
    keys = ("probability", "exit_criteria", "fields", "checklist")
    bare = fw.open(without_settings(synth_dir, tmp_path, *keys))
    try:
        small = BoostedScorer(target="won", snapshots=8, n_estimators=50)
        ev = evaluate_scorers(bare, model=small, test_snapshots=4)
    finally:
        bare.store.close()
    m = ev.metrics.set_index("kind")
    rule = m.loc["rule"]
    assert ev.predictions["rule"].nunique() == 1 and rule["roc_auc"] == 0.5
    assert rule["cannot_rank"] == (
        f"Rule score (process) gives the {rule['units']:,} later deals the same score (0%) at "
        "every instant, so it cannot rank them: the process gives no stage probabilities, no "
        "exit-criteria checklist and no required fields."
    )
    assert m.drop(index="rule")["cannot_rank"].isna().all()
    section = scoring_section(ev)
    assert section.bullets == (rule["cannot_rank"],)
    assert rule["scorer"] not in [r[0] for r in section.tables[0].rows]
    assert len(section.tables[0].rows) == len(m) - 1
    assert "Rule score" not in section.takeaway


def test_scoring_section_quotes_the_evaluation(log: EventLog) -> None:
    small = BoostedScorer(target="won", snapshots=8, n_estimators=50)
    ev = evaluate_scorers(log, model=small, test_snapshots=4)
    m = ev.metrics.set_index("kind")
    model = m.loc["boosted"]
    best = m.drop(index="boosted").sort_values("roc_auc").iloc[-1]
    section = scoring_section(ev)
    assert section.takeaway.startswith(
        f"On {model['units']:,} later deals ({model['rows']:,} scored moments), the win model "
        f"({model['scorer']}) ranks the wins with ROC AUC {model['roc_auc']:.3f}. The best "
        f"baseline, {best['scorer']}, ranks them "
    )
    assert section.takeaway.endswith(
        f"The model's probabilities are off by {100 * model['ece']:.1f}% on average "
        "(expected calibration error)."
    )
    # Said plainly when a baseline ranks better, and when the model is near chance:
    # the model's AUC set below every baseline's (and under 0.6), and the interval of
    # each difference above 0.
    low = min(0.55, float(ev.metrics["roc_auc"].min()) - 0.01)
    is_model = ev.metrics["kind"] == "boosted"
    gap = ev.metrics["roc_auc"] - low
    beaten = ev.metrics.assign(
        roc_auc=np.where(is_model, low, ev.metrics["roc_auc"]),
        roc_auc_vs_model=np.where(is_model, np.nan, gap),
        roc_auc_vs_model_lower=np.where(is_model, np.nan, gap / 2),
        roc_auc_vs_model_upper=np.where(is_model, np.nan, gap * 2),
    )
    text = _scoring_takeaway(beaten[is_model].iloc[0], beaten[~is_model])
    assert f"The best baseline, {best['scorer']}, ranks them better: ROC AUC " in text
    assert "close to chance (0.5)" in text
    # Probabilities all in one band: the calibration error only compares that level with
    # the base rate, and the takeaway says so instead of quoting it as accuracy.
    one = _scoring_takeaway(model, ev.metrics[ev.metrics["kind"] != "boosted"], bands=1)
    assert "All its probabilities fall in one band" in one and "off by" not in one
    # The real model ranks above 0.6 here: no such warning in its own takeaway.
    assert model["roc_auc"] > 0.6 and "close to chance" not in section.takeaway
    # One panel per scorer: the diagonal and the binned points.
    figure = section.charts[0].figure
    assert len(figure.data) == 2 * len(ev.metrics)
    points = figure.data[1]
    first = ev.reliability[ev.reliability["scorer"] == ev.metrics["scorer"].iloc[0]]
    assert list(points.y) == list(first["observed_rate"])


RENEWALS = """\
  - id: renewals
    name: Renewals
    stages:
      - id: renewal-review
        name: Renewal review
        target_days: 14
    outcomes:
      won: {id: renewed, name: Renewed}
      lost: {id: churned, name: Churned}
      no_decision: {id: renewal-undecided, name: Undecided}
"""


def test_each_pipeline_gets_its_part(tmp_path: Path) -> None:
    root = build_tiny(tmp_path / "p")
    process = root / "process.yaml"
    # The template's pipelines list is the file's last key: a second pipeline goes after it.
    process.write_text(process.read_text(encoding="utf-8").rstrip("\n") + "\n" + RENEWALS)
    report = build_report(fw.open(root), backtest_every=None, scoring=False)
    assert [p.label for p in report.parts] == ["New business", "Renewals"]
    assert [s.key for s in report.parts[1].sections] == ["no-deals"]
    first = report.parts[0]
    assert report.section("funnel", pipeline="new-business") is first.sections[2]
    page = report.html()
    assert page.count('<h2 class="pipeline">') == 2
    assert 'id="s-1-no-deals"' in page and 'id="s-0-funnel"' in page


# -- logs the report cannot say much about ---------------------------------------------------
def test_log_without_closed_deals_says_so(log: EventLog) -> None:
    first_close = pd.Timestamp(log.deals.closed_at.min().execute())
    report = build_report(log, as_of=first_close - pd.Timedelta(seconds=1), n_paths=200)
    outcomes = report.section("outcomes")
    assert outcomes.empty and outcomes.charts == ()
    assert "No deal has closed yet" in outcomes.takeaway
    for key in ("kpis", "scoring"):
        section = report.section(key)
        assert section.empty and "No deal has closed yet" in section.takeaway
    # No history to backtest on, and the forecast says which baseline answered.
    backtest = report.section("backtest")
    assert backtest.empty and backtest.takeaway.startswith("Not enough data yet: ")
    forecast = report.section("forecast")
    assert "weighted pipeline (CRM)" in forecast.takeaway
    assert forecast.notes[0].startswith("The requested method could not run: ")
    funnel = report.section("funnel")
    assert not funnel.empty and funnel.charts
    page = report.html()
    assert "No deal has closed yet" in page
    assert page.count("Plotly.newPlot(") == sum(len(s.charts) for s in report.sections)


def test_log_without_deals_says_so(log: EventLog) -> None:
    first = pd.Timestamp(log.deals.created_at.min().execute())
    report = build_report(
        log, as_of=first - pd.Timedelta(days=1), backtest_every=None, scoring=False
    )
    # The leads created by then are a part of their own (nothing scored yet).
    assert [s.key for s in report.sections] == ["no-deals", "leads", "lead_scores"]
    assert "holds no deals" in report.section("no-deals").takeaway
    assert "holds no deals" in report.html()


# -- command line --------------------------------------------------------------------------
def test_cli_writes_the_report_as_of_a_past_date(
    synth_dir: Path, log: EventLog, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "r.html"
    args = ["--project", str(synth_dir), "report", "-o", str(out), "--as-of", "2024-01-01"]
    result = CliRunner().invoke(app, [*args, "--quick"])
    assert result.exit_code == 0, result.output
    assert "Report written" in result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Sales process report as of 2024-01-01" in text
    # The pipeline is the one known then, not today's.
    then = analytics.snapshot(log.as_of("2024-01-01")).totals.iloc[0]
    now = analytics.snapshot(log).totals.iloc[0]
    assert then["deals"] != now["deals"]
    worth = f.money(then["value"], "USD")
    assert f"{int(then['deals']):,} open deals worth {worth} as of 2024-01-01" in text


def test_cli_rejects_a_bad_date(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    args = ["--project", str(synth_dir), "report", "-o", str(out), "--as-of", "soon"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "soon" in result.output
    assert not out.exists()


# -- formatting ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        (20928273.0, "USD", "$20.9M"),
        (4600.0, "USD", "$4,600"),
        (123456.0, "EUR", "€123k"),
        (-3054776.01, "USD", "−$3.1M"),
        (512.0, "CHF", "512 CHF"),
        (float("nan"), "USD", "–"),
    ],
)
def test_money(value: float, currency: str, text: str) -> None:
    assert f.money(value, currency) == text


def test_shares_days_and_intervals() -> None:
    assert f.pct(0.2685) == "27%" and f.pct(0.2685, 1) == "26.9%"
    # A tiny negative share rounds to 0, not to "−0%"; a real one keeps its sign.
    assert f.pct(-0.0004) == "0%" and f.pct(-0.02) == "−2%"
    assert f.days_ci(63, 61.0, 65.0) == "63 [61–65]"
    assert f.days_ci(19.67, 18.5, 20.93) == "19.7 [18.5–20.9]"
    assert cell_text(-0.0004) == "0" and cell_text(-0.02) == "-0.02"
    assert f.pct_ci(0.2685, 0.2469, 0.2904) == "27% [25–29]"
    assert f.pct_ci(0.5, None, 0.9) == "50%"
    assert f.ci(0.15, 0.85) == "95% CI 15–85%"
    assert f.days(19.6667) == "19.7 days" and f.days(1) == "1 day" and f.days(132) == "132 days"
    assert f.day_span(14) == "14-day"
    assert f.money(1000, "USD", signed=True) == "+$1,000"


def test_missing_close_dates_are_not_counted_as_on_time(tmp_path: Path) -> None:
    from funnelwise.report import outlook

    log = fw.open(build_tiny(tmp_path / "p"))
    # The open deals are D3 and D4: one close date left, then none. A deal without one
    # is not "not past it".
    for gone, snap_says, hyg_says in (
        (
            "('D3')",
            "0 of the 1 with an expected close date are past it",
            "0 of the 1 with an expected close date are past it, 1 had their close date pushed",
        ),
        (
            "('D3', 'D4')",
            "none has an expected close date",
            "none has an expected close date to be past, 1 had their close date pushed",
        ),
    ):
        log.store.raw.execute(
            f"UPDATE deals SET expected_close_date = NULL WHERE deal_id IN {gone}"
        )
        snap = outlook.snapshot_section(analytics.snapshot(log))
        assert snap.takeaway.endswith(f"target time and {snap_says}.")
        hyg = outlook.hygiene_section(analytics.hygiene(log), {})
        assert hyg_says in hyg.takeaway
    # One stale deal (D3, idle 29 days; D4 called 10 days before) and one without its
    # expected close date: the verbs agree with their counts.
    log.store.raw.execute(
        "UPDATE deals SET expected_close_date = '2024-04-01' WHERE deal_id = 'D4'; "
        'INSERT INTO activities (activity_id, deal_id, kind, "at") '
        "VALUES ('A9', 'D4', 'call', '2024-02-20')"
    )
    hyg = outlook.hygiene_section(analytics.hygiene(log, stale=20), {})
    assert hyg.takeaway.startswith("Of 2 open deals, 1 is stale, ")
    assert hyg.takeaway.endswith(" and 1 lacks exit-criteria fields.")
    log.store.close()


def test_velocity_says_how_many_open_deals_are_older_than_any_close(
    tiny_report: Report,
) -> None:
    (tile,) = [t for t in tiny_report.section("kpis").tiles if t.label == "Sales velocity"]
    assert tile.detail.endswith(
        "; it counts 1 open deal older than any deal took to close (41 days)"
    )


def test_data_section_says_what_the_data_does_not_record(tiny_report: Report) -> None:
    # D1 went from proposal to won: no deal entered negotiation or closing. No checklist
    # evidence is stored, and no passed deal has a product.
    s = tiny_report.section("data")
    assert s.bullets == (
        "No deal was seen entering Negotiation and Closing, though deals went past them (1 "
        "past Negotiation, 1 past Closing): either the data has no history for them (a "
        "snapshot export has none) or every deal skipped them. The funnel counts the deals "
        "reaching them from later stages, time in the stage before them runs on through "
        "them, and process adherence counts them as skipped.",
        "No exit-criteria checklist item is recorded for any deal: process adherence counts "
        "every item as missing, which says more about the data than the process.",
        "Exit-criteria fields never filled in: product.",
    )
    assert s.takeaway == "Read the figures below with these limits of the data in mind."


def test_data_section_names_stages_the_process_no_longer_has(
    tiny_project: Path, tmp_path: Path
) -> None:
    # process.yaml drops needs-assessment, which D3 entered on 01-20.
    log = fw.open(without_stage(tiny_project, tmp_path, "needs-assessment"))
    try:
        s = data_section(quality_report(log))
    finally:
        log.store.close()
    assert s.bullets[0] == (
        "1 of 5 deals entered stages that process.yaml does not have ('needs-assessment' "
        "(1 deal)), renamed or removed since the data was imported. The figures below "
        "cannot place those entries: the snapshot shows a deal last seen in one of them at "
        "the stage before, times in stage leave those stages out and the funnel counts the "
        "deals only as far as their other stages. In process.yaml, list each id among the "
        "aliases of the stage it now is and import the data again, or put the stage back."
    )
    assert s.takeaway == "Read the figures below with these limits of the data in mind."


def test_takeaways_without_targets_exit_criteria_or_a_second_owner(
    tiny_project: Path, tmp_path: Path
) -> None:
    """As in BPI Challenge 2012: no stage sets a target time or exit criteria and every
    deal has the same owner. The report does not quote 0% of the waiting beyond
    targets no stage has, nor name a stage 'left most often without its exit
    criteria' that nothing was left without, nor compare an owner with itself."""
    from funnelwise.report import sections

    root = without_settings(
        tiny_project, tmp_path, "target_days", "exit_criteria", "fields", "checklist"
    )
    log = fw.open(root)
    try:
        log.store.raw.execute("UPDATE deals SET owner_id = 'u1'")
        b = analytics.bottlenecks(log)
        c = analytics.conformance(log)
    finally:
        log.store.close()
    top = b.ranking.iloc[0]
    bottlenecks = sections.bottlenecks_section(b)
    assert bottlenecks.takeaway == (
        f"{top['name']} costs the most: {f.money(top['value_lost'], 'USD')} left the pipeline "
        f"there ({_pct(top['share_lost'])} of all value lost); no stage has a target time, so "
        "waiting is not weighed."
    )
    # Time over a target that is not set is unknown, not 0.
    assert {row[4:7] for row in bottlenecks.tables[0].rows} == {("–", "–", "–")}
    stages = c.stages
    assert int(stages.exits_missing_criteria.sum()) == 0
    departures = stages.skipped_over + stages.moves_back
    w = stages.loc[departures.idxmax()]
    owners_line, stages_line = (chart.takeaway for chart in sections.conformance_section(c).charts)
    assert stages_line == (
        f"No stage was left without its exit criteria; most departures are at {w['name']}: "
        f"skipped over {f.plural(w['skipped_over'], 'time')} and moved back from "
        f"{f.plural(w['moves_back'], 'time')}."
    )
    assert len(c.owners) == 1
    o = c.owners.iloc[0]
    assert owners_line == (
        f"All {o['deals']} deals have one owner, u1 ({_pct(o['conforming_rate'])} followed the "
        "process), so owners cannot be compared; the bar is the 95% interval."
    )


def test_funnel_counts_open_deals_at_the_furthest_stage_and_says_so(tiny_report: Report) -> None:
    # D3 went lead, qualification, needs assessment and back to qualification, and is
    # open; D4 is open in qualification. The funnel counts D3 at needs assessment, the
    # furthest it got, while the pipeline today has both in qualification: the column
    # is named for what it counts and the note says why the two differ.
    funnel = tiny_report.section("funnel")
    t = funnel.tables[0]
    at = t.columns.index("Open, got this far")
    shown = {row[0]: row[at] for row in t.rows}
    assert (shown["Qualification"], shown["Needs assessment"]) == ("1", "1")
    snap = tiny_report.section("snapshot").tables[0]
    assert {row[0]: row[1] for row in snap.rows}["Qualification"] == "2"
    assert "one that moved back since sits in an earlier stage" in " ".join(funnel.notes)


def test_owners_who_all_tie_are_not_compared_with_themselves(tiny_project: Path) -> None:
    """As CRM Sales Opportunities as of 2016-10-25: five open deals, every owner at
    100%. The caption had read 'from 100% of X's 2 deals to 100% of X's 2'."""
    from funnelwise.report import sections

    log = fw.open(tiny_project)
    try:
        c = analytics.conformance(log)
    finally:
        log.store.close()
    owners = c.owners.assign(conforming_rate=1.0)
    assert len(owners) == 2
    tied = type(c)({**c.frames, "owners": owners}, c.meta)
    caption = sections.conformance_section(tied).charts[0].takeaway
    assert caption == (
        "All 2 owners have the same share of deals that followed the process, 100%; bars "
        "are 95% intervals, wide for owners of few deals."
    )


def test_sections_without_closed_deals_say_what_each_needs_them_for(tiny_project: Path) -> None:
    # The first close is D2's, lost on 2024-01-20: as of 01-15 every deal is open.
    log = fw.open(tiny_project)
    try:
        report = build_report(log, as_of="2024-01-15", backtest_every=None)
    finally:
        log.store.close()
    assert report.section("kpis").takeaway == (
        "No deal has closed yet as of 2024-01-15: win rate, deal size and cycle time need "
        "closed deals."
    )
    # The scoring section had said the same about win rate, deal size and cycle time.
    assert report.section("scoring").takeaway == (
        "No deal has closed yet as of 2024-01-15: a win model learns from closed deals and "
        "is checked on later ones."
    )


def test_cli_notes_an_as_of_after_the_end_of_the_data(tiny_project: Path, tmp_path: Path) -> None:
    # As every analysis command: the figures are as of the data's end, and stderr says so.
    out = tmp_path / "r.html"
    args = ["--project", str(tiny_project), "report", "-o", str(out), "--as-of", "2030-01-01"]
    result = CliRunner().invoke(app, [*args, "--quick"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        "note: --as-of 2030-01-01 is after the end of the data; the figures are as of 2024-03-01"
    )
    assert "Sales process report as of 2024-03-01" in out.read_text(encoding="utf-8")


def _strings(value: object) -> list[str]:
    """Every string in a figure's plotly JSON (labels, ticks, hover texts, titles)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple | np.ndarray):
        return [s for v in value for s in _strings(v)]
    return []


def test_charts_draw_user_text_as_typed(tiny_project: Path, tmp_path: Path) -> None:
    """Plotly reads tags in labels: a stage named with an <a href> had been drawn as
    a link, and <b> in an owner id as bold. Written as entities they read as typed."""
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    process = root / "process.yaml"
    stage = 'R&D <a href="https://example.com">review</a>'
    text = process.read_text(encoding="utf-8").replace(
        "name: Qualification", "name: '" + stage + "'"
    )
    process.write_text(text, encoding="utf-8")
    log = fw.open(root)
    try:
        log.store.raw.execute("UPDATE deals SET owner_id = '<b>u1</b>' WHERE owner_id = 'u1'")
        report = build_report(log, backtest_every=None, scoring=False)
    finally:
        log.store.close()
    drawn = [
        s
        for section in report.sections
        for chart in section.charts
        for s in _strings(chart.figure.to_plotly_json())
    ]
    assert not [s for s in drawn if "<a href" in s or "<b>u1" in s]
    typed = 'R&amp;D &lt;a href="https://example.com"&gt;review&lt;/a&gt;'
    assert any(typed in s for s in drawn) and any("&lt;b&gt;u1&lt;/b&gt;" in s for s in drawn)
    # The tables and prose are escaped by the page itself.
    page = report.html()
    assert "R&amp;D &lt;a href=&#34;https://example.com&#34;&gt;review&lt;/a&gt;" in page


def test_deals_opened_since_the_scoring_are_counted_as_unscored(
    tiny_project: Path, tmp_path: Path
) -> None:
    # Scored as of 01-15 (D3 open then); D4 opened on 02-01. On 03-01 both are open:
    # the section had spoken of '1 open deal' where the pipeline holds 2.
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    log = fw.open(root)
    try:
        early = log.as_of("2024-01-15")
        scorer = RuleScorer().fit(early)
        model_id = save_model(log.store, scorer)
        save_scores(log.store, scorer.score(early, model_id=model_id))
        section = scores_section({"won": latest_scores(log)})
    finally:
        log.store.close()
    assert section.takeaway.startswith(
        "The scores of the 1 scored open deal add up to 0 expected wins; 1 open deal opened "
        "after 2024-01-15 has no score: `funnelwise score apply` scores them."
    )
    assert section.tables[0].caption.startswith("The 1 of the 1 scored open deal most likely")


def test_the_scores_section_keeps_its_key(tiny_project: Path, tmp_path: Path) -> None:
    # The id column of the scores ('deal_id') had become the section's key: its anchor
    # read #s-0-deal_id and report.section("scores") raised KeyError once scores existed.
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    log = fw.open(root)
    try:
        scorer = RuleScorer().fit(log)
        save_scores(log.store, scorer.score(log, model_id=save_model(log.store, scorer)))
        report = build_report(log, backtest_every=None, scoring=False)
    finally:
        log.store.close()
    section = report.section("scores")
    assert not section.empty and section.tables[0].rows[0][0] in ("D3", "D4")
    assert 'id="s-0-scores"' in report.html()


def test_reliability_panels_say_which_axis_is_predicted() -> None:
    from funnelwise.report.charts import reliability_chart

    order = ["LightGBM, calibrated", "Naive Bayes", "Logistic regression"]
    curve = pd.DataFrame(
        {
            "scorer": order,
            "predicted": [0.2, 0.3, 0.4],
            "observed_rate": [0.25, 0.3, 0.35],
            "observed_lower": [0.2, 0.25, 0.3],
            "observed_upper": [0.3, 0.35, 0.4],
            "rows": [40, 40, 40],
        }
    )
    layout = reliability_chart(curve, order).layout
    # Three panels in two columns: the second and third have none below them.
    x = [layout[f"xaxis{k}"].title.text for k in ("", "2", "3")]
    y = [layout[f"yaxis{k}"].title.text for k in ("", "2", "3")]
    assert x == [None, "predicted probability", "predicted probability"]
    assert y == ["observed rate", None, "observed rate"]


def test_one_open_stage_is_not_compared_with_itself(tiny_project: Path) -> None:
    """A process of one open stage: the caption had read 'From Lead 27% of deals end
    won, from Lead 27% (95% CI 1–69%)'."""
    from funnelwise.report import sections

    log = fw.open(tiny_project)
    try:
        result = analytics.outcomes(log)
    finally:
        log.store.close()
    summary = result.summary[result.summary["scope"].isin(["created", "lead"])]
    one = type(result)({**result.frames, "summary": summary}, result.meta)
    lead = summary.set_index("scope").loc["lead"]
    caption = sections.outcomes_section(one, {"lead": "Lead"}).charts[1].takeaway
    assert caption == (
        f"From Lead {_pct(lead['p_won'])} of deals end won "
        f"({_ci(lead['p_won_lower'], lead['p_won_upper'])})."
    )


def test_a_report_cut_before_the_first_deal_names_its_date(tiny_project: Path) -> None:
    # As the analyses say it; the report had advised loading deals, which the log has.
    log = fw.open(tiny_project)
    try:
        report = build_report(log, as_of="2023-12-01", backtest_every=None, scoring=False)
    finally:
        log.store.close()
    assert report.section("no-deals").takeaway == (
        "The log holds no deals as of 2023-12-01; its first deal was created on 2024-01-01: "
        "use a later --as-of."
    )


def test_leads_past_the_horizon_are_not_called_unscored(synth_dir: Path, tmp_path: Path) -> None:
    # Lead scores leave out leads older than the scorer's horizon, by design: scored as
    # of the log's end, no lead opened since, and none is said to lack a score. The
    # section had read '648 of the 823 open leads have no score (opened after <today>)'.
    root = Path(shutil.copytree(synth_dir, tmp_path / "p"))
    log = fw.open(root)
    try:
        scorer = RuleScorer(target="converted").fit(log)
        save_scores(log.store, scorer.score(log, model_id=save_model(log.store, scorer)))
        scores = latest_scores(log, target="converted")
    finally:
        log.store.close()
    assert scores is not None
    section = scores_section({"converted": scores}, key="lead_scores")
    assert "no score" not in section.takeaway
    assert section.takeaway.startswith(f"The scores of the {len(scores.to_frame()):,} open leads")
    assert scores.meta["opened_since"] == 0


def test_scores_of_a_model_trained_under_other_stages_say_so(
    synth_dir: Path, tmp_path: Path
) -> None:
    # `score apply` warns when process.yaml's stages are no longer the model's; the
    # report listed the same model's stored scores without a word.
    root = Path(shutil.copytree(synth_dir, tmp_path / "p"))
    log = fw.open(root)
    try:
        scorer = BoostedScorer(target="won", snapshots=8, n_estimators=50).fit(log)
        save_scores(log.store, scorer.score(log, model_id=save_model(log.store, scorer)))
        same = scores_section({"won": latest_scores(log)})
    finally:
        log.store.close()
    assert "trained on stages" not in same.takeaway and "retrain" not in same.takeaway
    needs_assessment_renamed(root)
    log = fw.open(root)
    try:
        report = build_report(log, backtest_every=None, scoring=False)
    finally:
        log.store.close()
    said = report.section("scores").takeaway
    assert (
        "The model was trained on stages Lead, Qualification, Needs assessment, Proposal, "
        "Negotiation, Closing; process.yaml now has Lead, Qualification, Discovery, "
        "Proposal, Negotiation, Closing (Needs assessment removed, Discovery added)."
    ) in said
    assert "retrain with `funnelwise score train`." in said
    assert said.startswith("The scores of the ")
    assert said.endswith("How well such scores rank is checked below.")
