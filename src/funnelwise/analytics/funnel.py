"""The funnel: deals reaching each stage, with step and cumulative conversion.

A deal *reaches* a stage when it entered that stage or any later one, and a
won deal has reached every stage: so a funnel never widens, and deals that
skipped a stage are counted as reaching it and shown in `skipped`. Every rate
carries its denominator and a Wilson interval. Rates over all deals that
reached a stage count the ones still open there as not (yet) converted, a
floor for those deals; the `decided` rates leave them out, which is right only
if the open ones go on to convert like the decided ones did (not a ceiling:
where losses come sooner than wins, the open ones convert better). For the
censoring-aware answer use `outcomes()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import numpy as np
import pandas as pd

from funnelwise.analytics.common import (
    VALUE,
    base_meta,
    empty_meta,
    group_deals,
    n_open_stages,
    stage_frame,
    to_pandas,
    value_before_close,
)
from funnelwise.analytics.events import with_groups
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.stats import ALPHA, rate_columns
from funnelwise.log import EventLog
from funnelwise.log.eventlog import left_join_on


@dataclass(frozen=True, eq=False)
class FunnelResult(Result):
    """Deals reaching each stage per group; frame `stages`, one row per (group, stage)."""

    analysis = "funnel"
    title = "Funnel"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "stages": [
            "name",
            "reached",
            "skipped",
            "undecided",
            "value",
            "step_rate",
            "decided_rate",
            "cumulative_rate",
            "value_cumulative_rate",
        ]
    }

    stages = frame_view("One row per group and stage (open stages in order, then won).")

    @property
    def groups(self) -> list[str]:
        """The group columns of the frame (pipeline_id first)."""
        return list(self.meta["groups"])


def funnel(
    log: EventLog,
    *,
    by: str | None = None,
    cohort: str | None = None,
    alpha: float = ALPHA,
) -> FunnelResult:
    """Deals reaching each stage, with conversion by count and by value.

    Args:
        log: the event log (filter or cut it first: `log.filter(...)`, `log.as_of(t)`).
        by: a deal column (owner_id, source, product, region, ...) or attribute key
            to split the funnel by.
        cohort: split by creation period: "week", "month", "quarter" or "year".
        alpha: 1 - confidence level of the Wilson intervals.

    Returns one row per (pipeline, segment, cohort, stage) with: `reached`
    (deals), `entered` (deals that really entered the stage), `skipped`,
    `undecided` (still open, this is the furthest they got), `value` (sum of
    amount_base of the deals reached, in the process currency); `step_*` (share of the previous
    row's deals that reached this one), `decided_*` (the same without deals
    still open at the previous stage), `cumulative_*` (share of the first
    stage's deals), each as rate, lower, upper and n (the denominator); and
    `value_step_rate`, `value_cumulative_rate`.
    """
    deals, groups = group_deals(log, log.deals, by=by, cohort=cohort)
    e = log.positioned_events
    opened = e.filter(e.kind == "open")
    furthest = opened.group_by("deal_id").aggregate(_furthest=opened.position.max())
    d = deals.left_join(furthest, deals.deal_id == furthest.deal_id).select(deals, "_furthest")
    # A lost deal brought into the funnel the value it carried before its close, not
    # the 0 an export may book at the loss (see `value_before_close`).
    before = value_before_close(log, log.deals, ["lost", "no_decision"]).rename(_before="value")
    d = left_join_on(d, before, "deal_id")
    lost = d.outcome.isin(["lost", "no_decision"])
    won_position = d.pipeline_id.substitute(n_open_stages(log), else_=ibis.null("int64"))
    won = d.outcome == "won"
    d = d.mutate(
        depth=ibis.ifelse(won, won_position, d._furthest.fill_null(0)).cast("int64"),
        _value=ibis.ifelse(lost, ibis.coalesce(d._before, d[VALUE]), d[VALUE]).fill_null(0.0),
        _open=d.outcome.isnull().cast("int64"),
    )
    hist = to_pandas(
        d.group_by([*groups, "depth"]).aggregate(
            n=d.count(), value=d._value.sum(), undecided=d._open.sum()
        )
    )
    entered_q = with_groups(
        opened.select("deal_id", "pipeline_id", "stage_id").distinct(), deals, groups
    )
    entered = to_pandas(entered_q.group_by([*groups, "stage_id"]).aggregate(entered=ibis._.count()))
    frame = _assemble(log, hist, entered, groups, alpha)
    meta = base_meta(
        log,
        by=by,
        cohort=cohort,
        alpha=alpha,
        groups=groups,
        unit="deals",
        **empty_meta(log, frame),
    )
    meta["counting"] = (
        "a deal reaches a stage when it entered it or any later stage; won deals "
        "reached every stage"
    )
    return FunnelResult({"stages": frame}, meta)


def _assemble(
    log: EventLog,
    hist: pd.DataFrame,
    entered: pd.DataFrame,
    groups: list[str],
    alpha: float,
) -> pd.DataFrame:
    """Turn the per-depth histogram into the funnel table (compact: groups × stages)."""
    stages = stage_frame(log, kinds=["open", "won"])[
        ["pipeline_id", "stage_id", "name", "position"]
    ]
    keys = hist[groups].drop_duplicates()
    grid = keys.merge(stages, on="pipeline_id").sort_values([*groups, "position"], kind="stable")
    at = hist.rename(columns={"depth": "position"})
    grid = grid.merge(at, on=[*groups, "position"], how="left")
    grid[["n", "value", "undecided"]] = grid[["n", "value", "undecided"]].fillna(0)
    # Reaching a stage = ending at it or any later one: a reverse cumulative sum.
    rev = grid.iloc[::-1].groupby(groups, sort=False, dropna=False)
    grid["reached"] = rev["n"].cumsum().iloc[::-1].astype("int64")
    grid["value"] = rev["value"].cumsum().iloc[::-1]
    grid = grid.merge(entered, on=[*groups, "stage_id"], how="left")
    # Only won deals end beyond the last open stage: they all entered the won row.
    is_won = grid["position"] == grid["pipeline_id"].map(n_open_stages(log))
    grid["entered"] = np.where(is_won, grid["n"], grid["entered"])
    grid["entered"] = grid["entered"].fillna(0).astype("int64")
    grid["skipped"] = grid["reached"] - grid["entered"]
    grid["undecided"] = grid["undecided"].astype("int64")
    g = grid.groupby(groups, sort=False, dropna=False)
    prev_reached = g["reached"].shift(1)
    prev_open = g["undecided"].shift(1)
    first_reached = g["reached"].transform("first")
    prev_value = g["value"].shift(1)
    first_value = g["value"].transform("first")
    cols = {
        **rate_columns(grid["reached"], prev_reached, "step", alpha=alpha),
        **rate_columns(grid["reached"], prev_reached - prev_open, "decided", alpha=alpha),
        **rate_columns(grid["reached"], first_reached, "cumulative", alpha=alpha),
    }
    out = grid[[*groups, "stage_id", "name", "position", "reached", "entered", "skipped"]].copy()
    out["undecided"] = grid["undecided"]
    out["value"] = grid["value"]
    for name, values in cols.items():
        out[name] = values
    with np.errstate(divide="ignore", invalid="ignore"):
        out["value_step_rate"] = np.where(prev_value > 0, grid["value"] / prev_value, np.nan)
        out["value_cumulative_rate"] = np.where(
            first_value > 0, grid["value"] / first_value, np.nan
        )
    for name in ("step_n", "decided_n", "cumulative_n"):
        out[name] = out[name].astype("Int64")
    return out.reset_index(drop=True)
