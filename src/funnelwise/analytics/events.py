"""Lean event tables for the analyses.

`EventLog.events` and `.stage_intervals` number every deal's events with a
window; an engine cannot drop a window it does not need, and on millions of
events that sort dominates the cost of a simple count. The tables here carry
only what the analyses use: stage position and kind by a plain join, the
order of events by (entered_at, seq) as a sort key for arg_max/arg_min, and a
single window where a visit's end is needed.
"""

from __future__ import annotations

from dataclasses import replace

import ibis
import ibis.expr.types as ir

from funnelwise.analytics.common import timestamp
from funnelwise.log import EventLog

OUTCOME_KINDS = ("won", "lost", "no_decision")
_TIME_COLUMN = {
    "stage_events": "entered_at",
    "deal_changes": "changed_at",
    "checklist": "done_at",
    "activities": "at",
}


def kept_deal_ids(log: EventLog) -> ir.Table:
    """The deal ids a log keeps (filters, created by its cutoff), without rebuilding
    the deals' values as of the cutoff."""
    deals = replace(log, cutoff=None).deals
    if log.cutoff is not None:
        deals = deals.filter(deals.created_at <= log.cutoff)
    return deals.select("deal_id")


def log_table(log: EventLog, name: str) -> ir.Table:
    """`log.<name>` (stage_events, deal_changes, checklist or activities) as known at
    the log's cutoff: the same rows, but kept deals are found by id alone; the
    EventLog's own tables join the deals as of the cutoff, which costs a rebuild of
    their values that no row filter needs."""
    if log.cutoff is None:
        table: ir.Table = getattr(log, name)
        return table
    t = log.store.table(name)
    t = t.filter(t[_TIME_COLUMN[name]] <= log.cutoff)
    ids = kept_deal_ids(log)
    if name == "activities":
        return t.filter(t.deal_id.isnull() | t.deal_id.isin(ids.deal_id))
    return t.semi_join(ids, "deal_id")


def positioned_events(log: EventLog) -> ir.Table:
    """Stage events with the deal's pipeline and the stage's position and kind
    (deal_id, stage_id, entered_at, seq, pipeline_id, position, kind)."""
    e = log_table(log, "stage_events").select("deal_id", "stage_id", "entered_at", "seq")
    s = log.store.table("stages").select("pipeline_id", "stage_id", "position", "kind")
    pipelines = [log.pipeline_id] if log.pipeline_id else [p.id for p in log.process.pipelines]
    if len(pipelines) == 1:
        # One pipeline: every kept deal is in it, no need to join 10M events to deals
        # (stage_events is already cut to the kept deals).
        e = e.mutate(pipeline_id=ibis.literal(pipelines[0]))
        s = s.filter(s.pipeline_id == pipelines[0])
    else:
        e = e.join(log.deals.select("deal_id", "pipeline_id"), "deal_id")
    return e.join(s, ["pipeline_id", "stage_id"], how="left")


def with_groups(t: ir.Table, deals: ir.Table, groups: list[str]) -> ir.Table:
    """t (with deal_id and pipeline_id) with the group columns added from the deals:
    no join at all when pipeline_id is the only group."""
    extra = [g for g in groups if g not in t.columns]
    return t.join(deals.select("deal_id", *extra), "deal_id") if extra else t


def order_key(e: ir.Table) -> ir.StructValue:
    """The events' order within a deal, (entered_at, seq), as one comparable value."""
    return ibis.struct({"at": e.entered_at, "seq": e.seq})


def current_positions(log: EventLog) -> ir.Table:
    """Per deal: the stage of its last open-stage entry, its position and when it was
    entered (deal_id, stage_id, position, entered_at)."""
    e = positioned_events(log)
    e = e.filter(e.kind == "open")
    key = order_key(e)
    return e.group_by("deal_id").aggregate(
        stage_id=e.stage_id.argmax(key),
        position=e.position.argmax(key),
        entered_at=e.entered_at.argmax(key),
    )


def visits(log: EventLog) -> ir.Table:
    """One row per stage entry: entered_at, left_at, next_stage_id, censored, terminal.

    The same visits as `EventLog.stage_intervals` with one window instead of
    two: a visit ends at the deal's next entry; the last open-stage visit of a
    closed deal without an outcome entry ends at closed_at; the last visit of
    an open deal has no end (censored at `log.now`); outcome visits are
    terminal and end where they start.
    """
    e = positioned_events(log)
    w = ibis.window(group_by="deal_id", order_by=["entered_at", "seq"])
    e = e.mutate(next_stage_id=e.stage_id.lead().over(w), _next_at=e.entered_at.lead().over(w))
    closed = log.deals.select("deal_id", _closed_at="closed_at")
    e = e.join(closed, "deal_id")
    terminal = e.kind.isin(list(OUTCOME_KINDS))
    left_at = ibis.cases(
        (terminal, e.entered_at),
        (e._next_at.notnull(), e._next_at),
        (e._closed_at.notnull(), ibis.greatest(e._closed_at, e.entered_at)),
        else_=ibis.null("timestamp"),
    )
    censored = (~terminal) & e._next_at.isnull() & e._closed_at.isnull()
    return e.mutate(left_at=left_at, censored=censored, terminal=terminal).drop(
        "_next_at", "_closed_at"
    )


def visit_end(log: EventLog, v: ir.Table) -> ir.TimestampValue:
    """When a visit ended, or `log.now` for a visit still running."""
    return v.left_at.fill_null(ibis.greatest(timestamp(log.now), v.entered_at))
