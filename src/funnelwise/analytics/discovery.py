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

from funnelwise.analytics.common import base_meta, empty_meta, exact_days, group_deals, to_pandas
from funnelwise.analytics.events import with_groups
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


def traces(log: EventLog) -> ir.Table:
    """Per deal: its stage entries as a list of (at, seq, stage) sorted by (entered_at,
    seq), with deal_id, pipeline_id and a whole-number deal key `_key` (Ibis table).

    One hash aggregation and a sort of each deal's short list: cheaper than sorting
    all events by deal, and the engine keeps millions of such lists in little memory.
    """
    e = log.positioned_events
    agg = e.group_by(["deal_id", "pipeline_id"]).aggregate(
        trace=ibis.struct({"at": e.entered_at, "seq": e.seq, "stage": e.stage_id}).collect()
    )
    return agg.mutate(trace=agg.trace.sort(), _key=ibis.row_number())


def case_durations(log: EventLog) -> ir.Table:
    """Per deal: events, first and last entry and the days between (Ibis table)."""
    e = log.stage_events
    agg = e.group_by("deal_id").aggregate(
        n_events=e.count(), first_at=e.entered_at.min(), last_at=e.entered_at.max()
    )
    return agg.mutate(days=exact_days(agg.first_at, agg.last_at))


def variants_of(t: ir.Table) -> ir.Table:
    """Per trace (see `traces`): variant (stage ids joined by ','), n_events and days
    from the first to the last entry."""
    trace = t.trace
    return t.mutate(
        variant=trace.map(lambda x: x.stage).join(SEPARATOR),
        n_events=trace.length(),
        days=exact_days(trace[0].at, trace[-1].at),
    )


def steps_of(t: ir.Table) -> ir.Table:
    """One row per consecutive pair of entries of each trace: source, target and days
    between the two entries, with the trace's other columns (not the trace itself)."""
    trace = t.trace
    pairs = ibis.range(1, trace.length()).map(
        lambda i: ibis.struct({"a": trace[i - 1], "b": trace[i]})
    )
    # Unnest beside the small columns only: each row would otherwise carry its list.
    s = t.select(*(c for c in t.columns if c != "trace"), _step=pairs.unnest())
    return s.select(
        *(c for c in s.columns if c != "_step"),
        source=s._step.a.stage,
        target=s._step.b.stage,
        days=exact_days(s._step.a.at, s._step.b.at),
    )


def discovery(log: EventLog, *, by: str | None = None, top: int | None = None) -> DiscoveryResult:
    """Directly-follows graph and variants, per group.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        top: keep only the `top` most frequent variants per group (shares stay
            shares of all deals).

    Times are calendar days between stage entries.
    """
    deals, groups = group_deals(
        log, log.deals, by=by, reserved=("source", "target", "variant", "deals")
    )
    # Every figure below reads the deals' sorted traces: build them once.
    with with_groups(traces(log), deals, groups).cache() as t:
        variant_frame = _variants(t, groups, top)
        edges, nodes = _graph(t, groups)
    meta = base_meta(
        log,
        by=by,
        groups=groups,
        top=top,
        unit="deals; calendar days",
        **empty_meta(log, variant_frame),
    )
    meta["ordering"] = "events ordered by (entered_at, seq): independent of row order"
    return DiscoveryResult(
        {"variants": variant_frame, "edges": edges, "nodes": nodes},
        meta,
    )


def _variants(t: ir.Table, groups: list[str], top: int | None) -> pd.DataFrame:
    v = variants_of(t)
    variants = v.group_by([*groups, "variant"]).aggregate(
        deals=v.count(),
        n_events=v.n_events.max(),
        median_days=v.days.median(),
        mean_days=v.days.mean(),
    )
    variants = variants.mutate(
        share=variants.deals.cast("float64") / variants.deals.sum().over(group_by=groups),
        rank=ibis.row_number().over(
            ibis.window(group_by=groups, order_by=[ibis.desc("deals"), "variant"])
        ),
    )
    if top is not None:
        variants = variants.filter(variants["rank"] < top)
    frame = to_pandas(variants.order_by([*groups, "rank"]).drop("rank"))
    return frame[[*groups, "variant", "deals", "share", "n_events", "median_days", "mean_days"]]


def _graph(t: ir.Table, groups: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Directly-follows edges (with (start) and (end)) and stage nodes."""
    s = steps_of(t)
    inner = to_pandas(
        s.group_by([*groups, "source", "target"]).aggregate(
            count=s.count(),
            deals=s._key.nunique(),
            median_days=s.days.median(),
            mean_days=s.days.mean(),
            p90_days=s.days.quantile(0.9),
        )
    )
    # Each entry with whether it is its deal's first or last: nodes, (start) and (end).
    n = t.trace.length()
    entries = ibis.range(0, n).map(
        lambda i: ibis.struct(
            {"stage": t.trace[i].stage, "is_first": i == 0, "is_last": i == n - 1}
        )
    )
    u = t.select(*groups, "_key", _e=entries.unnest())
    stages = to_pandas(
        u.group_by([*groups, u._e.stage.name("stage_id")]).aggregate(
            entries=u.count(),
            deals=u._key.nunique(),
            starts=u._e.is_first.cast("int64").sum(),
            ends=u._e.is_last.cast("int64").sum(),
        )
    )
    begin = stages[stages["starts"] > 0].rename(columns={"stage_id": "target"})
    begin = begin.assign(source=START, count=begin["starts"], deals=begin["starts"])
    finish = stages[stages["ends"] > 0].rename(columns={"stage_id": "source"})
    finish = finish.assign(target=END, count=finish["ends"], deals=finish["ends"])
    edges = pd.concat([inner, begin, finish], ignore_index=True)
    cols = ["source", "target", "count", "deals", "median_days", "mean_days", "p90_days"]
    up = [True] * len(groups)
    edges = edges[[*groups, *cols]].sort_values(
        [*groups, "count", "source", "target"], ascending=[*up, False, True, True]
    )
    nodes = stages[[*groups, "stage_id", "entries", "deals"]].sort_values(
        [*groups, "entries", "stage_id"], ascending=[*up, False, True]
    )
    return edges.reset_index(drop=True), nodes.reset_index(drop=True)
