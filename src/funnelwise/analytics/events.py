"""Shared pieces of the analyses' event tables.

The tables themselves live on the EventLog (`positioned_events`, `events`,
`stage_intervals`), built once per log; here are the few expressions the
analyses add on top: group columns, the order of events as one sort key for
arg_max/arg_min (cheaper than a window over millions of events), the current
stage of each deal and the end of a visit.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from funnelwise.analytics.common import timestamp
from funnelwise.log import EventLog


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
    e = log.positioned_events
    e = e.filter(e.kind == "open")
    key = order_key(e)
    return e.group_by("deal_id").aggregate(
        stage_id=e.stage_id.argmax(key),
        position=e.position.argmax(key),
        entered_at=e.entered_at.argmax(key),
    )


def visit_end(log: EventLog, v: ir.Table) -> ir.TimestampValue:
    """When a visit ended, or `log.now` for a visit still running."""
    return v.left_at.fill_null(ibis.greatest(timestamp(log.now), v.entered_at))
