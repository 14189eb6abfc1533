"""The data-quality report of a store: what the analyses will stumble on.

- `issues`: one row per check, with the deals concerned, the denominator and
  the share: missing amounts, open deals without (or with a past) expected
  close date, deals without stage history, stage entries into stages the
  process does not have (renamed or removed in process.yaml since the import;
  the ids and their deals are in meta `unknown_stages`), outcomes that disagree
  with the last stage entry, closed deals without a close time.
- `fields`: completeness of each stage's required exit-criteria fields
  (process.yaml `exit_criteria.fields`) among the deals that passed the stage
  (entered a later open stage, or won).
- `checklist`: the same for exit-criteria checklist items (`checklist` table).

All counting runs as Ibis expressions in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.common import empty_meta
from funnelwise.analytics.result import Result, frame_view
from funnelwise.log import EventLog
from funnelwise.log.eventlog import json_text, left_join_on

EXAMPLES = 3
_OUTCOMES = ("won", "lost", "no_decision")


@dataclass(frozen=True, eq=False)
class QualityReport(Result):
    """Data-quality checks of a log; frames `issues`, `fields`, `checklist`, `stages`."""

    analysis = "quality"
    title = "Data quality"
    percent: ClassVar[frozenset[str]] = frozenset({"share"})
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "issues": ["check", "deals", "of", "share", "examples"],
        "fields": ["pipeline_id", "stage_id", "field", "passed", "filled", "share"],
        "checklist": ["pipeline_id", "stage_id", "criterion", "passed", "done", "share"],
        "stages": ["pipeline_id", "stage_id", "entered", "passed"],
    }

    issues = frame_view("One row per check: deals concerned, out of how many, share, examples.")
    fields = frame_view("Per stage and required field: deals that passed it, with the field.")
    checklist = frame_view("Per stage and checklist item: deals that passed it, with evidence.")
    stages = frame_view("Per open stage: deals seen entering it, and deals that passed it.")


def _check(name: str, deals: ir.Table, where: ir.BooleanValue, of: ir.BooleanValue) -> ir.Table:
    """One issues row: deals matching `where` among those matching `of`."""
    hit = where & of
    return deals.aggregate(
        check=ibis.literal(name),
        deals=hit.cast("int64").sum().fill_null(0),
        of=of.cast("int64").sum().fill_null(0),
        examples=deals.deal_id.collect(where=hit, order_by=deals.deal_id).cast("array<string>"),
    )


def unknown_stages(log: EventLog) -> dict[str, int]:
    """Stage ids the stored events enter that the deal's pipeline in the process does
    not have, each with its number of deals; most deals first.

    Stages are matched by id when the log is read, not through the aliases
    (those map source names at import), so an id renamed or removed in
    process.yaml after the import leaves its entries without a position.
    """
    u = _unknown_events(log)
    agg = u.group_by("stage_id").aggregate(deals=u.deal_id.nunique()).to_pandas()
    agg = agg.sort_values(["deals", "stage_id"], ascending=[False, True], kind="stable")
    return {str(k): int(v) for k, v in zip(agg["stage_id"], agg["deals"], strict=True)}


def _unknown_events(log: EventLog) -> ir.Table:
    """Stage events whose stage is not in the deal's pipeline (no kind once positioned)."""
    e = log.positioned_events
    return e.filter(e.kind.isnull())


def _passed(log: EventLog) -> ir.Table:
    """(deal_id, pipeline_id, stage_id, position): the open stages each deal passed."""
    e = log.events
    reach = e.group_by("deal_id").aggregate(
        furthest=e.position.max(where=e.kind == "open"),
        won=(e.kind == "won").any(),
    )
    stages = log.stages.filter(log.stages.kind == "open").select(
        "pipeline_id", "stage_id", "position"
    )
    deals = log.deals.select("deal_id", "pipeline_id").join(reach, "deal_id")
    j = deals.join(stages, "pipeline_id")
    return j.filter(j.won.fill_null(False) | (j.furthest > j.position)).select(
        "deal_id", "pipeline_id", "stage_id", "position"
    )


def _field_value(deals: ir.Table, name: str) -> ir.BooleanValue:
    if name in deals.columns:
        return deals[name].notnull()
    return json_text(deals.attributes, name).notnull()


def _completeness(log: EventLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows_f: list[dict[str, Any]] = []
    rows_c: list[dict[str, Any]] = []
    passed = _passed(log)
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    wanted_f = [
        (p.id, s.id, f) for p in pipelines for s in p.stages for f in s.exit_criteria.fields
    ]
    wanted_c = [
        (p.id, s.id, c) for p in pipelines for s in p.stages for c in s.exit_criteria.checklist
    ]
    if wanted_f:
        deals = log.deals
        flags = deals.select(
            "deal_id",
            **{
                f"f_{i}": _field_value(deals, f)
                for i, f in enumerate(dict.fromkeys(f for _, _, f in wanted_f))
            },
        )
        names = list(dict.fromkeys(f for _, _, f in wanted_f))
        j = passed.join(flags, "deal_id")
        agg = (
            j.group_by("pipeline_id", "stage_id")
            .aggregate(
                passed=j.count(),
                **{f"f_{i}": j[f"f_{i}"].cast("int64").sum() for i in range(len(names))},
            )
            .to_pandas()
        )
        counts = {(r.pipeline_id, r.stage_id): r for r in agg.itertuples()}
        for pid, sid, f in wanted_f:
            r = counts.get((pid, sid))
            n = int(r.passed) if r is not None else 0
            filled = int(getattr(r, f"f_{names.index(f)}")) if r is not None else 0
            rows_f.append(
                {
                    "pipeline_id": pid,
                    "stage_id": sid,
                    "field": f,
                    "passed": n,
                    "filled": filled,
                    "share": filled / n if n else None,
                }
            )
    if wanted_c:
        ck = log.checklist.select("deal_id", "stage_id", "criterion").distinct()
        p = passed.left_join(ck, ["deal_id", "stage_id"])
        agg = p.group_by("pipeline_id", "stage_id", "criterion").aggregate(n=p.count()).to_pandas()
        total = passed.group_by("pipeline_id", "stage_id").aggregate(n=passed.count()).to_pandas()
        done = {(r.pipeline_id, r.stage_id, r.criterion): int(r.n) for r in agg.itertuples()}
        passed_n = {(r.pipeline_id, r.stage_id): int(r.n) for r in total.itertuples()}
        for pid, sid, c in wanted_c:
            n = passed_n.get((pid, sid), 0)
            k = done.get((pid, sid, c), 0)
            rows_c.append(
                {
                    "pipeline_id": pid,
                    "stage_id": sid,
                    "criterion": c,
                    "passed": n,
                    "done": k,
                    "share": k / n if n else None,
                }
            )
    cols_f = ["pipeline_id", "stage_id", "field", "passed", "filled", "share"]
    cols_c = ["pipeline_id", "stage_id", "criterion", "passed", "done", "share"]
    return pd.DataFrame(rows_f, columns=cols_f), pd.DataFrame(rows_c, columns=cols_c)


def _stage_coverage(log: EventLog) -> pd.DataFrame:
    """Per open stage: deals seen entering it (`entered`) and deals that passed it
    (`passed`: went on to a later stage or won). A stage passed but never entered
    is one the source gives no history for (a snapshot export, say)."""
    e = log.events
    entered = (
        e.filter(e.kind == "open")
        .group_by("pipeline_id", "stage_id")
        .aggregate(entered=e.deal_id.nunique())
        .to_pandas()
    )
    p = _passed(log)
    passed = p.group_by("pipeline_id", "stage_id").aggregate(passed=p.count()).to_pandas()
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    grid = pd.DataFrame(
        [(pl.id, s.id, s.name) for pl in pipelines for s in pl.stages],
        columns=["pipeline_id", "stage_id", "name"],
    )
    out = grid.merge(entered, how="left").merge(passed, how="left")
    out[["entered", "passed"]] = out[["entered", "passed"]].fillna(0).astype("int64")
    return out


def quality_report(log: EventLog) -> QualityReport:
    """Data-quality checks of `log` (filter it first to check one pipeline or period).

    Returns a QualityReport: `issues` (one row per check with deals concerned,
    denominator, share and up to three example deal ids), `fields` and
    `checklist` (completeness of exit criteria among deals that passed each
    stage). Shares are plain proportions of all deals concerned (a census, not
    an estimate). meta `unknown_stages` maps each stage id entered in the data
    but missing from the process to its number of deals (empty when none).
    """
    e = log.events
    last = e.filter(e.step == e.step.max().over(ibis.window(group_by="deal_id"))).select(
        "deal_id", last_stage="stage_id", last_kind="kind"
    )
    counted = e.group_by("deal_id").aggregate(n_events=e.count())
    d = log.deals
    d = d.left_join(last, "deal_id").select(d, "last_stage", "last_kind")
    d = d.left_join(counted, "deal_id").select(d, "n_events")
    strays = _unknown_events(log).select("deal_id").distinct().mutate(_stray=ibis.literal(True))
    d = left_join_on(d, strays, "deal_id")
    now = ibis.literal(log.now.to_pydatetime(), type="timestamp")
    is_open = d.outcome.isnull()
    every = d.deal_id.notnull()
    checks = {
        "missing amount": (d.amount.isnull(), every),
        "open, no expected close date": (d.expected_close_date.isnull(), is_open),
        "open, expected close date passed": (
            d.expected_close_date.cast("timestamp") < now,
            is_open,
        ),
        "no stage history": (d.n_events.isnull(), every),
        "stage entries into stages not in the process": (d._stray.fill_null(False), every),
        "closed, last entry not its outcome": (
            d.last_kind.isnull() | (d.last_kind != d.outcome),
            ~is_open,
        ),
        "open, last entry an outcome": (d.last_kind.isin(_OUTCOMES), is_open),
        "closed, no close time": (d.closed_at.isnull(), ~is_open),
    }
    parts = [_check(name, d, where, of) for name, (where, of) in checks.items()]
    found = parts[0].union(*parts[1:]).to_pandas().set_index("check").loc[list(checks)]
    issues = found.reset_index()
    issues["share"] = [
        k / n if n else None for k, n in zip(issues["deals"], issues["of"], strict=True)
    ]
    issues["examples"] = [list(x[:EXAMPLES]) if x is not None else [] for x in issues["examples"]]
    issues = issues[["check", "deals", "of", "share", "examples"]]
    fields, checklist = _completeness(log)
    n_deals = int(log.deals.count().execute())
    return QualityReport(
        frames={
            "issues": issues,
            "fields": fields,
            "checklist": checklist,
            "stages": _stage_coverage(log),
        },
        meta={
            "as_of": log.now,
            "pipeline": log.pipeline_id,
            "deals": n_deals,
            "unit": "deals",
            "unknown_stages": unknown_stages(log),
            **(empty_meta(log) if n_deals == 0 else {}),
        },
    )
