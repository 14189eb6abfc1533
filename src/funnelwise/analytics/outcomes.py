"""Censoring-aware outcomes: how likely a deal ends won, lost or without decision.

Open deals are censored, never counted as lost and never dropped. The
cumulative incidence of each outcome (Aalen–Johansen, the three outcomes
competing) is estimated by days since creation and by days since a deal
reached each stage. Beside it stands the naive closed-only win rate
(won / closed), which is biased whenever wins and losses take different
times to happen, so the difference is visible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.common import (
    check_choice,
    elapsed_days,
    group_deals,
    iter_groups,
    require_rows,
    stage_frame,
    survival_meta,
    timestamp,
    to_pandas,
    union_all,
)
from funnelwise.analytics.result import Result, frame_view
from funnelwise.analytics.stats import (
    ALPHA,
    OUTCOME_CODES,
    cumulative_incidence,
    rate_columns,
    value_at,
)
from funnelwise.log import EventLog

CREATED = "created"
HORIZONS = (30, 90, 180, 365)

METHOD = (
    "Aalen–Johansen cumulative incidence, outcomes competing, open deals censored; "
    "naive rate = won / closed"
)


@dataclass(frozen=True, eq=False)
class OutcomesResult(Result):
    """Frames `summary` (per group and scope), `curves` and `horizons`.

    A scope is "created" (days since creation) or a stage id (days since the
    deal reached that stage or a later one).
    """

    analysis = "outcomes"
    title = "Outcomes (censoring-aware)"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "summary": ["scope", "n", "open", "won", "naive_win_rate", "p_won", "p_lost"],
        "curves": ["scope", "outcome", "day", "cif", "at_risk"],
        "horizons": ["scope", "outcome", "day", "cif", "at_risk"],
    }
    percent: ClassVar[frozenset[str]] = frozenset({"p_won", "p_lost", "p_no_decision", "cif"})
    terminal: ClassVar[tuple[str, ...]] = ("summary", "horizons")

    summary = frame_view(
        "Per group and scope: counts, the naive closed-only win rate, and the "
        "Aalen–Johansen probability of each outcome at the end of follow-up."
    )
    curves = frame_view("Incidence step curves: day, outcome, cif, lower, upper, at_risk.")
    horizons = frame_view("Cumulative incidence of each outcome at the chosen horizons (days).")


def reach_times(log: EventLog) -> ir.Table:
    """Per deal and open stage: when the deal first reached it or any later stage.

    Won counts as later than every open stage; lost and no decision do not.
    Columns: deal_id, stage_id, reached_at.
    """
    e = log.positioned_events
    e = e.filter(e.kind.isin(["open", "won"]))
    first = e.group_by(["deal_id", "pipeline_id", "position"]).aggregate(at=e.entered_at.min())
    st = ibis.memtable(
        stage_frame(log, kinds=["open"])[["pipeline_id", "stage_id", "position"]].rename(
            columns={"pipeline_id": "_pipeline", "position": "_position"}
        )
    )
    j = first.join(st, (first.pipeline_id == st._pipeline) & (first.position >= st._position))
    return j.group_by(["deal_id", "stage_id"]).aggregate(reached_at=j.at.min())


def outcome_day_counts(
    log: EventLog,
    deals: ir.Table,
    groups: list[str],
    *,
    from_stages: bool = True,
    days: str = "calendar",
) -> pd.DataFrame:
    """Deals per (group, scope, whole day, outcome code): the compact input of
    Aalen–Johansen. Days run from creation (scope "created") or from reaching
    each stage to the close, or to `log.now` for open deals (code 0), rounded up.
    """
    check_choice(days, ["calendar", "business"], "days")
    now = timestamp(log.now)
    d = deals.select(
        *groups,
        "deal_id",
        _created="created_at",
        _end=deals.closed_at.fill_null(now),
        _code=deals.outcome.substitute(OUTCOME_CODES, else_=0).cast("int64"),
    )
    spans = d.select(
        *groups, _scope=ibis.literal(CREATED), _start=d._created, _end=d._end, _code=d._code
    )
    if from_stages:
        r = reach_times(log)
        s = d.join(r, "deal_id")
        spans = union_all(
            spans,
            s.select(*groups, _scope=s.stage_id, _start=s.reached_at, _end=s._end, _code=s._code),
        )
    day = elapsed_days(spans._start, spans._end, days).ceil().clip(lower=0).cast("int64")
    spans = spans.mutate(day=day)
    counts = spans.group_by([*groups, "_scope", "day", "_code"]).aggregate(n=spans.count())
    return to_pandas(counts).rename(columns={"_scope": "scope", "_code": "code"})


def outcomes(
    log: EventLog,
    *,
    by: str | None = None,
    cohort: str | None = None,
    from_stages: bool = True,
    horizons: Sequence[int] = HORIZONS,
    days: str = "calendar",
    alpha: float = ALPHA,
) -> OutcomesResult:
    """Cumulative incidence of won / lost / no decision, with open deals censored.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        cohort: split by creation period ("week", "month", "quarter", "year").
        from_stages: also estimate from each stage (days since reaching it).
        horizons: days at which to report each outcome's incidence.
        days: "calendar" or "business" days.
        alpha: 1 - confidence level (Wilson for the naive rate, log-log
            intervals for the incidence).

    Durations are counted in whole days, rounded up (a deal won after 2.5
    days counts as won by day 3). The probability of an outcome is its
    incidence at the end of follow-up: the last day any deal was observed.
    """
    deals, groups = group_deals(
        log, log.deals, by=by, cohort=cohort, reserved=("scope", "day", "open")
    )
    counts = outcome_day_counts(log, deals, groups, from_stages=from_stages, days=days)
    require_rows(counts, log, "outcomes", "deals")
    summary, curves, at = _estimate(counts, [*groups, "scope"], horizons, alpha)
    order = {CREATED: -1} | {
        s: i for i, s in enumerate(stage_frame(log, kinds=["open"])["stage_id"].drop_duplicates())
    }
    summary = _ordered(summary, groups, order)
    curves = _ordered(curves, groups, order, ["outcome", "day"])
    at = _ordered(at, groups, order, ["outcome", "day"])
    meta = survival_meta(log, groups, by=by, cohort=cohort, alpha=alpha, days=days)
    meta["method"] = METHOD
    return OutcomesResult({"summary": summary, "curves": curves, "horizons": at}, meta)


def _ordered(
    frame: pd.DataFrame, groups: list[str], order: dict[str, int], extra: Sequence[str] = ()
) -> pd.DataFrame:
    key = frame["scope"].map(order).fillna(len(order))
    frame = frame.assign(_order=key).sort_values([*groups, "_order", *extra], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def _at_risk(part: pd.DataFrame, day: int) -> int:
    """Deals still followed (neither closed nor censored) at the start of `day`."""
    return int(part.loc[part["day"] >= day, "n"].sum())


def _estimate(
    counts: pd.DataFrame, keys: list[str], horizons: Sequence[int], alpha: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Aalen–Johansen per (group, scope) on the compact (day, outcome) counts."""
    rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    at_rows: list[dict[str, Any]] = []
    for label, part in iter_groups(counts, keys):
        curve = cumulative_incidence(part["day"], part["code"], part["n"], alpha=alpha)
        curve["at_risk"] = curve["at_risk"].astype("int64")
        total = {c: int(part.loc[part["code"] == c, "n"].sum()) for c in range(4)}
        n = sum(total.values())
        followup = int(part["day"].max())
        row: dict[str, Any] = label | {"n": n, "open": total[0]}
        row |= {kind: total[code] for kind, code in OUTCOME_CODES.items()}
        row["followup_days"] = followup
        naive = rate_columns(
            [total[OUTCOME_CODES["won"]]], [n - total[0]], "naive_win", alpha=alpha
        )
        row |= {k: float(v[0]) for k, v in naive.items()}
        for kind in OUTCOME_CODES:
            c = curve[curve["outcome"] == kind]
            p, lo, hi = value_at(c, followup, ["cif", "lower", "upper"])
            row |= {f"p_{kind}": p, f"p_{kind}_lower": lo, f"p_{kind}_upper": hi}
            for h in horizons:
                # Beyond the end of follow-up the data say nothing: NaN, not the plateau.
                seen = h <= followup
                values = value_at(c, h, ["cif", "lower", "upper"]) if seen else [float("nan")] * 3
                row_h = {**label, "outcome": kind, "day": int(h), "at_risk": _at_risk(part, h)}
                at_rows.append(row_h | dict(zip(["cif", "lower", "upper"], values, strict=True)))
        rows.append(row)
        curves.append(curve.assign(**label))
    curve_cols = [*keys, "day", "outcome", "cif", "lower", "upper", "at_risk"]
    curve_frame = (
        pd.concat(curves, ignore_index=True)[curve_cols]
        if curves
        else pd.DataFrame(columns=curve_cols)
    )
    summary = pd.DataFrame(rows)
    for col in ("naive_win_n",):
        if col in summary:
            summary[col] = summary[col].astype("int64")
    return summary, curve_frame, pd.DataFrame(at_rows)
