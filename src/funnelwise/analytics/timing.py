"""Time: how long deals spend in each stage, and how long they take to be won.

Time in stage is per visit: a deal that went back and entered the stage again
counts each stay. Visits still running are censored at `log.now`: their time
so far is a lower bound, so the distribution is Kaplan–Meier, not a plain
median of finished visits (which would favour fast deals). A deal's total
over all its visits cannot be estimated that way: an open deal that left the
stage may come back, so its total so far is neither final nor a censored
time (taking it as final biased medians low by up to a fifth on synthetic
logs with known truth; censoring it biased them high). Cycle time to won is
censoring-aware too:
the day by which half (three quarters, ...) of the deals that will be won are
won, read off the Aalen–Johansen incidence of winning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from funnelwise.analytics.common import (
    check_choice,
    elapsed_days,
    group_deals,
    iter_groups,
    require_rows,
    stage_frame,
    survival_meta,
    to_pandas,
)
from funnelwise.analytics.events import visit_end
from funnelwise.analytics.outcomes import CREATED, outcome_day_counts
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.stats import (
    ALPHA,
    OUTCOME_CODES,
    DurationSummary,
    cumulative_incidence,
    incidence_quantile,
    summarize_durations,
)
from funnelwise.log import EventLog
from funnelwise.log.eventlog import left_join_on

# Durations are pooled to the hour before the survival fits: exact enough for
# days-scale questions and a compact input whatever the number of deals. Whether
# a deal is past its stage's target is decided before pooling, on the exact
# duration: 7.01 days would round to 7 and not count against a 7-day target.
RESOLUTION_PER_DAY = 24

METHOD = (
    "Kaplan–Meier over visits to a stage, visits still running censored; time to won "
    "from the Aalen–Johansen incidence of winning"
)


@dataclass(frozen=True, eq=False)
class TimingResult(Result):
    """Frames `stages` (time in stage), `cycle` (time to won / to close) and
    `distribution` (visits per whole day in stage)."""

    analysis = "timing"
    title = "Time in stage"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "stages": [
            "name",
            "deals",
            "visits",
            "still_in_stage",
            "median",
            "p75",
            "p90",
            "mean",
            "target_days",
            "over_target",
        ],
        "cycle": [
            "deals",
            "open",
            "won",
            "won_median",
            "won_p90",
            "won_median_naive",
            "close_median",
        ],
    }
    percent: ClassVar[frozenset[str]] = frozenset({"over_target"})
    terminal: ClassVar[tuple[str, ...]] = ("stages", "cycle")

    stages = frame_view(
        "Per group and open stage: Kaplan–Meier quantiles, mean, share over target."
    )

    cycle = frame_view("Per group: time to won (censoring-aware and naive) and time to close.")

    distribution = frame_view(
        "Per group, stage and whole day in stage (rounded up): finished and ongoing visits."
    )


def visit_times(log: EventLog, *, days: str = "calendar") -> ir.Table:
    """Per visit to an open stage: its days (an Ibis table).

    Columns: deal_id, pipeline_id, stage_id, days, t (days pooled to the hour, the
    input of the survival fits), censored (the visit is still running at `log.now`,
    so `days` is time so far).
    """
    check_choice(days, ["calendar", "business"], "days")
    v = log.stage_intervals
    v = v.filter(v.kind == "open")
    v = v.select(
        "deal_id",
        "pipeline_id",
        "stage_id",
        days=elapsed_days(v.entered_at, visit_end(log, v), days).clip(lower=0),
        censored=v.censored,
    )
    return v.mutate(t=(v.days * RESOLUTION_PER_DAY).round() / RESOLUTION_PER_DAY)


def visit_summaries(log: EventLog, *, days: str = "calendar") -> pd.DataFrame:
    """Per pipeline and open stage with a visit: the Kaplan–Meier summary of a
    visit's days, visits still running censored (columns pipeline_id, stage_id
    and the fields of `DurationSummary`; no target)."""
    v = visit_times(log, days=days)
    pooled = to_pandas(
        v.group_by(["pipeline_id", "stage_id", "t", "censored"]).aggregate(n=v.count())
    )
    rows = [
        {"pipeline_id": p, "stage_id": s}
        | asdict(summarize_durations(part["t"], part["censored"], part["n"]))
        for (p, s), part in pooled.groupby(["pipeline_id", "stage_id"], sort=True)
    ]
    columns = ["pipeline_id", "stage_id", *DurationSummary.__dataclass_fields__]
    return pd.DataFrame(rows, columns=columns)


# S(t) comes from a sum of logarithms, which can land a hair above 1/2 where the
# product is exactly 1/2 (2 of 4 ended); `summarize_durations` allows 1e-12, the
# engine's sum, in whatever order it runs, gets a wider margin.
_HALF = 0.5 + 1e-9


def km_medians(durations: ir.Table, by: Sequence[str]) -> ir.Table:
    """Per group of `by`: the Kaplan–Meier median of `t` (an Ibis table, all in SQL).

    `durations` has the `by` columns, `t` (a duration, in any unit) and `censored`
    (the duration is a lower bound). Columns: the `by` columns and `median`, in
    the unit of `t`: the smallest `t` where S(t) <= 1/2, as `summarize_durations`
    reads it; null while S stays above 1/2 (fewer than half ended, censored ones
    discounted). At a `t` shared by endings and censorings, the censored ones are
    still at risk, the usual convention.

    An expression and not a fit in Python, so it runs inside a larger query: the
    scoring snapshots of many instants run as one query (`run_as_of`).
    """
    keys = list(by)
    c = durations.group_by([*keys, "t"]).aggregate(
        _here=durations.count().cast("float64"),
        _ended=(~durations.censored).cast("float64").sum(),
    )
    # At risk at t: every duration of t or longer, a running sum from the longest down.
    longest_first = ibis.cumulative_window(group_by=keys, order_by=ibis.desc("t"))
    c = c.mutate(_at_risk=c._here.sum().over(longest_first))
    survive = 1.0 - c._ended / c._at_risk
    # S(t) = product of (1 - d/n) up to t, as exp of a running sum of logs; a factor
    # of 0 (all at risk ended) would have no logarithm, so it is tracked on its own.
    shortest_first = ibis.cumulative_window(group_by=keys, order_by="t")
    c = c.mutate(
        _log_s=ibis.ifelse(survive > 0, survive, 1.0).ln().sum().over(shortest_first),
        _zero=(survive <= 0).cast("int64").max().over(shortest_first),
    )
    reached = (c._zero > 0) | (c._log_s.exp() <= _HALF)
    return c.group_by(keys).aggregate(median=c.t.min(where=reached))


def visit_medians(log: EventLog, *, days: str = "calendar") -> ir.Table:
    """Per pipeline and open stage with a visit: the Kaplan–Meier median days of a
    visit, visits still running censored (an Ibis table: pipeline_id, stage_id,
    median; null while fewer than half have ended). The median of
    `visit_summaries`, computed in the engine."""
    return km_medians(visit_times(log, days=days), ["pipeline_id", "stage_id"])


def time_in_stage(log: EventLog, *, days: str = "calendar") -> ir.Table:
    """Per deal and open stage: total days in the stage over all visits (an Ibis table).

    Columns: deal_id, pipeline_id, stage_id, visits, days, censored (the deal
    is still in the stage at `log.now`, so `days` is time so far). A record of
    what happened, not a sample to estimate from: see the module docstring.
    """
    v = visit_times(log, days=days)
    return v.group_by(["deal_id", "pipeline_id", "stage_id"]).aggregate(
        visits=v.count(),
        days=v.days.sum(),
        censored=v.censored.any(),
    )


def timing(
    log: EventLog,
    *,
    by: str | None = None,
    cohort: str | None = None,
    days: str = "calendar",
    alpha: float = ALPHA,
) -> TimingResult:
    """Time in each stage and cycle time to won, with deals still running censored.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        cohort: split by creation period ("week", "month", "quarter", "year").
        days: "calendar" or "business" days (Mon–Fri, no holidays).
        alpha: 1 - confidence level of the intervals.

    `stages` has per group and stage: deals (that entered it), visits,
    still_in_stage (visits running now), median (with interval), p75, p90,
    mean (restricted mean), target_days, over_target (estimated share of
    visits longer than the target, with interval) and over_target_now (visits
    whose exact time, finished or so far, is longer than the target). Times in
    days, per visit.
    """
    deals, groups = group_deals(log, log.deals, by=by, cohort=cohort)
    visits = visit_times(log, days=days).drop("pipeline_id")
    j = visits.join(deals.select("deal_id", *groups), "deal_id")
    # Float even when no stage sets a target: an all-empty column would be typed null.
    targets = ibis.memtable(
        stage_frame(log, kinds=["open"])[["pipeline_id", "stage_id", "target_days"]].astype(
            {"target_days": "float64"}
        )
    )
    j = left_join_on(j, targets, ["pipeline_id", "stage_id"])
    m = j.mutate(_over=(j.days > j.target_days).fill_null(False).cast("int64"))
    pooled = to_pandas(
        m.group_by([*groups, "stage_id", "t", "censored"]).aggregate(
            n=m.count(), over=m._over.sum()
        )
    )
    require_rows(pooled, log, "timing", "stage entries")
    entered = to_pandas(j.group_by([*groups, "stage_id"]).aggregate(deals=j.deal_id.nunique()))
    stages = _stage_table(log, pooled, entered, groups, alpha)
    distribution = _distribution(pooled, groups)
    counts = outcome_day_counts(log, deals, groups, from_stages=False, days=days)
    cycle = _cycle(counts[counts["scope"] == CREATED], groups, alpha)
    meta = survival_meta(log, groups, by=by, cohort=cohort, alpha=alpha, days=days)
    meta["method"] = METHOD
    return TimingResult({"stages": stages, "cycle": cycle, "distribution": distribution}, meta)


def _stage_table(
    log: EventLog, pooled: pd.DataFrame, entered: pd.DataFrame, groups: list[str], alpha: float
) -> pd.DataFrame:
    stages = stage_frame(log, kinds=["open"])[
        ["pipeline_id", "stage_id", "name", "position", "target_days"]
    ]
    rows = []
    for label, part in iter_groups(pooled, [*groups, "stage_id"]):
        target = stages.loc[
            (stages["pipeline_id"] == label["pipeline_id"])
            & (stages["stage_id"] == label["stage_id"]),
            "target_days",
        ]
        target_days = float(target.iloc[0]) if len(target) and pd.notna(target.iloc[0]) else None
        s = summarize_durations(
            part["t"], part["censored"], part["n"], target=target_days, alpha=alpha
        )
        over_now = int(part["over"].sum())
        rows.append(label | asdict(s) | {"over_target_now": over_now})
    summary = pd.DataFrame(rows)
    out = stages.merge(summary, on=["pipeline_id", "stage_id"], how="inner")
    out = out.rename(columns={"n": "visits", "n_censored": "still_in_stage"})
    out = out.merge(entered, on=[*groups, "stage_id"], how="left")
    cols = [
        *groups,
        "stage_id",
        "name",
        "position",
        "deals",
        "visits",
        "still_in_stage",
        "median",
        "median_lower",
        "median_upper",
        "p75",
        "p90",
        "mean",
        "target_days",
        "over_target",
        "over_target_lower",
        "over_target_upper",
        "over_target_now",
    ]
    return out[cols].sort_values([*groups, "position"], kind="stable").reset_index(drop=True)


def _distribution(pooled: pd.DataFrame, groups: list[str]) -> pd.DataFrame:
    p = pooled.assign(day=np.ceil(pooled["t"]).astype("int64"))
    p["finished"] = np.where(p["censored"], 0, p["n"])
    p["ongoing"] = np.where(p["censored"], p["n"], 0)
    out = p.groupby([*groups, "stage_id", "day"], sort=True, dropna=False)[
        ["finished", "ongoing"]
    ].sum()
    return out.reset_index()


def _cycle(counts: pd.DataFrame, groups: list[str], alpha: float) -> pd.DataFrame:
    """Time to won (censoring-aware and among won deals only) and to any close."""
    won_code = OUTCOME_CODES["won"]
    rows = []
    for label, part in iter_groups(counts, groups):
        row: dict[str, object] = dict(label)
        curve = cumulative_incidence(part["day"], part["code"], part["n"], alpha=alpha)
        won_curve = curve[curve["outcome"] == "won"]
        won = part[part["code"] == won_code]
        row["won"] = int(won["n"].sum())
        row["won_median"] = incidence_quantile(won_curve, 0.5)
        row["won_p75"] = incidence_quantile(won_curve, 0.75)
        row["won_p90"] = incidence_quantile(won_curve, 0.9)
        row["won_median_naive"] = _weighted_median(won["day"], won["n"])
        close = summarize_durations(part["day"], part["code"] == 0, part["n"], alpha=alpha)
        row["close_median"] = close.median
        row["close_median_lower"] = close.median_lower
        row["close_median_upper"] = close.median_upper
        row["close_p90"] = close.p90
        row["deals"] = close.n
        row["open"] = close.n_censored
        rows.append(row)
    return pd.DataFrame(rows)


def _weighted_median(values: pd.Series, weights: pd.Series) -> float:
    """Median of values repeated by weights (NaN when empty); halfway between the two
    middle values when the count is even, like numpy."""
    n = int(weights.sum())
    if n == 0:
        return float("nan")
    order = np.argsort(values.to_numpy(), kind="stable")
    v = values.to_numpy()[order].astype("float64")
    cum = np.cumsum(weights.to_numpy()[order])
    lo = v[np.searchsorted(cum, (n - 1) // 2, side="right")]
    hi = v[np.searchsorted(cum, n // 2, side="right")]
    return float((lo + hi) / 2)
