"""The funnel on the tiny log, every number by hand, and its invariants on random logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import funnelwise as fw
from analytics_data import load, lost_booked_at_zero, random_logs
from funnelwise.analytics.stats import wilson_interval

STAGES = ["lead", "qualification", "needs-assessment", "proposal", "negotiation", "closing", "won"]


def test_funnel_by_hand(tiny_log: fw.EventLog) -> None:
    f = fw.funnel(tiny_log).to_frame()
    assert f.stage_id.tolist() == STAGES
    # Furthest stage: D1 won (every stage), D2 qualification (lost), D3 needs-assessment
    # (moved back, still open), D4 qualification (open), D5 lead (no decision).
    assert f.reached.tolist() == [5, 4, 2, 1, 1, 1, 1]
    # D1 skipped needs-assessment, negotiation and closing on its way to won.
    assert f.entered.tolist() == [5, 4, 1, 1, 0, 0, 1]
    assert f.skipped.tolist() == [0, 0, 1, 0, 1, 1, 0]
    # Still open with this as their furthest stage: D4 at qualification, D3 at needs.
    assert f.undecided.tolist() == [0, 1, 1, 0, 0, 0, 0]
    assert f.value.tolist() == [4600, 3800, 3000, 1000, 1000, 1000, 1000]
    assert np.isnan(f.step_rate[0])
    assert f.step_rate[1:].tolist() == pytest.approx([4 / 5, 2 / 4, 1 / 2, 1, 1, 1])
    assert f.step_n[1:].tolist() == [5, 4, 2, 1, 1, 1]
    # Without the deals still open at the previous stage: 2 of (4 - 1), 1 of (2 - 1).
    assert f.decided_rate[2:4].tolist() == pytest.approx([2 / 3, 1 / 1])
    assert f.decided_n[1:4].tolist() == [5, 3, 1]
    assert f.cumulative_rate.tolist() == pytest.approx([1, 0.8, 0.4, 0.2, 0.2, 0.2, 0.2])
    lo, hi = wilson_interval(2, 4)
    assert (f.step_lower[2], f.step_upper[2]) == pytest.approx((float(lo), float(hi)))
    assert f.value_step_rate[3] == pytest.approx(1000 / 3000)
    assert f.value_cumulative_rate[1] == pytest.approx(3800 / 4600)


def test_funnel_by_attribute_and_cohort(tiny_log: fw.EventLog) -> None:
    f = fw.funnel(tiny_log, by="segment").to_frame().set_index(["segment", "stage_id"])
    # smb: D1 (won) and D3; ent: D2; no segment: D4, D5.
    assert f.loc["smb"].reached.tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert f.loc["ent"].reached.tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert f.loc["(missing)"].reached.tolist() == [2, 1, 0, 0, 0, 0, 0]
    c = fw.funnel(tiny_log, cohort="month").to_frame()
    jan = c[c.cohort == pd.Timestamp("2024-01-01")]
    feb = c[c.cohort == pd.Timestamp("2024-02-01")]
    assert jan.reached.tolist() == [4, 3, 2, 1, 1, 1, 1]
    assert feb.reached.tolist() == [1, 1, 0, 0, 0, 0, 0]
    by_owner = fw.funnel(tiny_log, by="owner_id").to_frame()
    assert set(by_owner.owner_id) == {"u1", "u2"}


def test_funnel_as_of_forgets_the_future(tiny_log: fw.EventLog) -> None:
    # On 2024-01-21: D1 at proposal, D2 lost, D3 at needs-assessment, D5 at lead; no D4.
    f = fw.funnel(tiny_log.as_of("2024-01-21")).to_frame()
    assert f.reached.tolist() == [4, 3, 2, 1, 0, 0, 0]
    assert f.undecided.tolist() == [1, 0, 1, 1, 0, 0, 0]
    r = fw.funnel(tiny_log.as_of("2024-01-21"))
    assert r.meta["as_of"] == pd.Timestamp("2024-01-21")


def test_funnel_result_renders(tiny_log: fw.EventLog) -> None:
    r = fw.funnel(tiny_log)
    d = r.to_dict()
    assert d["analysis"] == "funnel" and d["frames"]["stages"][0]["step_rate"] is None
    assert d["frames"]["stages"][1]["reached"] == 4
    assert "Needs assessment" in r._repr_html_()
    # Frames go out as copies: editing one leaves the result unchanged.
    copy = r.to_frame()
    copy.loc[0, "reached"] = 99
    assert r.to_frame().loc[0, "reached"] == 5


def test_funnel_rejects_unknown_segment_and_cohort(tiny_log: fw.EventLog) -> None:
    with pytest.raises(fw.InputError, match="no deal has a column or attribute 'colour'"):
        fw.funnel(tiny_log, by="colour")
    with pytest.raises(fw.InputError, match="week, month, quarter, year"):
        fw.funnel(tiny_log, cohort="fortnight")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=random_logs())
def test_funnel_never_widens(tables: dict[str, pd.DataFrame]) -> None:
    log = load(tables)
    try:
        f = fw.funnel(log).to_frame()
        assert (np.diff(f.reached.to_numpy()) <= 0).all()
        assert (np.diff(f.value.to_numpy()) <= 1e-9).all()
        assert f.reached.iloc[0] == len(tables["deals"])
        assert f.reached.iloc[-1] == (tables["deals"].outcome == "won").sum()
        assert (f.skipped >= 0).all() and (f.entered <= f.reached).all()
        # Deals that entered a stage, counted by hand from the events.
        ev = tables["stage_events"]
        by_hand = ev.groupby("stage_id").deal_id.nunique()
        for row in f.itertuples():
            if row.stage_id != "won":
                assert row.entered == by_hand.get(row.stage_id, 0)
    finally:
        log.store.close()


def test_a_deal_booked_at_zero_when_lost_enters_with_its_value(
    tiny_project: Path, tmp_path: Path
) -> None:
    # D2 lost on 2024-01-20, its amount set 500 -> 0 at the loss (as CRM exports do):
    # the funnel still took in 1000 + 500 + 2000 + 300 + 800 at Lead.
    with lost_booked_at_zero(tiny_project, tmp_path) as log:
        st = fw.funnel(log).stages.set_index("stage_id")
    assert st.loc["lead", "value"] == 4600
    assert st.loc["qualification", "value"] == 1000 + 500 + 2000 + 300
