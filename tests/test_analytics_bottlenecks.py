"""Bottlenecks in money on the tiny log, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

import funnelwise as fw
from analytics_data import lost_booked_at_zero, tiny_changed, without_settings
from funnelwise.analytics.bottlenecks import _sentence


def test_bottleneck_ranking_by_hand(tiny_log: fw.EventLog) -> None:
    r = fw.bottlenecks(tiny_log).ranking.set_index("stage_id")
    # Leakage: D2 lost from qualification (500), D5 without decision from lead (800).
    assert r.value_lost.to_dict() == {
        "qualification": 500,
        "lead": 800,
        "proposal": 0,
        "needs-assessment": 0,
        "negotiation": 0,
        "closing": 0,
    }
    assert (r.loc["lead", "lost_value"], r.loc["lead", "no_decision_value"]) == (0, 800)
    # Excess over target × value, per visit. Lead (7 days): D5 41 -> 34 × 800, D2 8 ->
    # 1 × 500. Qualification (14): D3's first visit 8 -> 0 and its second, 29 days so
    # far -> 15 × 2000 (its total of 37 against one target had said 23); D4 29 so far
    # -> 15 × 300. Proposal (14): D1 17 -> 3 × 1000.
    assert r.loc["lead", "excess_value_days"] == 34 * 800 + 500
    assert r.loc["qualification", "excess_value_days"] == 15 * 2000 + 15 * 300
    assert r.loc["qualification", "excess_days"] == 30
    assert r.loc["proposal", "excess_value_days"] == 3000
    total_wait = 27700 + 34500 + 3000
    q = r.loc["qualification"]
    assert q.score == pytest.approx(500 / 1300 + 34500 / total_wait)
    assert r.loc["lead", "score"] == pytest.approx(800 / 1300 + 27700 / total_wait)
    # Lead first (score 1.040), qualification second (0.914), then proposal.
    assert r.sort_values("rank").index[:3].tolist() == ["lead", "qualification", "proposal"]
    assert q.why == (
        "Qualification: USD 500 left the pipeline here (1 deal lost or closed without a "
        "decision, 38% of all value lost); 2 deals worth USD 2.3k waited 15 days beyond the "
        "14-day target on average, weighted by value (53% of all excess waiting in value-days)."
    )
    assert r.loc["closing", "why"].startswith("Closing: no deal was lost here")
    assert r.deals_lost_without_value.sum() == 0


def test_lost_deals_without_an_amount_are_not_worth_nothing() -> None:
    # An export that books 0 on lost deals (CRM Sales Opportunities does): their
    # value is unknown, and the sentence must not say "USD 0 left the pipeline".
    row = {
        "name": "Needs assessment",
        "value_lost": 0.0,
        "deals_lost": 2473,
        "deals_lost_without_value": 2473,
        "share_lost": 0.0,
        "target_days": None,
    }
    why = _sentence(row, "USD")
    assert why.startswith(
        "Needs assessment: 2,473 deals lost or closed without a decision here, none with an "
        "amount recorded"
    )
    assert "USD 0" not in why
    partly = _sentence(
        row | {"value_lost": 5000.0, "deals_lost_without_value": 3, "share_lost": 0.25}, "USD"
    )
    assert (
        "USD 5.0k left the pipeline here (2,473 deals lost or closed without a decision; 3 of them"
        in partly
    )


def test_bottlenecks_by_segment_rank_within_each(tiny_log: fw.EventLog) -> None:
    r = fw.bottlenecks(tiny_log, by="source").ranking
    assert sorted(r[r["rank"] == 1][["source", "stage_id"]].values.tolist()) == [
        ["partner", "qualification"],  # D2 lost there, D4 waiting there
        ["web", "lead"],  # D5's 800 left from lead
    ]


def test_a_process_without_target_times_still_ranks_by_leakage(
    tiny_project: Path, tmp_path: Path
) -> None:
    # BPI Challenge 2012's example process sets no target time at all.
    log = fw.open(without_settings(tiny_project, tmp_path, "target_days"))
    try:
        r = fw.bottlenecks(log).ranking.set_index("stage_id")
    finally:
        log.store.close()
    assert r.excess_value_days.sum() == 0 and r.target_days.isna().all()
    # Leakage alone ranks: lead (800 of 1300) first, then qualification (500).
    assert r.sort_values("rank").index[:2].tolist() == ["lead", "qualification"]
    assert r.loc["lead", "why"].endswith("no target time is set.")


def test_a_deal_booked_at_zero_when_lost_counts_its_value_before(
    tiny_project: Path, tmp_path: Path
) -> None:
    # As CRM Sales Opportunities books it: D2's amount goes 500 -> 0 at its loss
    # (2024-01-20). What left the pipeline is the 500 it carried until then.
    with lost_booked_at_zero(tiny_project, tmp_path) as log:
        r = fw.bottlenecks(log).ranking.set_index("stage_id")
        # Before the loss the deal was open: nothing had left the pipeline yet.
        early = fw.bottlenecks(log.as_of("2024-01-15")).ranking.set_index("stage_id")
    assert r.loc["qualification", "value_lost"] == 500
    assert r.loc["qualification", "deals_lost_without_value"] == 0
    assert early.loc["qualification", "value_lost"] == 0
    # Its wait in lead (8 days against 7) is valued alike: 1 day × 500, as in the
    # ranking by hand, not × 0.
    assert r.loc["lead", "excess_value_days"] == 34 * 800 + 500


def test_a_deal_lost_without_any_stage_entry_leaks_at_the_first_stage(
    tiny_project: Path, tmp_path: Path
) -> None:
    # D6 (web, 400) was created 01-08 and lost 01-18 with no open-stage entry,
    # only its outcome: the funnel counts it as reaching lead and no further.
    d6 = (
        "INSERT INTO deals (deal_id, pipeline_id, owner_id, source, amount, currency, "
        "amount_base, created_at, expected_close_date, closed_at, outcome, version) "
        "VALUES ('D6', 'new-business', 'u1', 'web', 400, 'USD', 400, "
        "TIMESTAMP '2024-01-08', DATE '2024-02-01', TIMESTAMP '2024-01-18', 'lost', 1); "
        "INSERT INTO stage_events (deal_id, stage_id, entered_at, seq) "
        "VALUES ('D6', 'lost', TIMESTAMP '2024-01-18', 0)"
    )
    with tiny_changed(tiny_project, tmp_path / "lost-unstaged", d6) as log:
        r = fw.bottlenecks(log).ranking.set_index("stage_id")
        funnel = fw.funnel(log).stages.set_index("stage_id")
    assert funnel.loc["lead", "reached"] == 6 and funnel.loc["qualification", "reached"] == 4
    # Lead: D5 without decision (800) and D6 lost (400); qualification: D2 (500).
    lead = r.loc["lead"]
    assert (lead.deals_lost, lead.value_lost) == (2, 1200)
    assert (lead.lost_value, lead.no_decision_value) == (400, 800)
    assert r.deals_lost.sum() == 3 and r.value_lost.sum() == 1700
    assert lead.share_lost == pytest.approx(1200 / 1700)
    assert r.loc["qualification", "share_lost"] == pytest.approx(500 / 1700)
    assert lead.why.startswith(
        "Lead: USD 1.2k left the pipeline here (2 deals lost or closed without a decision"
    )
