"""Conformance: do deals follow the designed process?

Against the process in process.yaml, per deal: stages skipped on the way
forward (won counts as the stage after the last), moves back to an earlier
stage, re-entries into a stage already visited, and exits where the deal
moved forward without its stage's exit criteria: a required field empty, or a
checklist item without evidence done by the time it left. A deal conforms when
it has none of these. Adherence is reported per group, per owner and team,
and per stage. Moving to lost or no decision is never a violation.

Required fields are checked on the deal as it stands at the log's instant
(`log.as_of` rebuilds amount, close date and owner); the checklist is checked
against the time of each exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.common import (
    MISSING,
    base_meta,
    empty_meta,
    group_deals,
    stage_frame,
    to_pandas,
    union_all,
)
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.stats import ALPHA, rate_columns
from funnelwise.log import EventLog
from funnelwise.log.eventlog import json_text

VIOLATIONS = ("skipped", "backward", "reentries", "exits_missing_criteria")
LIST_LIMIT = 1000
STAGE_COUNTS = (
    "exits",
    "exits_missing_criteria",
    "missing_fields",
    "missing_checklist",
    "skipped_over",
    "moves_back",
)


@dataclass(frozen=True, eq=False)
class ConformanceResult(Result):
    """Frames `summary`, `owners`, `stages` and `deals` (non-conforming deals)."""

    analysis = "conformance"
    title = "Conformance to the process"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "summary": ["deals", "conforming_rate", *VIOLATIONS],
        "owners": ["owner_id", "team", "deals", "conforming_rate"],
        "stages": ["name", *STAGE_COUNTS],
    }
    terminal: ClassVar[tuple[str, ...]] = ("summary", "owners", "stages")

    summary = frame_view(
        "Per group: deals, share conforming (Wilson interval) and deals with each violation."
    )
    owners = frame_view("Per owner and team: deals, share conforming and violations.")
    stages = frame_view(
        "Per stage: forward exits, exits missing a field or a checklist item, times skipped "
        "over, moves back from it."
    )
    deals = frame_view("Non-conforming deals, most violations first (up to list_limit).")


def exit_criteria(log: EventLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Required fields and checklist items per (pipeline, stage) from the process:
    frames (_p, _s, field) and (_p, _s, criterion)."""
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    fields, checks = [], []
    for p in pipelines:
        for s in p.stages:
            fields += [(p.id, s.id, f) for f in s.exit_criteria.fields]
            checks += [(p.id, s.id, c) for c in s.exit_criteria.checklist]
    cols = ["_p", "_s"]
    return (
        pd.DataFrame(fields, columns=[*cols, "field"]),
        pd.DataFrame(checks, columns=[*cols, "criterion"]),
    )


def field_missing(deals: ir.Table, field: ir.StringValue, names: Sequence[str]) -> ir.BooleanValue:
    """Whether the named field is empty on the deal (a column, else an attribute key)."""
    cases = []
    for name in names:
        value = deals[name] if name in deals.columns else json_text(deals.attributes, name)
        cases.append((field == name, value.isnull()))
    return ibis.cases(*cases, else_=True) if cases else ibis.literal(False)


def _moves(log: EventLog) -> ir.Table:
    """Moves out of open stages into an open stage or won, with the next position."""
    e = log.positioned_events
    w = ibis.window(group_by="deal_id", order_by=["entered_at", "seq"])
    e = e.mutate(
        _next_pos=e.position.lead().over(w),
        _next_kind=e.kind.lead().over(w),
        _next_at=e.entered_at.lead().over(w),
    )
    moves = e.filter((e.kind == "open") & e._next_kind.isin(["open", "won"]))
    forward = moves._next_pos > moves.position
    # Only the columns the figures read: the moves are cached, one row per stage exit.
    return moves.select(
        "deal_id",
        "pipeline_id",
        "stage_id",
        "entered_at",
        "seq",
        "position",
        "_next_pos",
        "_next_at",
        _skipped=ibis.ifelse(forward, moves._next_pos - moves.position - 1, 0),
        _back=(moves._next_pos < moves.position).cast("int64"),
        _forward=forward,
    )


def _exit_checks(log: EventLog, moves: ir.Table) -> ir.Table | None:
    """Per forward exit (deal, entry, stage): required fields empty (_mf) and checklist
    items without evidence done by the exit (_mc). None when the process has no criteria."""
    exits = moves.filter(moves._forward).select(
        "deal_id", "pipeline_id", "stage_id", "entered_at", "seq", left_at="_next_at"
    )
    fields, checks = exit_criteria(log)
    keys = ["deal_id", "entered_at", "seq", "stage_id"]
    parts = []
    if len(fields):
        f = ibis.memtable(fields)
        fx = exits.join(f, (exits.pipeline_id == f._p) & (exits.stage_id == f._s))
        fx = fx.join(log.deals.drop("pipeline_id"), "deal_id")
        miss = field_missing(fx, fx.field, sorted(set(fields["field"]))).cast("int64")
        parts.append(fx.group_by(keys).aggregate(_mf=miss.sum(), _mc=ibis.literal(0)))
    if len(checks):
        c = ibis.memtable(checks)
        done = log.checklist.group_by(["deal_id", "stage_id", "criterion"]).aggregate(
            _done=ibis._.done_at.min()
        )
        cx = exits.join(c, (exits.pipeline_id == c._p) & (exits.stage_id == c._s))
        cx = cx.left_join(
            done,
            (cx.deal_id == done.deal_id)
            & (cx.stage_id == done.stage_id)
            & (cx.criterion == done.criterion),
        ).select(cx, "_done")
        miss = (cx._done.isnull() | (cx._done > cx.left_at)).cast("int64")
        parts.append(cx.group_by(keys).aggregate(_mf=ibis.literal(0), _mc=miss.sum()))
    if not parts:
        return None
    m = union_all(*parts)
    return m.group_by(keys).aggregate(_mf=m._mf.sum(), _mc=m._mc.sum())


def deal_conformance(log: EventLog) -> ir.Table:
    """Per deal: skipped (stages jumped over), backward (moves back), reentries,
    exits (forward exits from an open stage), exits_missing_criteria,
    missing_fields and missing_checklist (items missing over all exits), and
    conforming. An Ibis table."""
    moves = _moves(log)
    return _per_deal(log, moves, _exit_checks(log, moves))


def _per_deal(log: EventLog, moves: ir.Table, checked: ir.Table | None) -> ir.Table:
    per_move = moves.group_by("deal_id").aggregate(
        skipped=moves._skipped.sum(),
        backward=moves._back.sum(),
        exits=moves._forward.cast("int64").sum(),
    )
    e = log.positioned_events
    visits = (
        e.filter(e.kind == "open").group_by(["deal_id", "stage_id"]).aggregate(n=ibis._.count())
    )
    reentries = visits.group_by("deal_id").aggregate(reentries=(visits.n - 1).sum())
    parts = [per_move, reentries]
    if checked is not None:
        parts.append(
            checked.group_by("deal_id").aggregate(
                exits_missing_criteria=((checked._mf + checked._mc) > 0).cast("int64").sum(),
                missing_fields=checked._mf.sum(),
                missing_checklist=checked._mc.sum(),
            )
        )
    out = log.deals.select("deal_id")
    for part in parts:
        out = out.left_join(part, "deal_id").select(out, *part.columns[1:])
    counts = [
        "skipped",
        "backward",
        "reentries",
        "exits",
        "exits_missing_criteria",
        "missing_fields",
        "missing_checklist",
    ]
    out = out.mutate(
        **{
            c: out[c].fill_null(0).cast("int64") if c in out.columns else ibis.literal(0)
            for c in counts
        }
    )
    return out.mutate(
        conforming=(out.skipped + out.backward + out.reentries + out.exits_missing_criteria) == 0
    )


def conformance(
    log: EventLog,
    *,
    by: str | None = None,
    list_limit: int | None = LIST_LIMIT,
    alpha: float = ALPHA,
) -> ConformanceResult:
    """Share of deals that follow the process, and where and by whom it is not followed.

    Args:
        log: the event log.
        by: a deal column or attribute key to split the summary by.
        list_limit: at most this many non-conforming deals in `deals` (None: all).
        alpha: 1 - confidence level of the Wilson intervals.
    """
    deals, groups = group_deals(log, log.deals, by=by)
    # The moves (a window over every event) and the exit checks feed both the
    # per-deal and the per-stage figures: evaluate each once.
    with _moves(log).cache() as moves:
        checks = _exit_checks(log, moves)
        if checks is None:
            return _conformance(log, deals, groups, moves, None, list_limit, alpha, by)
        with checks.cache() as checked:
            return _conformance(log, deals, groups, moves, checked, list_limit, alpha, by)


def _conformance(
    log: EventLog,
    deals: ir.Table,
    groups: list[str],
    moves: ir.Table,
    checked: ir.Table | None,
    list_limit: int | None,
    alpha: float,
    by: str | None,
) -> ConformanceResult:
    per = _per_deal(log, moves, checked)
    users = log.store.table("users").select(owner_id="user_id", team="team")
    keyed = deals.select("deal_id", *[g for g in groups if g != "owner_id"], "owner_id")
    j = per.join(keyed, "deal_id")
    j = j.left_join(users, "owner_id").select(j, "team")
    j = j.mutate(owner_id=j.owner_id.fill_null(MISSING), team=j.team.fill_null(MISSING))
    # One row per deal, read three ways: evaluate it once.
    with j.cache() as per_deal:
        summary = _adherence(per_deal, groups, alpha)
        owners = _adherence(per_deal, ["owner_id", "team"], alpha)
        bad = per_deal.filter(~per_deal.conforming)
        total = bad.skipped + bad.backward + bad.reentries + bad.exits_missing_criteria
        listed = bad.mutate(violations=total).order_by([ibis.desc("violations"), "deal_id"])
        if list_limit is not None:
            listed = listed.limit(list_limit)
        deal_list = to_pandas(listed.drop("conforming"))
    stages = _by_stage(log, moves, checked)
    meta = base_meta(
        log,
        by=by,
        groups=groups,
        alpha=alpha,
        list_limit=list_limit,
        unit="deals",
        **empty_meta(log, summary),
    )
    meta["fields_checked"] = "as the deal stands at the log's instant"
    return ConformanceResult(
        {"summary": summary, "owners": owners, "stages": stages, "deals": deal_list}, meta
    )


def _adherence(j: ir.Table, keys: list[str], alpha: float) -> pd.DataFrame:
    """Deals, conforming share (Wilson) and deals with each violation, per key."""
    sums = {v: (j[v] > 0).cast("int64").sum() for v in VIOLATIONS}
    f = to_pandas(
        j.group_by(keys).aggregate(
            deals=j.count(), conforming=j.conforming.cast("int64").sum(), **sums
        )
    ).sort_values(keys)
    rates = rate_columns(f["conforming"], f["deals"], "conforming", alpha=alpha)
    for name, values in rates.items():
        f[name] = values
    return f.drop(columns="conforming_n").reset_index(drop=True)


def _by_stage(log: EventLog, moves: ir.Table, checked: ir.Table | None) -> pd.DataFrame:
    """Per open stage: forward exits, exits missing a field or checklist item, times
    skipped over, moves back from it."""
    f = to_pandas(
        moves.group_by(["pipeline_id", "stage_id"]).aggregate(
            exits=moves._forward.cast("int64").sum(), moves_back=moves._back.sum()
        )
    )
    if checked is not None:
        misses = to_pandas(
            checked.group_by("stage_id").aggregate(
                exits_missing_criteria=((checked._mf + checked._mc) > 0).cast("int64").sum(),
                missing_fields=(checked._mf > 0).cast("int64").sum(),
                missing_checklist=(checked._mc > 0).cast("int64").sum(),
            )
        )
        f = f.merge(misses, on="stage_id", how="left")
    jumps = to_pandas(
        moves.filter(moves._skipped > 0)
        .group_by(["pipeline_id", "position", "_next_pos"])
        .aggregate(n=ibis._.count())
    )
    # Expand each jump a -> b into the stages strictly between (a compact table).
    over = [
        (str(r["pipeline_id"]), p, int(r["n"]))
        for r in jumps.to_dict("records")
        for p in range(int(r["position"]) + 1, int(r["_next_pos"]))
    ]
    # Typed even when empty, so the merge below never holds object columns.
    skipped = pd.DataFrame(over, columns=["pipeline_id", "position", "skipped_over"]).astype(
        {"pipeline_id": "string", "position": "int64", "skipped_over": "int64"}
    )
    skipped = skipped.groupby(["pipeline_id", "position"], as_index=False).sum()
    stages = stage_frame(log, kinds=["open"])[["pipeline_id", "stage_id", "name", "position"]]
    out = stages.merge(f, on=["pipeline_id", "stage_id"], how="left")
    out = out.merge(skipped, on=["pipeline_id", "position"], how="left")
    for c in STAGE_COUNTS:
        out[c] = out[c].fillna(0).astype("int64") if c in out else 0
    return out[["pipeline_id", "stage_id", "name", "position", *STAGE_COUNTS]]
