"""Time in stage and cycle time on the tiny log, by hand."""

from __future__ import annotations

import numpy as np
import pytest

import funnelwise as fw
from funnelwise.analytics import time_in_stage


def test_time_in_stage_per_deal(tiny_log: fw.EventLog) -> None:
    t = time_in_stage(tiny_log).to_pandas().set_index(["deal_id", "stage_id"])
    # D3 was in qualification 01-12..01-20 and again since 02-01 (to 03-01): 8 + 29.
    assert t.loc[("D3", "qualification")].tolist()[1:] == [2, 37.0, True]
    assert t.loc[("D4", "lead")].days == 0  # left at the same instant (seq 1)
    assert t.loc[("D5", "lead")].days == 41 and not t.loc[("D5", "lead")].censored
    assert len(t) == 11  # visits to open stages, per deal and stage


def test_timing_by_hand(tiny_log: fw.EventLog) -> None:
    r = fw.timing(tiny_log)
    s = r.stages.set_index("stage_id")
    assert s.index.tolist() == ["lead", "qualification", "needs-assessment", "proposal"]
    lead = s.loc["lead"]
    # Lead: 4, 8, 2, 0, 41 days, all finished.
    assert (lead.deals, lead.still_in_stage) == (5, 0)
    assert (lead["median"], lead.p75, lead.p90, lead["mean"]) == (4, 8, 41, 11)
    assert lead.over_target == pytest.approx(2 / 5) and lead.over_target_now == 2
    # Qualification: 10 and 10 finished; D3 37 and D4 29 still there (censored).
    q = s.loc["qualification"]
    assert (q.deals, q.still_in_stage, q["median"]) == (4, 2, 10)
    assert np.isnan(q.p75)  # half are still in the stage: no p75 yet
    assert q["mean"] == pytest.approx(10 + 0.5 * 27)  # restricted to 37 days
    assert q.over_target == pytest.approx(0.5) and q.over_target_now == 2
    assert s.loc["proposal"].over_target == 1.0  # 17 days against a 14-day target
    c = r.cycle.iloc[0]
    assert (c.won, c.won_median, c.won_median_naive) == (1, 31, 31)
    # Time to any close, open deals censored: S falls below 1/2 at day 41.
    assert c.close_median == 41 and (c.deals, c.open) == (5, 2)
    d = r.distribution
    assert d[d.stage_id == "qualification"][["day", "finished", "ongoing"]].values.tolist() == [
        [10, 2, 0],
        [29, 0, 1],
        [37, 0, 1],
    ]


def test_timing_in_business_days(tiny_log: fw.EventLog) -> None:
    s = fw.timing(tiny_log, days="business").stages.set_index("stage_id")
    # Proposal: Monday 01-15 to Thursday 02-01 = 13 business days.
    assert s.loc["proposal", "median"] == 13
    # Lead: 4 (Mon-Fri), 6 (Tue 01-02 to Wed 01-10), 2, 0, 29 business days.
    assert s.loc["lead", "mean"] == pytest.approx((4 + 6 + 2 + 0 + 29) / 5)
