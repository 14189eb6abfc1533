"""Bottlenecks in money: where value leaks out and where it waits too long.

Two measures per stage, one ranking:

- leakage: the value of deals that ended lost or without decision while this
  was their last open stage (a deal closed with no open-stage entry at all
  leaked at its pipeline's first stage, where the funnel counts it);
- excess waiting: for every visit to the stage, its days beyond the stage's
  target (the same per-visit reading as the time-in-stage figures), times the
  deal's value (value-days; visits still running count their waiting so far).
  A deal that came back counts each visit's excess, not its total against one
  target.

Each stage's score is its share of all leakage plus its share of all excess
waiting, so the ranking weighs both equally whatever their units; each row
carries a sentence saying why it ranks where it does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import numpy as np
import pandas as pd

from funnelwise.analytics.common import (
    VALUE,
    base_meta,
    empty_meta,
    group_deals,
    stage_frame,
    to_pandas,
    value_before_close,
)
from funnelwise.analytics.events import current_positions
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.timing import visit_times
from funnelwise.log import EventLog
from funnelwise.log.eventlog import left_join_on


@dataclass(frozen=True, eq=False)
class BottleneckResult(Result):
    """Frame `ranking`: one row per group and stage, best-ranked (worst stage) first."""

    analysis = "bottlenecks"
    title = "Bottlenecks in money"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "ranking": [
            "rank",
            "name",
            "value_lost",
            "share_lost",
            "excess_value_days",
            "share_waiting",
            "score",
            "why",
        ],
    }
    # The score is a sum of two shares (0 to 2), not a share: printed as a number.
    percent: ClassVar[frozenset[str]] = frozenset({"share_lost", "share_waiting"})

    ranking = frame_view("Stages ranked by leakage and excess waiting, with a sentence each.")


def bottlenecks(
    log: EventLog, *, by: str | None = None, days: str = "calendar"
) -> BottleneckResult:
    """Rank stages by value lost there and by waiting beyond target × value.

    Returns per group and open stage: deals_lost (lost or no decision with
    this as their last open stage; those never seen in an open stage, only at
    their outcome, count at the pipeline's first stage, as in the funnel, so
    every lost deal is in the shares), deals_lost_without_value (of those, with
    no positive amount: their value is unknown, not 0), value_lost, lost_value, no_decision_value;
    deals_over_target (deals with a visit longer than the target), value_over_target,
    excess_days (summed over visits), excess_value_days (excess days × deal value);
    the shares of each within the group, score (sum of the two shares), rank
    (1 = worst) and `why`, a sentence.
    """
    deals, groups = group_deals(log, log.deals, by=by)
    value = deals[VALUE].fill_null(0.0)
    d = deals.select(*groups, "deal_id", "outcome", _value=value)
    # A lost deal is worth the value it carried before its close (an export may book 0
    # at the loss), not the value booked at it: in what leaked and in what waited.
    ended = ["lost", "no_decision"]
    before = value_before_close(log, log.deals, ended)
    d = left_join_on(d, before, "deal_id")
    d = d.mutate(
        _value=ibis.ifelse(d.outcome.isin(ended), ibis.coalesce(d.value, d._value), d._value)
    ).drop("value")
    closed = d.filter(d.outcome.isin(ended))
    last = current_positions(log).select("deal_id", "stage_id")
    stages = stage_frame(log, kinds=["open"])
    first = stages.sort_values("position").groupby("pipeline_id")["stage_id"].first().to_dict()
    leak = left_join_on(closed, last, "deal_id")
    # A deal recorded only at its outcome (lost straight from creation) must not
    # drop out of what leaked: the funnel has it reach the first stage only.
    leak = leak.mutate(
        stage_id=leak.stage_id.fill_null(
            leak.pipeline_id.substitute(first, else_=ibis.null("string"))
        )
    )
    lost = to_pandas(
        leak.group_by([*groups, "stage_id"]).aggregate(
            deals_lost=leak.count(),
            deals_lost_without_value=(leak._value <= 0).cast("int64").sum(),
            value_lost=leak._value.sum(),
            lost_value=leak._value.sum(where=leak.outcome == "lost"),
            no_decision_value=leak._value.sum(where=leak.outcome == "no_decision"),
        )
    )
    # Float even when no stage sets a target: an all-empty column would be typed null.
    targets = ibis.memtable(
        stages[["pipeline_id", "stage_id", "target_days"]]
        .astype({"target_days": "float64"})
        .rename(columns={"pipeline_id": "_p", "stage_id": "_s"})
    )
    v = visit_times(log, days=days)
    v = v.join(targets, (v.pipeline_id == targets._p) & (v.stage_id == targets._s))
    v = v.mutate(_excess=(v.days - v.target_days).clip(lower=0).fill_null(0.0))
    per_deal = v.group_by(["deal_id", "stage_id"]).aggregate(excess=v._excess.sum())
    t = per_deal.join(d.drop("outcome"), "deal_id")
    excess = t.excess
    waiting = to_pandas(
        t.group_by([*groups, "stage_id"]).aggregate(
            deals_over_target=(excess > 0).cast("int64").sum(),
            value_over_target=t._value.sum(where=excess > 0),
            excess_days=excess.sum(),
            excess_value_days=(excess * t._value).sum(),
        )
    )
    frame = _rank(stages, lost, waiting, groups, log.process.currency)
    meta = base_meta(
        log, by=by, groups=groups, days=days, unit=log.process.currency, **empty_meta(log, frame)
    )
    meta["score"] = "share of the group's value lost + share of its excess value-days"
    return BottleneckResult({"ranking": frame}, meta)


def _rank(
    stages: pd.DataFrame,
    lost: pd.DataFrame,
    waiting: pd.DataFrame,
    groups: list[str],
    currency: str,
) -> pd.DataFrame:
    keys = pd.concat([lost[groups], waiting[groups]]).drop_duplicates()
    info = stages[["pipeline_id", "stage_id", "name", "position", "target_days"]]
    f = keys.merge(info, on="pipeline_id")
    f = f.merge(lost, on=[*groups, "stage_id"], how="left")
    f = f.merge(waiting, on=[*groups, "stage_id"], how="left")
    counts = ["deals_lost", "deals_lost_without_value", "deals_over_target"]
    sums = [
        "value_lost",
        "lost_value",
        "no_decision_value",
        "value_over_target",
        "excess_days",
        "excess_value_days",
    ]
    f[counts] = f[counts].fillna(0).astype("int64")
    f[sums] = f[sums].astype("float64").fillna(0.0)
    g = f.groupby(groups, dropna=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        f["share_lost"] = (f["value_lost"] / g["value_lost"].transform("sum")).fillna(0.0)
        f["share_waiting"] = (
            f["excess_value_days"] / g["excess_value_days"].transform("sum")
        ).fillna(0.0)
    f["score"] = f["share_lost"] + f["share_waiting"]
    f = f.sort_values(
        [*groups, "score", "position"], ascending=[True] * len(groups) + [False, True]
    )
    f["rank"] = f.groupby(groups, dropna=False).cumcount() + 1
    f["why"] = [_sentence(r, currency) for r in f.to_dict("records")]
    cols = [
        *groups,
        "rank",
        "stage_id",
        "name",
        "deals_lost",
        "deals_lost_without_value",
        "value_lost",
        "lost_value",
        "no_decision_value",
        "deals_over_target",
        "value_over_target",
        "excess_days",
        "excess_value_days",
        "target_days",
        "share_lost",
        "share_waiting",
        "score",
        "why",
    ]
    return f[cols].reset_index(drop=True)


def _money(x: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:,.1f}{unit}"
    return f"{x:,.0f}"


def _sentence(r: Mapping[Hashable, Any], currency: str) -> str:
    """Why a stage ranks where it does, in one sentence."""
    name = r["name"]
    parts = []
    lost, n = float(r["value_lost"]), int(r["deals_lost"])
    unvalued = int(r["deals_lost_without_value"])
    deals = f"{n:,} deal{'s' if n != 1 else ''} lost or closed without a decision"
    if n and unvalued == n:
        # An export that books 0 on lost deals says nothing about their value.
        parts.append(f"{deals} here, none with an amount recorded, so their value is unknown")
    elif n:
        share = float(r["share_lost"])
        unknown = f"; {unvalued:,} of them without an amount" if unvalued else ""
        parts.append(
            f"{currency} {_money(lost)} left the pipeline here ({deals}{unknown}, "
            f"{share:.0%} of all value lost)"
        )
    target = r["target_days"]
    if target is None or pd.isna(target):
        parts.append("no target time is set")
    elif int(r["deals_over_target"]):
        over = int(r["deals_over_target"])
        worth = float(r["value_over_target"])
        # Value-weighted mean days late: excess value-days / value of the late deals.
        late = float(r["excess_value_days"]) / worth if worth else float(r["excess_days"]) / over
        parts.append(
            f"{over:,} deal{'s' if over != 1 else ''} worth {currency} {_money(worth)} waited "
            f"{late:,.0f} days beyond the {float(target):g}-day target on average, "
            "weighted by value "
            f"({float(r['share_waiting']):.0%} of all excess waiting in value-days)"
        )
    else:
        parts.append(f"no deal waited beyond the {float(target):g}-day target")
    if not n:
        parts.insert(0, "no deal was lost here")
    return f"{name}: " + "; ".join(parts) + "."
