"""Engine helpers the analyses share: segments, cohorts, day counting, stage tables.

Everything here builds Ibis expressions or reads the process model; nothing
pulls events into Python.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.log import EventLog
from funnelwise.log.eventlog import (
    DEAL_COLUMNS,
    SECONDS_PER_DAY,
    base_rate,
    first_deal_after_cut,
    json_text,
    sequenced_changes,
)
from funnelwise.process.model import normalize_name

Cohort = Literal["week", "month", "quarter", "year"]
DayCount = Literal["calendar", "business"]
COHORTS: dict[str, str] = {"week": "W", "month": "M", "quarter": "Q", "year": "Y"}
MISSING = "(missing)"
# Deal columns the analyses compute with, and columns every stage table has: a
# segment of one of these names is called by_<name> so both can stand side by side.
RESERVED = (
    "deal_id",
    "outcome",
    "created_at",
    "closed_at",
    "amount",
    "amount_base",
    "expected_close_date",
    "attributes",
    "cohort",
    "name",
    "stage_id",
    "position",
)
# Deal value is in the process currency so deals in other currencies add up.
VALUE = "amount_base"
# 1970-01-05 was a Monday: business days are counted in whole weeks from it.
_MONDAY_EPOCH = ibis.literal(pd.Timestamp("1970-01-05").to_pydatetime(), type="timestamp")


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    """Return value if it is one of choices, else raise InputError listing them."""
    if value not in choices:
        raise InputError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def segment(log: EventLog, deals: ir.Table, by: str) -> ir.StringValue:
    """The segment of each deal: a deal column, else a key of its JSON attributes.

    Missing values become '(missing)'. Raises InputError when `by` is neither a
    column nor an attribute any deal carries.
    """
    if by in deals.columns:
        return deals[by].cast("string").fill_null(MISSING)
    value = json_text(deals.attributes, by)
    if int(deals.filter(value.notnull()).count().execute()) == 0:
        columns = [c for c in DEAL_COLUMNS if c not in ("attributes", "version", "origin")]
        raise InputError(
            f"by: no deal has a column or attribute {by!r}; use a deal column "
            f"({', '.join(columns)}) or a key of the deals' attributes"
        )
    return value.fill_null(MISSING)


def cohort_of(ts: ir.TimestampValue, cohort: str) -> ir.DateValue:
    """The start date of the week (Monday), month, quarter or year of a timestamp."""
    check_choice(cohort, list(COHORTS), "cohort")
    return ts.truncate(COHORTS[cohort]).cast("date")


def group_deals(
    log: EventLog,
    deals: ir.Table,
    *,
    by: str | None = None,
    cohort: str | None = None,
    reserved: Sequence[str] = (),
) -> tuple[ir.Table, list[str]]:
    """Deals with their group columns added; returns (table, group column names).

    The pipeline is always a group (stage positions are per pipeline); `by`
    adds a column named after it (a deal column or attribute key, as text) and
    `cohort` a `cohort` column (start date of the creation period). When `by`
    names a deal column the analyses compute with (RESERVED) or a column of
    the calling analysis's results (`reserved`), the group column is
    `by_<name>` instead.
    """
    cols: dict[str, ir.Value] = {}
    if by is not None and by != "pipeline_id":
        name = f"by_{by}" if by in (*RESERVED, *reserved) else by
        cols[name] = segment(log, deals, by)
    if cohort is not None:
        cols["cohort"] = cohort_of(deals.created_at, cohort)
    return deals.mutate(**cols), ["pipeline_id", *cols]


def _business_clock(ts: ir.TimestampValue) -> ir.FloatingValue:
    """Business days elapsed since the Monday epoch (weekends do not count)."""
    x = exact_days(_MONDAY_EPOCH, ts)
    weeks = (x / 7).floor()
    into_week = x - weeks * 7
    return weeks * 5 + ibis.least(into_week, 5.0)


def elapsed_days(
    start: ir.TimestampValue, end: ir.TimestampValue, days: str = "calendar"
) -> ir.FloatingValue:
    """Elapsed days from start to end: calendar days, or business days (Mon–Fri).

    Business days skip Saturdays and Sundays entirely (no holiday calendar):
    Friday 18:00 to Monday 06:00 is 0.5 business days.
    """
    check_choice(days, ["calendar", "business"], "days")
    if days == "business":
        return _business_clock(end) - _business_clock(start)
    return exact_days(start, end)


def exact_days(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.FloatingValue:
    """Calendar days from start to end, to the microsecond (epoch seconds would drop the
    fraction of a second)."""
    return end.delta(start, unit="microsecond").cast("float64") / (SECONDS_PER_DAY * 1e6)


def timestamp(value: pd.Timestamp) -> ir.TimestampScalar:
    """A timestamp literal for an Ibis expression."""
    return ibis.literal(value.to_pydatetime(), type="timestamp")


def stage_frame(log: EventLog, *, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """The log's process stages from the model (no query): pipeline_id, stage_id, name,
    position, kind, target_days, probability."""
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    rows = [row for p in pipelines for row in p.stage_table()]
    frame = pd.DataFrame(rows)
    if kinds is not None:
        frame = frame[frame["kind"].isin(list(kinds))].reset_index(drop=True)
    return frame


def n_open_stages(log: EventLog) -> dict[str, int]:
    """Number of open stages per pipeline id (= the position of its won outcome)."""
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    return {p.id: len(p.stages) for p in pipelines}


def resolve_stage(log: EventLog, stage: str) -> str:
    """A stage id from an id, name or alias (case- and accent-insensitive)."""
    pipelines = (
        [log.process.pipeline(log.pipeline_id)] if log.pipeline_id else log.process.pipelines
    )
    for p in pipelines:
        found = p.alias_map().get(normalize_name(stage))
        if found is not None:
            return found
    log.check_stage(stage)  # raises, naming the valid stages
    return stage


def base_meta(log: EventLog, **options: Any) -> dict[str, Any]:
    """Metadata every result carries: as-of instant, currency, filters and options."""
    return {
        "as_of": log.now,
        "currency": log.process.currency,
        "pipeline": log.pipeline_id,
        "since": log.since,
        "until": log.until,
        "filters": {k: list(v) for k, v in log.where},
        **options,
    }


def survival_meta(
    log: EventLog, groups: list[str], *, by: str | None, cohort: str | None, alpha: float, days: str
) -> dict[str, Any]:
    """`base_meta` of an analysis that censors open deals, its unit the days counted."""
    return base_meta(
        log, by=by, cohort=cohort, alpha=alpha, days=days, groups=groups, unit=f"{days} days"
    )


def union_all(first: ir.Table, *rest: ir.Table) -> ir.Table:
    """UNION ALL of tables with the same columns, ignoring differences in nullability."""
    schema = {name: dtype.copy(nullable=True) for name, dtype in first.schema().items()}
    out = first.cast(schema)
    for t in rest:
        out = out.union(t.select(*schema).cast(schema))
    return out


def iter_groups(
    frame: pd.DataFrame, keys: Sequence[str]
) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(label, rows) per group of a compact frame, label mapping key column -> value.

    Without keys the whole frame is one group with an empty label.
    """
    if not keys:
        yield {}, frame
        return
    for key, part in frame.groupby(list(keys), sort=True, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        yield dict(zip(keys, values, strict=True)), part


def require_rows(frame: pd.DataFrame, log: EventLog, analysis: str, what: str) -> None:
    """Raise NotEnoughDataError when an analysis finds nothing to estimate from."""
    if len(frame):
        return
    raise NotEnoughDataError(f"{analysis}: {_holds_none(log, what)}")


def _holds_none(log: EventLog, what: str, extra: str = "") -> str:
    narrowed = " with these filters" if (log.where or log.since or log.until) else ""
    said = f"the log holds no {what}{narrowed} as of {log.now:%Y-%m-%d}{extra}"
    first = first_deal_after_cut(log)
    if first is not None:
        return f"{said}; its first deal was created on {first:%Y-%m-%d}: use a later --as-of"
    return (
        f"{said}; load deals (`funnelwise import ...` or `funnelwise demo DIR`), or widen "
        "the filters"
    )


def empty_meta(log: EventLog, frame: pd.DataFrame | None = None) -> dict[str, str]:
    """`{"empty": why}` when a counting analysis's main frame (if given) is empty
    because the log holds no deals (as filtered, as of its instant); else `{}`.

    Counting nothing is not an error (the frames stay empty, with their columns,
    or count zeros), but an empty table alone does not say whether nothing
    matched or nothing was loaded. Only an empty frame costs the extra counts.
    """
    if (frame is not None and len(frame)) or int(log.deals.count().execute()):
        return {}
    leads = int(log.leads.count().execute())
    only = f", only {leads:,} lead{'s' if leads != 1 else ''}" if leads else ""
    return {"empty": _holds_none(log, "deals", only)}


def to_pandas(expr: ir.Table) -> pd.DataFrame:
    """Execute an expression into a pandas frame with a fresh RangeIndex."""
    return expr.to_pandas().reset_index(drop=True)


def value_before_close(
    log: EventLog, deals: ir.Table, outcomes: Sequence[str] | None = None
) -> ir.Table:
    """Per closed deal (of the given `outcomes`, default all), its base value just
    before the close: `deal_id`, `value`.

    Exports that book the closing value (0 for a lost deal) change the amount at
    the close; what left the pipeline is the amount the deal carried before that
    change. Deals with no amount change at or after their close (known at
    `log.now`) keep their own base value.
    """
    ch = log.store.table("deal_changes")
    ch = ch.filter((ch.field == "amount") & (ch.changed_at <= timestamp(log.now)))
    ch = sequenced_changes(log.store, ch)
    closed = deals.filter(deals.closed_at.notnull())
    if outcomes is not None:
        closed = closed.filter(closed.outcome.isin(list(outcomes)))
    rate = base_rate(closed, log.process.currency)
    closed = closed.select("deal_id", "closed_at", "amount_base", _rate=rate)
    j = closed.join(ch.select("deal_id", "changed_at", "seq", "old_value"), "deal_id")
    j = j.filter(j.changed_at >= j.closed_at)
    first = j.group_by("deal_id").aggregate(_old=j.old_value.argmin(j.seq), _rate=j._rate.max())
    before = first.select("deal_id", _before=first._old.try_cast("float64") * first._rate)
    return closed.left_join(before, closed.deal_id == before.deal_id).select(
        closed.deal_id, value=ibis.coalesce(before._before, closed.amount_base)
    )
