"""Bottlenecks in money on the tiny log, by hand."""

from __future__ import annotations

import pytest

import funnelwise as fw


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
    # Excess over target × value. Lead (7 days): D5 41 -> 34 × 800, D2 8 -> 1 × 500.
    # Qualification (14): D3 37 so far -> 23 × 2000, D4 29 so far -> 15 × 300.
    # Proposal (14): D1 17 -> 3 × 1000.
    assert r.loc["lead", "excess_value_days"] == 34 * 800 + 500
    assert r.loc["qualification", "excess_value_days"] == 23 * 2000 + 15 * 300
    assert r.loc["qualification", "excess_days"] == 38
    assert r.loc["proposal", "excess_value_days"] == 3000
    total_wait = 27700 + 50500 + 3000
    q = r.loc["qualification"]
    assert q.score == pytest.approx(500 / 1300 + 50500 / total_wait)
    assert r.loc["lead", "score"] == pytest.approx(800 / 1300 + 27700 / total_wait)
    # Qualification first (score 1.007), lead second (0.957), then proposal.
    assert r.sort_values("rank").index[:3].tolist() == ["qualification", "lead", "proposal"]
    assert q.why == (
        "Qualification: USD 500 left the pipeline here (1 deal lost or undecided, 38% of all "
        "value lost); 2 deals worth USD 2.3k waited 22 days beyond the 14-day target on "
        "average (62% of all excess waiting in value-days)."
    )
    assert r.loc["closing", "why"].startswith("Closing: no value was lost here")


def test_bottlenecks_by_segment_rank_within_each(tiny_log: fw.EventLog) -> None:
    r = fw.bottlenecks(tiny_log, by="source").ranking
    assert sorted(r[r["rank"] == 1][["source", "stage_id"]].values.tolist()) == [
        ["partner", "qualification"],  # D2 lost there, D4 waiting there
        ["web", "lead"],  # D5's 800 left from lead
    ]
