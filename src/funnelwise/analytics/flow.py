"""Pipeline flow between two dates: a waterfall whose parts add up exactly.

The pipeline at an instant is the open deals as known then (`log.as_of`),
optionally only those at or beyond a stage (`stage=`) and expected to close
in a period (`close_from`/`close_until`). Between `start` and `end` each
deal's value in the pipeline goes from v0 (at start) through vB (just before
it closed, or at end if still open) to v1 (at end), and each step is booked
to exactly one part:

- v0 -> vB: created (the deal did not exist at start), advanced / moved back
  (it crossed the `stage=` threshold; steps only with `stage=`), pulled in /
  pushed out (its close date entered / left the period; steps only with a
  close period), amount changed (in the pipeline throughout);
- vB -> v1: won, lost or no decision (it closed in between).

So start + parts = end, to the cent (values are summed in whole cents).
`movements` lists, for deals open at start, every stage move and close-date
change regardless of whether it changed the pipeline's total.
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
    empty_meta,
    group_deals,
    n_open_stages,
    resolve_stage,
    stage_frame,
    to_pandas,
    value_before_close,
)
from funnelwise.analytics.events import current_positions
from funnelwise.analytics.result import Result, frame_view
from funnelwise.errors import InputError
from funnelwise.log import EventLog
from funnelwise.log.eventlog import left_join_on
from funnelwise.timeutil import Instant, to_timestamp

STEPS = (
    "start",
    "created",
    "advanced",
    "moved_back",
    "pulled_in",
    "pushed_out",
    "amount_changed",
    "won",
    "lost",
    "no_decision",
    "end",
)
MOVES = ("advanced", "moved_back", "pulled_in", "pushed_out")


@dataclass(frozen=True, eq=False)
class FlowResult(Result):
    """Frames `waterfall` (one row per group and step) and `movements`."""

    analysis = "flow"
    title = "Pipeline flow"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "waterfall": ["step", "deals", "value", "running_value"],
    }

    waterfall = frame_view(
        "Per group: start, each part (deals and value, signed) and end, with the running total."
    )
    movements = frame_view(
        "Per group: deals open at start that advanced, moved back, were pulled in or pushed "
        "out (count, value at end, days moved)."
    )


def _cents(value: ir.FloatingValue) -> ir.IntegerValue:
    return (value.fill_null(0.0) * 100).round().cast("int64")


def _state(log: EventLog, t: pd.Timestamp, prefix: str, *, before_close: bool = False) -> ir.Table:
    """Per deal known at t: open?, stage position, value in cents (with `before_close`,
    a closed deal's value just before its close), expected close date."""
    cut = log.as_of(t)
    d = cut.deals
    pos = current_positions(cut).select("deal_id", _position="position")
    j = d.left_join(pos, d.deal_id == pos.deal_id).select(d, "_position")
    value = j[VALUE]
    if before_close:
        # An export booking 0 at a loss would otherwise show the loss as an amount change.
        before = value_before_close(cut, d).rename(_before="value")
        j = left_join_on(j, before, "deal_id")
        value = ibis.ifelse(j.outcome.isnull(), j[VALUE], ibis.coalesce(j._before, j[VALUE]))
    return j.select(
        "deal_id",
        **{
            f"{prefix}open": j.outcome.isnull(),
            f"{prefix}pos": j._position.fill_null(0),
            f"{prefix}cents": _cents(value),
            f"{prefix}close": j.expected_close_date,
        },
    )


def flow(
    log: EventLog,
    *,
    start: Instant,
    end: Instant,
    by: str | None = None,
    stage: str | None = None,
    close_from: Instant | None = None,
    close_until: Instant | None = None,
) -> FlowResult:
    """How the open pipeline went from `start` to `end`, part by part.

    Args:
        log: the event log.
        start, end: the two instants (naive UTC), start before end.
        by: a deal column or attribute key to split by (its value at end).
        stage: count only deals at or beyond this stage (then advanced and
            moved back are the deals crossing it).
        close_from, close_until: count only deals expected to close in
            [close_from, close_until) (then pulled in and pushed out are the
            deals whose close date entered or left it).

    Values are amount_base in the process currency, as known at each instant.
    """
    t0 = to_timestamp(start, name="start")
    t1 = to_timestamp(end, name="end")
    if t1 <= t0:
        raise InputError(f"end ({t1}) must be after start ({t0})")
    min_pos = None
    if stage is not None:
        sid = resolve_stage(log, stage)
        st = stage_frame(log, kinds=["open"])
        min_pos = int(st.loc[st["stage_id"] == sid, "position"].iloc[0])
    lo = to_timestamp(close_from, name="close_from").date() if close_from else None
    hi = to_timestamp(close_until, name="close_until").date() if close_until else None

    later = log.as_of(t1)
    deals, groups = group_deals(
        later, later.deals, by=by, reserved=("step", "move", "value", "deals")
    )
    d = deals.select(*groups, "deal_id", "created_at", "closed_at", "outcome")
    # Deals closed by start drop out below: only the end needs values before a close.
    s0 = _state(log, t0, "a_")
    s1 = _state(log, t1, "b_", before_close=True)
    j = d.left_join(s0, d.deal_id == s0.deal_id).select(d, *s0.columns[1:])
    j = j.join(s1, "deal_id")
    # Deals closed by start are in neither pipeline.
    j = j.filter(j.closed_at.isnull() | (j.closed_at > t0))

    def member(
        open_: ir.BooleanValue, pos: ir.IntegerValue, close: ir.DateValue
    ) -> ir.BooleanValue:
        m = open_.fill_null(False)
        if min_pos is not None:
            m = m & (pos >= min_pos)
        if lo is not None:
            m = m & (close >= lo).fill_null(False)
        if hi is not None:
            m = m & (close < hi).fill_null(False)
        return m

    existed = j.created_at <= t0
    in0 = existed & member(j.a_open, j.a_pos, j.a_close)
    # Just before closing (or at end), the deal was open with its end-state fields.
    in_b = member(ibis.literal(True), j.b_pos, j.b_close)
    v0 = ibis.ifelse(in0, j.a_cents, 0)
    vb = ibis.ifelse(in_b, j.b_cents, 0)
    crossed_stage = (
        ibis.literal(False) if min_pos is None else (j.a_pos >= min_pos) != (j.b_pos >= min_pos)
    )
    move = ibis.cases(
        (~existed, "created"),
        (in0 & in_b, "amount_changed"),
        (in0 & crossed_stage, "moved_back"),
        (in0, "pushed_out"),
        (in_b & crossed_stage, "advanced"),
        (in_b, "pulled_in"),
        else_=ibis.null("string"),
    )
    closed = j.outcome.notnull()
    j = j.mutate(
        _v0=v0,
        _vb=vb,
        _in0=in0.cast("int64"),
        _inb=in_b.cast("int64"),
        _move=move,
        _close=ibis.ifelse(closed, j.outcome, ibis.null("string")),
        _in1=(in_b & ~closed).cast("int64"),
        _v1=ibis.ifelse(closed, 0, vb),
    )
    # One row per deal in the window, read four ways: evaluate it once.
    with j.cache() as per_deal:
        levels, moves, closes = _parts(per_deal, groups)
        movements = _movements(per_deal, groups)
    pipelines = list(n_open_stages(log))
    # Crossing the stage threshold or the close period is a step only when one is
    # set; without it those rows would always read 0 beside `movements`' counts.
    skip = set(() if min_pos is not None else ("advanced", "moved_back"))
    skip |= set(() if lo is not None or hi is not None else ("pulled_in", "pushed_out"))
    steps = tuple(s for s in STEPS if s not in skip)
    waterfall = _waterfall(levels, pd.concat([moves, closes]), groups, pipelines, steps)
    movements = _movements(j, groups)
    meta = base_meta(
        log,
        by=by,
        groups=groups,
        start=t0,
        end=t1,
        stage=stage,
        close_from=lo,
        close_until=hi,
        unit=f"deals; value in {log.process.currency}",
        **empty_meta(log, movements),
    )
    meta["accounting"] = "start + parts = end exactly (values summed in whole cents)"
    return FlowResult({"waterfall": waterfall, "movements": movements}, meta)


def _parts(j: ir.Table, groups: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Start and end levels, and the moves and closes between, per group."""
    levels = to_pandas(
        j.group_by(groups).aggregate(
            start_n=j._in0.sum(), start_c=j._v0.sum(), end_n=j._in1.sum(), end_c=j._v1.sum()
        )
    )
    moves = to_pandas(
        j.filter(j._move.notnull())
        .group_by([*groups, "_move"])
        .aggregate(n=(j._inb - j._in0).sum(), c=(j._vb - j._v0).sum())
        .rename(step="_move")
    )
    closes = to_pandas(
        j.filter(j._close.notnull() & (j._inb == 1))
        .group_by([*groups, "_close"])
        .aggregate(n=-j._inb.sum(), c=-j._vb.sum())
        .rename(step="_close")
    )
    return levels, moves, closes


def _waterfall(
    levels: pd.DataFrame,
    parts: pd.DataFrame,
    groups: list[str],
    pipelines: list[str],
    steps: Sequence[str] = STEPS,
) -> pd.DataFrame:
    if levels.empty and groups == ["pipeline_id"]:
        # No deal at all in the window: every pipeline flows from 0 to 0.
        zeros = {"start_n": 0, "start_c": 0, "end_n": 0, "end_c": 0}
        levels = pd.DataFrame({"pipeline_id": pipelines, **zeros})
    rows = []
    for level in levels.to_dict("records"):
        label = {g: level[g] for g in groups}
        mine = parts
        for g in groups:
            mine = mine[mine[g] == label[g]]
        sums = mine.groupby("step")[["n", "c"]].sum().astype("int64")
        by_step: dict[str, tuple[int, int]] = dict(
            zip(
                sums.index.astype(str),
                zip(sums["n"].tolist(), sums["c"].tolist(), strict=True),
                strict=True,
            )
        )
        by_step["start"] = (int(level["start_n"]), int(level["start_c"]))
        by_step["end"] = (int(level["end_n"]), int(level["end_c"]))
        for step in steps:
            n, c = by_step.get(step, (0, 0))
            rows.append(label | {"step": step, "deals": n, "cents": c})
    frame = pd.DataFrame(rows, columns=[*groups, "step", "deals", "cents"])
    frame["value"] = frame["cents"] / 100
    running = frame["cents"].where(frame["step"] != "end", 0).astype("int64")
    frame["running_value"] = running.groupby([frame[g] for g in groups]).cumsum() / 100
    frame.loc[frame["step"] == "end", "running_value"] = frame["value"]
    return frame


def _movements(j: ir.Table, groups: list[str]) -> pd.DataFrame:
    """Moves of deals open at start, whether or not they changed the pipeline total."""
    m = j.filter(j.a_open.fill_null(False))
    days = (m.b_close.delta(m.a_close, unit="day")).cast("float64")
    flags = {
        "advanced": m.b_pos > m.a_pos,
        "moved_back": m.b_pos < m.a_pos,
        "pulled_in": m.b_close < m.a_close,
        "pushed_out": m.b_close > m.a_close,
    }
    aggs = {}
    for name, flag in flags.items():
        f = flag.fill_null(False)
        aggs[f"{name}_n"] = f.cast("int64").sum()
        aggs[f"{name}_c"] = ibis.ifelse(f, m.b_cents, 0).sum()
    aggs["pulled_in_days"] = (-days).sum(where=flags["pulled_in"].fill_null(False))
    aggs["pushed_out_days"] = days.sum(where=flags["pushed_out"].fill_null(False))
    wide = to_pandas(m.group_by(groups).aggregate(**aggs))
    rows = []
    for rec in wide.to_dict("records"):
        label = {g: rec[g] for g in groups}
        for name in MOVES:
            moved_days = rec.get(f"{name}_days")
            rows.append(
                label
                | {
                    "move": name,
                    "deals": int(rec[f"{name}_n"] or 0),
                    "value": (rec[f"{name}_c"] or 0) / 100,
                    "days": float(moved_days) if moved_days is not None else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=[*groups, "move", "deals", "value", "days"])
