"""Snapshot as of a date and pipeline flow between two dates: by hand and by invariants."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelwise as fw
from analytics_data import START, load, lost_booked_at_zero, random_logs, without_settings


def test_snapshot_by_hand(tiny_log: fw.EventLog) -> None:
    s = fw.snapshot(tiny_log).stages.set_index("stage_id")
    # On 2024-03-01 D3 and D4 are open, both in qualification since 02-01.
    assert s.deals.to_dict() == {
        "lead": 0,
        "qualification": 2,
        "needs-assessment": 0,
        "proposal": 0,
        "negotiation": 0,
        "closing": 0,
    }
    q = s.loc["qualification"]
    assert (q.value, q.weighted_value) == (2300, pytest.approx(2300 * 0.2))
    assert (q.mean_days_in_stage, q.mean_age_days, q.over_target) == (29, 40, 2)


def test_snapshot_without_probabilities_or_targets_says_unknown(
    tiny_project: Path, tmp_path: Path
) -> None:
    from funnelwise.report.outlook import snapshot_section

    log = fw.open(without_settings(tiny_project, tmp_path, "probability", "target_days"))
    try:
        r = fw.snapshot(log)
    finally:
        log.store.close()
    st = r.stages.set_index("stage_id")
    # D3 and D4 sit in qualification: 2300 of value, no weight, no target to overrun.
    assert st.loc["qualification", "value"] == 2300
    assert st.weighted_value.isna().all() and st.over_target.isna().all()
    t = r.totals.iloc[0]
    assert (t.deals, t.value) == (2, 2300)
    assert pd.isna(t.weighted_value) and pd.isna(t.over_target)
    # The report leaves out what it cannot say instead of saying 0.
    assert snapshot_section(r).takeaway == (
        "2 open deals worth $2,300 as of 2024-03-01; 0 past their expected close date."
    )


def test_snapshot_as_of_uses_past_values(tiny_log: fw.EventLog) -> None:
    r = fw.snapshot(tiny_log, as_of="2024-01-21")
    s = r.stages.set_index("stage_id")
    # D5 in lead since 01-05, D3 in needs-assessment (amount 1500 before the 01-25
    # change), D1 in proposal; D2 lost on 01-20; D4 not yet created.
    assert s.deals[["lead", "needs-assessment", "proposal"]].tolist() == [1, 1, 1]
    assert s.value[["lead", "needs-assessment", "proposal"]].tolist() == [800, 1500, 1000]
    assert s.loc["lead", "over_target"] == 1  # 16 days against 7
    assert r.totals.weighted_value.iloc[0] == pytest.approx(800 * 0.05 + 1500 * 0.4 + 1000 * 0.6)
    assert r.meta["as_of"] == pd.Timestamp("2024-01-21")
    # As of 02-12, D3's close date (02-15 until the push on 02-10 ... pushed to 03-15)
    # is not past; as of 02-20 on the raw log it would be, but the push already happened.
    late = fw.snapshot(tiny_log, as_of="2024-02-20").totals.iloc[0]
    assert (late.deals, late.past_close_date) == (2, 0)


def test_flow_by_hand(tiny_log: fw.EventLog) -> None:
    r = fw.flow(tiny_log, start="2024-01-11", end="2024-02-20")
    w = r.waterfall.set_index("step")
    # Start (01-11): D1 1000, D2 500, D3 1500, D5 800. D4 created (300); D3's amount
    # rose to 2000; D1 won, D2 lost, D5 no decision. End: D3 2000 + D4 300. Without a
    # stage threshold or close period nothing crosses one: those steps are left out.
    assert w.value.to_dict() == {
        "start": 3800,
        "created": 300,
        "amount_changed": 500,
        "won": -1000,
        "lost": -500,
        "no_decision": -800,
        "end": 2300,
    }
    assert w.deals[["start", "created", "won", "end"]].tolist() == [4, 1, -1, 2]
    m = r.movements.set_index("move")
    # D1 qualification -> proposal, D3 lead -> qualification; D3's close date +29 days.
    assert (m.loc["advanced", "deals"], m.loc["advanced", "value"]) == (2, 3000)
    assert (m.loc["pushed_out", "deals"], m.loc["pushed_out", "days"]) == (1, 29)


def test_flow_with_stage_and_close_period(tiny_log: fw.EventLog) -> None:
    w = fw.flow(tiny_log, start="2024-01-11", end="2024-02-20", stage="Qualification")
    v = w.waterfall.set_index("step").value
    # At or beyond qualification: D1, D2 at start; D3 advanced into it (2000 at end),
    # D4 created in it.
    assert (v["start"], v["advanced"], v["created"], v["won"], v["lost"], v["end"]) == (
        1500,
        2000,
        300,
        -1000,
        -500,
        2300,
    )
    p = fw.flow(
        tiny_log,
        start="2024-02-05",
        end="2024-02-20",
        close_from="2024-02-01",
        close_until="2024-03-01",
    ).waterfall.set_index("step")
    # On 02-05 D3 (close 02-15) and D5 (close 02-20) close in February; D3 was pushed
    # to 03-15 on 02-10 and D5 ended without decision.
    assert (p.value["start"], p.value["pushed_out"], p.value["no_decision"]) == (2800, -2000, -800)
    assert p.deals["pushed_out"] == -1 and p.value["end"] == 0
    with pytest.raises(fw.InputError, match="must be after start"):
        fw.flow(tiny_log, start="2024-02-01", end="2024-01-01")


hours = st.integers(0, 24 * 75).map(lambda h: START + dt.timedelta(hours=h))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=random_logs(), a=hours, b=hours, stage=st.sampled_from([None, "proposal"]))
def test_flow_reconciles_and_snapshots_never_see_the_future(
    tables: dict[str, pd.DataFrame], a: dt.datetime, b: dt.datetime, stage: str | None
) -> None:
    t0, t1 = min(a, b), max(a, b) + dt.timedelta(hours=1)
    log = load(tables)
    try:
        w = fw.flow(log, start=t0, end=t1, stage=stage).waterfall
        parts = w[~w.step.isin(["start", "end"])]
        start, end = w.set_index("step").loc[["start", "end"]].itertuples()
        assert start.cents + parts.cents.sum() == end.cents
        assert start.deals + parts.deals.sum() == end.deals
        d = tables["deals"]
        for t, level in ((t0, start), (t1, end)):
            snap = fw.snapshot(log, as_of=t)
            total = snap.totals.iloc[0] if len(snap.totals) else None
            # Open at t by hand: created by t, not closed by t.
            open_t = d[(d.created_at <= t) & ~(d.closed_at <= t)]
            assert (0 if total is None else total.deals) == len(open_t)
            if stage is None:
                assert level.deals == len(open_t)
                assert level.value == pytest.approx(0 if total is None else total.value)
    finally:
        log.store.close()


def test_flow_books_a_loss_at_zero_as_lost_value(tiny_project: Path, tmp_path: Path) -> None:
    # D2's amount goes 500 -> 0 at its loss (2024-01-20): the waterfall shows 500 lost,
    # not 0 lost and a 500 amount change, and still adds up.
    with lost_booked_at_zero(tiny_project, tmp_path) as log:
        w = fw.flow(log, start="2024-01-11", end="2024-02-20").waterfall.set_index("step")
    assert (w.loc["lost", "deals"], w.loc["lost", "value"]) == (-1, -500)
    assert w.loc["amount_changed", "value"] == 500  # D3's rise only
    assert w.value.drop("end").sum() == w.loc["end", "value"] == 2300
