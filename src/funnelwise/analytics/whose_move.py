"""Whose move: time in each stage split into waiting for the buyer and for the seller.

Activities with a direction mark whose turn it is. After an outbound
activity, or one flagged waiting_on_customer, the ball is in the buyer's
court; after an inbound one (the buyer wrote, called, met) it is the seller's.
The turn holds until the next directed activity of the deal. Time in a stage
before the deal's first directed activity is unknown. Activities without a
direction do not change the turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import numpy as np

from funnelwise.analytics.common import (
    base_meta,
    elapsed_days,
    empty_meta,
    group_deals,
    stage_frame,
    timestamp,
    to_pandas,
)
from funnelwise.analytics.events import visit_end
from funnelwise.analytics.result import Result, frame_view
from funnelwise.log import EventLog

BUYER_TURN = ("outbound", "waiting_on_customer")
SELLER_TURN = ("inbound",)
# Per stage: visits, days in it, and those days split (unknown: before any directed
# activity, or none at all).
TIME_COLUMNS = ("visits", "days", "buyer_days", "seller_days", "unknown_days")


@dataclass(frozen=True, eq=False)
class WhoseMoveResult(Result):
    """Frame `stages`: per group and stage, days waiting for the buyer and the seller."""

    analysis = "whose_move"
    title = "Whose move: buyer and seller time"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "stages": ["name", *TIME_COLUMNS, "buyer_share"],
    }
    percent: ClassVar[frozenset[str]] = frozenset({"buyer_share", "seller_share"})

    stages = frame_view(
        "Per group and open stage: visits, days in stage, buyer_days, seller_days, "
        "unknown_days, and the buyer's and seller's share of the known time."
    )


def whose_move(log: EventLog, *, by: str | None = None, days: str = "calendar") -> WhoseMoveResult:
    """Split each stage's time into waiting for the buyer and waiting for the seller.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        days: "calendar" or "business" days.
    """
    deals, groups = group_deals(log, log.deals, by=by)
    now = timestamp(log.now)
    a = log.activities
    a = a.filter(a.deal_id.notnull() & a.direction.isin([*BUYER_TURN, *SELLER_TURN]))
    w = ibis.window(group_by="deal_id", order_by=["at", "activity_id"])
    ends = deals.select("deal_id", _deal_end=deals.closed_at.fill_null(now))
    turns = a.mutate(_until=a.at.lead().over(w)).join(ends, "deal_id")
    turns = turns.select(
        "deal_id",
        _from="at",
        _to=turns._until.fill_null(turns._deal_end),
        _buyer=turns.direction.isin(list(BUYER_TURN)),
    )
    v = log.stage_intervals
    v = v.filter(v.kind == "open")
    v = v.select("deal_id", "stage_id", _start="entered_at", _end=visit_end(log, v)).join(
        deals.select("deal_id", *groups), "deal_id"
    )
    visit_days = v.mutate(_days=elapsed_days(v._start, v._end, days))
    overlap = v.join(
        turns, (v.deal_id == turns.deal_id) & (turns._from < v._end) & (turns._to > v._start)
    )
    lo = ibis.greatest(overlap._start, overlap._from)
    hi = ibis.least(overlap._end, overlap._to)
    overlap = overlap.mutate(_d=elapsed_days(lo, hi, days))
    split = to_pandas(
        overlap.group_by([*groups, "stage_id"]).aggregate(
            buyer_days=overlap._d.sum(where=overlap._buyer),
            seller_days=overlap._d.sum(where=~overlap._buyer),
        )
    )
    total = to_pandas(
        visit_days.group_by([*groups, "stage_id"]).aggregate(
            visits=visit_days.count(), days=visit_days._days.sum()
        )
    )
    f = total.merge(split, on=[*groups, "stage_id"], how="left")
    f[["buyer_days", "seller_days"]] = f[["buyer_days", "seller_days"]].astype("float64").fillna(0)
    unknown = f["days"] - f["buyer_days"] - f["seller_days"]
    # What is left after the split is float residue below a microsecond, or real.
    f["unknown_days"] = unknown.where(unknown > 1e-9, 0.0)
    known = f["buyer_days"] + f["seller_days"]
    with np.errstate(divide="ignore", invalid="ignore"):
        f["buyer_share"] = np.where(known > 0, f["buyer_days"] / known, np.nan)
        f["seller_share"] = np.where(known > 0, f["seller_days"] / known, np.nan)
    stages = stage_frame(log, kinds=["open"])[["pipeline_id", "stage_id", "name", "position"]]
    f = stages.merge(f, on=["pipeline_id", "stage_id"], how="inner")
    f = f.sort_values([*groups, "position"], kind="stable").reset_index(drop=True)
    cols = [
        *groups,
        "stage_id",
        "name",
        *TIME_COLUMNS,
        "buyer_share",
        "seller_share",
    ]
    meta = base_meta(
        log, by=by, groups=groups, days=days, unit=f"{days} days", **empty_meta(log, f)
    )
    meta["turns"] = "outbound or waiting_on_customer: buyer's move; inbound: seller's move"
    return WhoseMoveResult({"stages": f[cols]}, meta)
