"""Pipeline hygiene: the open deals that need attention, and why.

For every open deal at the log's instant:

- stale: days since the last touch (its last stage change or activity) beyond
  its stage's threshold, learned from history (the p90 of a visit to the
  stage, Kaplan–Meier with visits still running censored: the idle time lies
  within the current visit), or the stage's target, or a fixed number of days;
- past close date: the expected close date has passed;
- pushed: how often the expected close date moved later, and by how many days;
- amount changes: how often the amount changed, and by how much in all;
- missing fields: exit-criteria fields of its current stage that are empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.common import (
    VALUE,
    base_meta,
    elapsed_days,
    empty_meta,
    group_deals,
    stage_frame,
    timestamp,
    to_pandas,
)
from funnelwise.analytics.conformance import exit_criteria, field_missing
from funnelwise.analytics.events import current_positions
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.timing import visit_summaries
from funnelwise.errors import InputError
from funnelwise.log import EventLog
from funnelwise.log.eventlog import sequenced_changes

LIST_LIMIT = 1000
FLAGS = ("stale", "past_close", "pushed", "amount_changed", "missing_fields")


@dataclass(frozen=True, eq=False)
class HygieneResult(Result):
    """Frames `summary` (per group), `deals` (open deals with issues) and `thresholds`."""

    analysis = "hygiene"
    title = "Pipeline hygiene"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "summary": ["open_deals", "with_issues", *FLAGS, "days_pushed"],
        "deals": [
            "deal_id",
            "owner_id",
            "stage_id",
            "value",
            "idle_days",
            "stale",
            "days_past_close",
            "pushes",
            "missing",
        ],
        "thresholds": ["stage_id", "threshold_days", "basis"],
    }

    summary = frame_view("Per group: open deals and how many have each issue.")
    deals = frame_view("Open deals with at least one issue, most issues and value first.")
    thresholds = frame_view("The stale threshold per stage and what it rests on.")


def _thresholds(log: EventLog, stale: str | float) -> pd.DataFrame:
    """Days idle after which a deal in each stage counts as stale."""
    stages = stage_frame(log, kinds=["open"])[["pipeline_id", "stage_id", "target_days"]]
    if isinstance(stale, int | float):
        return stages.assign(threshold_days=float(stale), basis="fixed")
    if stale not in ("p90", "target"):
        raise InputError(f"stale: {stale!r} is not one of p90, target or a number of days")
    if stale == "target":
        return stages.assign(threshold_days=stages["target_days"], basis="target")
    p90 = visit_summaries(log)[["pipeline_id", "stage_id", "p90"]]
    values = stages.merge(p90, on=["pipeline_id", "stage_id"], how="left")["p90"].to_numpy()
    out = stages.assign(threshold_days=values, basis="p90")
    # Too few finished visits to see a p90: fall back on the stage's target.
    fallback = out["threshold_days"].isna()
    targets = pd.to_numeric(out["target_days"], errors="coerce").astype("float64")
    out.loc[fallback, "threshold_days"] = targets[fallback]
    out.loc[fallback, "basis"] = "target (no p90 yet)"
    return out


def _changes(log: EventLog) -> ir.Table:
    """Per deal: close-date pushes (count, days) and amount changes (count, net)."""
    ch = log.deal_changes
    close = ch.filter(ch.field == "expected_close_date")
    old, new = close.old_value.cast("date"), close.new_value.cast("date")
    pushed = new > old
    amount = sequenced_changes(log.store, ch.filter(ch.field == "amount"))
    w = ibis.window(group_by="deal_id", order_by="seq")
    amount = amount.mutate(_first=amount.old_value.first().over(w))
    pushes = close.group_by("deal_id").aggregate(
        pushes=pushed.cast("int64").sum(),
        days_pushed=new.delta(old, unit="day").sum(where=pushed),
    )
    amounts = amount.group_by("deal_id").aggregate(
        amount_changes=amount.count(),
        amount_first=amount._first.cast("float64").min(),
    )
    return pushes.outer_join(amounts, "deal_id").select(
        deal_id=ibis.coalesce(pushes.deal_id, amounts.deal_id),
        pushes=pushes.pushes.fill_null(0),
        days_pushed=pushes.days_pushed.fill_null(0),
        amount_changes=amounts.amount_changes.fill_null(0),
        amount_first=amounts.amount_first,
    )


def hygiene(
    log: EventLog,
    *,
    by: str | None = None,
    stale: str | float = "p90",
    list_limit: int | None = LIST_LIMIT,
) -> HygieneResult:
    """Open deals that are stale, past their close date, pushed, re-priced or incomplete.

    Args:
        log: the event log (as of its instant: `log.as_of(t)` for a past date).
        by: a deal column or attribute key to split the summary by.
        stale: "p90" (the stage's p90 time in stage, learned from history),
            "target" (the stage's target_days) or a number of days.
        list_limit: at most this many deals in `deals` (None: all).
    """
    thresholds = _thresholds(log, stale)
    deals, groups = group_deals(log, log.deals, by=by)
    now = timestamp(log.now)
    open_deals = deals.filter(deals.outcome.isnull())
    pos = current_positions(log)
    acts = log.activities
    last_act = (
        acts.filter(acts.deal_id.notnull())
        .group_by("deal_id")
        .aggregate(_last_activity=acts.at.max())
    )
    th = ibis.memtable(
        thresholds[["pipeline_id", "stage_id", "threshold_days"]].rename(
            columns={"pipeline_id": "_p", "stage_id": "_s"}
        )
    )
    j = open_deals.left_join(pos, open_deals.deal_id == pos.deal_id).select(
        open_deals, "stage_id", _entered="entered_at"
    )
    j = j.left_join(last_act, "deal_id").select(j, "_last_activity")
    j = j.left_join(th, (j.pipeline_id == th._p) & (j.stage_id == th._s)).select(
        j, "threshold_days"
    )
    j = j.left_join(_changes(log), "deal_id").select(
        j, "pushes", "days_pushed", "amount_changes", "amount_first"
    )
    missing = _missing_fields(log, j)
    j = j.left_join(missing, "deal_id").select(j, "missing", "n_missing")
    touched = ibis.greatest(j._entered, j._last_activity.fill_null(j._entered))
    idle = elapsed_days(touched.fill_null(j.created_at), now)
    past = (now.date().delta(j.expected_close_date, unit="day")).cast("int64")
    j = j.mutate(
        value=j[VALUE],
        idle_days=idle,
        stale=(idle > j.threshold_days).fill_null(False),
        days_past_close=ibis.ifelse(past > 0, past, 0).fill_null(0),
        pushes=j.pushes.fill_null(0),
        days_pushed=j.days_pushed.fill_null(0),
        amount_changes=j.amount_changes.fill_null(0),
        amount_change=(j.amount - j.amount_first).fill_null(0.0),
        n_missing=j.n_missing.fill_null(0),
    )
    j = j.mutate(
        issues=j.stale.cast("int64")
        + (j.days_past_close > 0).cast("int64")
        + (j.pushes > 0).cast("int64")
        + (j.amount_changes > 0).cast("int64")
        + (j.n_missing > 0).cast("int64")
    )
    with j.cache() as per_deal:
        summary = to_pandas(
            per_deal.group_by(groups).aggregate(
                open_deals=per_deal.count(),
                stale=per_deal.stale.cast("int64").sum(),
                past_close=(per_deal.days_past_close > 0).cast("int64").sum(),
                with_close_date=per_deal.expected_close_date.notnull().cast("int64").sum(),
                pushed=(per_deal.pushes > 0).cast("int64").sum(),
                days_pushed=per_deal.days_pushed.sum(),
                amount_changed=(per_deal.amount_changes > 0).cast("int64").sum(),
                missing_fields=(per_deal.n_missing > 0).cast("int64").sum(),
                with_issues=(per_deal.issues > 0).cast("int64").sum(),
            )
        ).sort_values(groups)
        listed = per_deal.filter(per_deal.issues > 0).order_by(
            [ibis.desc("issues"), ibis.desc("value"), "deal_id"]
        )
        if list_limit is not None:
            listed = listed.limit(list_limit)
        cols = [
            *groups,
            "deal_id",
            "owner_id",
            "stage_id",
            "value",
            "idle_days",
            "threshold_days",
            "stale",
            "expected_close_date",
            "days_past_close",
            "pushes",
            "days_pushed",
            "amount_changes",
            "amount_change",
            "missing",
            "issues",
        ]
        deal_list = to_pandas(listed.select(*dict.fromkeys(cols)))
    meta = base_meta(
        log,
        by=by,
        groups=groups,
        stale=stale,
        list_limit=list_limit,
        unit="deals",
        **empty_meta(log, summary),
    )
    meta["idle"] = "days since the last stage change or activity"
    return HygieneResult(
        {"summary": summary.reset_index(drop=True), "deals": deal_list, "thresholds": thresholds},
        meta,
    )


def _missing_fields(log: EventLog, deals: ir.Table) -> ir.Table:
    """Per open deal: exit-criteria fields of its current stage that are empty."""
    fields = exit_criteria(log)[0]
    if fields.empty:
        return deals.select("deal_id", missing=ibis.null("string"), n_missing=ibis.literal(0))
    f = ibis.memtable(fields)
    x = deals.join(f, (deals.pipeline_id == f._p) & (deals.stage_id == f._s))
    x = x.filter(field_missing(x, x.field, sorted(set(fields["field"]))))
    return x.group_by("deal_id").aggregate(
        missing=x.field.group_concat(", ", order_by=x.field), n_missing=x.count()
    )
