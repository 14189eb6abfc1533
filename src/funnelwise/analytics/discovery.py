"""Process discovery: the directly-follows graph and the variants of the log.

Events of a deal are ordered by (entered_at, seq), so results never depend
on the order rows arrived in. An edge a -> b counts every time a deal entered
b right after a; its time is the days between the two entries. A variant is a
deal's whole sequence of stages; its duration runs from the first to the last
entry (the usual process-mining case duration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.common import base_meta, exact_days, group_deals, to_pandas
from funnelwise.analytics.result import Result, frame_view
from funnelwise.log import EventLog

START = "(start)"
END = "(end)"
SEPARATOR = ","


@dataclass(frozen=True, eq=False)
class DiscoveryResult(Result):
    """Frames `variants`, `edges` (directly-follows graph) and `nodes`."""

    analysis = "variants"
    title = "Process discovery"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "variants": ["deals", "share", "median_days", "variant"],
        "edges": ["source", "target", "count", "deals", "median_days"],
    }
    percent: ClassVar[frozenset[str]] = frozenset({"share"})
    terminal: ClassVar[tuple[str, ...]] = ("variants", "edges")

    variants = frame_view(
        "Per group and variant (stage ids joined by ','): deals, share, n_events, "
        "median and mean days from first to last entry."
    )
    edges = frame_view(
        "Directly-follows edges per group: source, target, count, deals, median, mean and "
        "p90 days between the two entries; (start) and (end) mark first and last stages."
    )
    nodes = frame_view("Per group and stage: entries and deals.")


def ordered_events(log: EventLog) -> ir.Table:
    """Stage events with each deal's next stage and the days until it (Ibis table)."""
    e = log.stage_events
    w = ibis.window(group_by="deal_id", order_by=["entered_at", "seq"])
    return e.mutate(
        next_stage_id=e.stage_id.lead().over(w),
        next_days=exact_days(e.entered_at, e.entered_at.lead().over(w)),
        first=ibis.row_number().over(w) == 0,
    )


def case_durations(log: EventLog) -> ir.Table:
    """Per deal: events, first and last entry and the days between (Ibis table)."""
    e = log.stage_events
    agg = e.group_by("deal_id").aggregate(
        n_events=e.count(), first_at=e.entered_at.min(), last_at=e.entered_at.max()
    )
    return agg.mutate(days=exact_days(agg.first_at, agg.last_at))


def variants_of(log: EventLog) -> ir.Table:
    """Per deal: its variant (stage ids in order, joined by ','), events and duration."""
    e = log.stage_events
    agg = e.group_by("deal_id").aggregate(
        variant=e.stage_id.group_concat(SEPARATOR, order_by=[e.entered_at, e.seq]),
        n_events=e.count(),
        first_at=e.entered_at.min(),
        last_at=e.entered_at.max(),
    )
    return agg.mutate(days=exact_days(agg.first_at, agg.last_at)).drop("first_at", "last_at")


def discovery(log: EventLog, *, by: str | None = None, top: int | None = None) -> DiscoveryResult:
    """Directly-follows graph and variants, per group.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        top: keep only the `top` most frequent variants per group (shares stay
            shares of all deals).

    Times are calendar days between stage entries.
    """
    deals, groups = group_deals(log, log.deals, by=by)
    keys = deals.select("deal_id", *groups)
    v = variants_of(log).join(keys, "deal_id")
    variants = v.group_by([*groups, "variant"]).aggregate(
        deals=v.count(),
        n_events=v.n_events.max(),
        median_days=v.days.median(),
        mean_days=v.days.mean(),
    )
    w = ibis.window(group_by=groups)
    variants = variants.mutate(
        share=variants.deals.cast("float64") / variants.deals.sum().over(w),
        rank=ibis.row_number().over(
            ibis.window(group_by=groups, order_by=[ibis.desc("deals"), "variant"])
        ),
    )
    if top is not None:
        variants = variants.filter(variants["rank"] < top)
    variant_frame = to_pandas(variants.order_by([*groups, "rank"]).drop("rank"))
    variant_frame = variant_frame[
        [*groups, "variant", "deals", "share", "n_events", "median_days", "mean_days"]
    ]

    e = ordered_events(log).join(keys, "deal_id")
    steps = e.filter(e.next_stage_id.notnull())
    pair = [*groups, steps.stage_id.name("source"), steps.next_stage_id.name("target")]
    inner = steps.group_by(pair).aggregate(
        count=steps.count(),
        deals=steps.deal_id.nunique(),
        median_days=steps.next_days.median(),
        mean_days=steps.next_days.mean(),
        p90_days=steps.next_days.quantile(0.9),
    )
    starts = e.filter(e.first)
    begin = starts.group_by([*groups, starts.stage_id.name("target")]).aggregate(
        count=starts.count()
    )
    ends = e.filter(e.next_stage_id.isnull())
    finish = ends.group_by([*groups, ends.stage_id.name("source")]).aggregate(count=ends.count())
    edge_frame = to_pandas(inner)
    begin_frame = to_pandas(begin).assign(source=START)
    finish_frame = to_pandas(finish).assign(target=END)
    for f in (begin_frame, finish_frame):
        f["deals"] = f["count"]
    edges = pd.concat([edge_frame, begin_frame, finish_frame], ignore_index=True)
    cols = ["source", "target", "count", "deals", "median_days", "mean_days", "p90_days"]
    up = [True] * len(groups)
    edges = edges[[*groups, *cols]].sort_values(
        [*groups, "count", "source", "target"], ascending=[*up, False, True, True]
    )
    nodes = to_pandas(
        e.group_by([*groups, "stage_id"]).aggregate(entries=e.count(), deals=e.deal_id.nunique())
    ).sort_values([*groups, "entries", "stage_id"], ascending=[*up, False, True])
    meta = base_meta(log, by=by, groups=groups, top=top, unit="deals; calendar days")
    meta["ordering"] = "events ordered by (entered_at, seq): independent of row order"
    return DiscoveryResult(
        {
            "variants": variant_frame,
            "edges": edges.reset_index(drop=True),
            "nodes": nodes.reset_index(drop=True),
        },
        meta,
    )
