"""The pipeline as of a date: open deals per stage, their value and weighted value.

Built on `log.as_of(t)`: deals created later are absent, outcomes reached
later are unknown, amounts and close dates are the values they had at `t`.
The weighted value multiplies each deal's value by its stage's probability
from process.yaml: the baseline CRMs show, kept here to be measured against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import ibis
import pandas as pd

from funnelwise.analytics.common import (
    MISSING,
    VALUE,
    base_meta,
    elapsed_days,
    empty_meta,
    group_deals,
    stage_frame,
    timestamp,
    to_pandas,
)
from funnelwise.analytics.events import current_positions
from funnelwise.analytics.result import Result, frame_view
from funnelwise.log import EventLog
from funnelwise.timeutil import Instant


@dataclass(frozen=True, eq=False)
class SnapshotResult(Result):
    """Frames `stages` (open deals per group and stage) and `totals` (per group)."""

    analysis = "snapshot"
    title = "Pipeline snapshot"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "stages": [
            "name",
            "deals",
            "value",
            "weighted_value",
            "mean_days_in_stage",
            "over_target",
            "past_close_date",
        ],
    }

    stages = frame_view("Open deals per group and current stage, in process order.")
    totals = frame_view("Open deals, value and weighted value per group.")


def snapshot(
    log: EventLog,
    *,
    as_of: Instant | None = None,
    by: str | None = None,
) -> SnapshotResult:
    """Open deals per stage as known at `as_of` (default: the log's own instant).

    Returns per group and stage: deals, value (amount_base, process currency),
    weighted_value (value × the stage's probability), mean_days_in_stage,
    mean_age_days (since creation), over_target (deals in the stage longer than
    its target_days), past_close_date (expected close date before as_of) and
    with_close_date (deals that have an expected close date at all).
    Open deals without any stage entry are counted under stage '(missing)'.
    """
    cut = log.as_of(as_of) if as_of is not None else log
    deals, groups = group_deals(cut, cut.deals, by=by)
    now = timestamp(cut.now)
    open_deals = deals.filter(deals.outcome.isnull())
    pos = current_positions(cut)
    j = open_deals.left_join(pos, open_deals.deal_id == pos.deal_id).select(
        open_deals, "stage_id", "entered_at"
    )
    stages = stage_frame(cut, kinds=["open"])
    probability = ibis.memtable(
        stages[["pipeline_id", "stage_id", "probability", "target_days"]].rename(
            columns={"pipeline_id": "_p", "stage_id": "_s"}
        )
    )
    j = j.left_join(probability, (j.pipeline_id == probability._p) & (j.stage_id == probability._s))
    value = j[VALUE].fill_null(0.0)
    in_stage = elapsed_days(j.entered_at, now)
    j = j.mutate(
        stage_id=j.stage_id.fill_null(MISSING),
        _value=value,
        _weighted=value * j.probability.fill_null(0.0),
        _in_stage=in_stage,
        _age=elapsed_days(j.created_at, now),
        _over=(in_stage > j.target_days).fill_null(False).cast("int64"),
        _past=(j.expected_close_date < now.date()).fill_null(False).cast("int64"),
        _dated=j.expected_close_date.notnull().cast("int64"),
    )
    agg = to_pandas(
        j.group_by([*groups, "stage_id"]).aggregate(
            deals=j.count(),
            value=j._value.sum(),
            weighted_value=j._weighted.sum(),
            mean_days_in_stage=j._in_stage.mean(),
            mean_age_days=j._age.mean(),
            over_target=j._over.sum(),
            past_close_date=j._past.sum(),
            with_close_date=j._dated.sum(),
        )
    )
    frame = _with_every_stage(agg, stages, groups)
    # Without a probability (or target time) in process.yaml a stage has no weighted
    # value (or overrun): unknown, not 0. A total is unknown only when every stage is.
    info = stages.set_index(["pipeline_id", "stage_id"])
    key = pd.MultiIndex.from_frame(frame[["pipeline_id", "stage_id"]])
    frame["weighted_value"] = frame["weighted_value"].where(
        info["probability"].reindex(key).notna().to_numpy()
    )
    frame["over_target"] = (
        frame["over_target"]
        .astype("float64")
        .where(info["target_days"].reindex(key).notna().to_numpy())
    )
    totals = (
        frame.groupby(groups, sort=True, dropna=False)[
            [
                "deals",
                "value",
                "weighted_value",
                "over_target",
                "past_close_date",
                "with_close_date",
            ]
        ]
        .sum(min_count=1)
        .reset_index()
    )
    counts = ["deals", "past_close_date", "with_close_date"]
    totals[counts] = totals[counts].fillna(0).astype("int64")
    meta = base_meta(
        cut,
        by=by,
        groups=groups,
        unit=f"deals; value in {cut.process.currency}",
        **empty_meta(cut, frame),
    )
    meta["weighting"] = "value × the stage probability in process.yaml (the CRM baseline)"
    return SnapshotResult({"stages": frame, "totals": totals}, meta)


def _with_every_stage(agg: pd.DataFrame, stages: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    """Every open stage of each group's pipeline, zero where no deal sits, in order."""
    keys = agg[groups].drop_duplicates()
    grid = keys.merge(stages[["pipeline_id", "stage_id", "name", "position"]], on="pipeline_id")
    frame = grid.merge(agg, on=[*groups, "stage_id"], how="outer")
    counts = ["deals", "over_target", "past_close_date", "with_close_date"]
    frame[counts] = frame[counts].fillna(0).astype("int64")
    frame[["value", "weighted_value"]] = frame[["value", "weighted_value"]].fillna(0.0)
    frame["name"] = frame["name"].fillna(frame["stage_id"])
    frame["position"] = frame["position"].fillna(len(stages)).astype("int64")
    cols = [
        *groups,
        "stage_id",
        "name",
        "position",
        "deals",
        "value",
        "weighted_value",
        "mean_days_in_stage",
        "mean_age_days",
        "over_target",
        "past_close_date",
        "with_close_date",
    ]
    return frame[cols].sort_values([*groups, "position"], kind="stable").reset_index(drop=True)
