"""Features of open deals and open leads as known at one instant.

Every feature comes from `log.as_of(t)` only: the caller passes a log cut at
`t` (its `now`), and nothing here looks past it. The relational work runs in
the engine as Ibis expressions over `log.cases`, `log.stage_intervals`,
`log.deal_changes`, `log.activities` and `log.leads`; what comes back is one
compact row per open deal (or lead). Past win rates of owners and sources are
the one exception to "as of t": they stop at `rates_until` when that is
earlier, so a model never learns rates from outside its training window.

Units: every `*_days` column is in days; `*_share` and `*_rate` columns are
fractions in [0, 1]; amounts are in the process currency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.analytics.timing import visit_medians
from funnelwise.log import EventLog, days_between
from funnelwise.log.eventlog import DEAL_COLUMNS, json_text, left_join_on, sequenced_changes
from funnelwise.progressing import ProgressCallback
from funnelwise.scoring.snapshots import run_as_of

# Days of "recent" activity, and of a lead's "early" activity after creation.
RECENT_DAYS = 14.0
EARLY_DAYS = 7.0
# Pseudo-counts that pull a past rate towards the overall rate (empirical Bayes).
PRIOR_STRENGTH = 10.0
# Attribute keys pulled from the JSON `attributes` of deals or leads, at most.
MAX_ATTRIBUTE_KEYS = 20

DEAL_NUMERIC: tuple[str, ...] = (
    "stage_position",
    "furthest_position",
    "days_in_stage",
    "stage_time_ratio",
    "deal_age_days",
    "stage_changes",
    "backward_moves",
    "reentries",
    "close_pushes",
    "days_to_close",
    "amount_changes",
    "amount_ratio",
    "owner_changes",
    "activities",
    "activities_recent",
    "days_since_activity",
    "inbound_share",
    "owner_win_rate",
    "owner_closed",
    "source_win_rate",
    "amount_log10",
    "account_employees",
    "account_revenue",
    "checklist_share",
    "fields_share",
)
DEAL_CATEGORICAL: tuple[str, ...] = (
    "stage",
    "source",
    "product",
    "region",
    "account_industry",
)
LEAD_NUMERIC: tuple[str, ...] = (
    "lead_age_days",
    "activities",
    "activities_recent",
    "early_activities",
    "days_since_activity",
    "source_conversion_rate",
    "campaign_conversion_rate",
)
LEAD_CATEGORICAL: tuple[str, ...] = ("source", "campaign")
ATTRIBUTE_PREFIX = "attr_"
# Not a model feature: the win (or conversion) rate of all the closed deals (or
# decided leads) the owner, source and campaign rates were drawn from, for reasons
# to compare those rates with ("owner ben wins 23% (all owners 29%)").
OVERALL_RATE = "overall_rate"


@dataclass(frozen=True)
class Unit:
    """What a target scores: open deals (target `won`) or open leads (`converted`)."""

    target: str
    id_column: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]


TARGETS: dict[str, Unit] = {
    "won": Unit("won", "deal_id", DEAL_NUMERIC, DEAL_CATEGORICAL),
    "converted": Unit("converted", "lead_id", LEAD_NUMERIC, LEAD_CATEGORICAL),
}


def _now(log: EventLog) -> ir.TimestampScalar:
    return ibis.literal(log.now.to_pydatetime(), type="timestamp")


def attribute_keys(table: ir.Table, *, limit: int = MAX_ATTRIBUTE_KEYS) -> tuple[str, ...]:
    """The keys of the JSON `attributes` of a table's rows, most frequent first."""
    keys = table.filter(table.attributes.notnull()).select(
        k=table.attributes.cast("json").map.keys().unnest()
    )
    counts = keys.group_by("k").aggregate(n=keys.count()).order_by([ibis.desc("n"), "k"])
    frame = counts.limit(limit).to_pandas()
    return tuple(str(k) for k in frame["k"])


def attribute_value(attributes: ir.StringValue, key: str) -> ir.StringValue:
    """An attribute's value as text: a JSON string as it is, a JSON number or
    boolean written out (8801, 88.5, true); null when absent or null. The key is
    matched as written, dots and all (`account.Industry`, as Salesforce imports
    store an account's fields)."""
    return json_text(attributes, key)


def _attribute_columns(table: ir.Table, keys: tuple[str, ...]) -> dict[str, ir.Value]:
    return {f"{ATTRIBUTE_PREFIX}{k}": attribute_value(table.attributes, k) for k in keys}


# -- deals ------------------------------------------------------------------------
def _stage_history(log: EventLog) -> tuple[ir.Table, ir.Table]:
    """Per stage: the usual days of a visit (to the hour). Per deal: moves and re-entries.

    The usual days are the Kaplan–Meier median of a visit, visits still running
    censored: the median of finished visits alone leaves out the long ones still
    running, so early in a log it reads short and deals look slower than usual.
    Null while fewer than half the visits have ended. It stays in SQL: snapshots
    of many dates run as one query, which an in-memory table would break.
    """
    iv = log.stage_intervals
    usual = visit_medians(log).rename(usual_days="median")
    st = log.store.table("stages").select(
        "pipeline_id", next_stage_id="stage_id", _next_pos="position", _next_kind="kind"
    )
    moves = iv.left_join(
        st, [iv.pipeline_id == st.pipeline_id, iv.next_stage_id == st.next_stage_id]
    ).select(iv.deal_id, iv.position, iv.next_stage_id, st._next_pos, st._next_kind)
    back = (moves._next_kind == "open") & (moves._next_pos < moves.position)
    per_deal = moves.group_by("deal_id").aggregate(
        stage_changes=moves.next_stage_id.notnull().cast("int64").sum(),
        backward_moves=back.cast("int64").sum(),
    )
    return usual, per_deal


def _change_features(log: EventLog) -> ir.Table:
    """Per deal: close-date pushes, amount changes and the amount's drift, owner changes."""
    ch = sequenced_changes(log.store, log.deal_changes)
    is_close = ch.field == "expected_close_date"
    is_amount = ch.field == "amount"
    pushed = is_close & (ch.new_value.try_cast("date") > ch.old_value.try_cast("date"))
    return ch.group_by("deal_id").aggregate(
        close_pushes=pushed.cast("int64").sum(),
        amount_changes=is_amount.cast("int64").sum(),
        owner_changes=(ch.field == "owner_id").cast("int64").sum(),
        _first_amount=ch.old_value.try_cast("float64").argmin(ch.seq, where=is_amount),
    )


def _activity_features(log: EventLog, key: str, created: ir.Table | None = None) -> ir.Table:
    """Per deal or lead: activity counts, recent ones, inbound share and the last one's time.

    With `created` (key, _created_at) it also counts the early activities, those
    within EARLY_DAYS of creation.
    """
    a = log.activities
    a = a.filter(a[key].notnull())
    cols: dict[str, ir.Value] = {}
    if created is not None:
        a = a.join(created, key)
        early = a.at <= a._created_at + ibis.interval(seconds=int(EARLY_DAYS * 86400))
        cols["early_activities"] = early.cast("int64").sum()
    recent = a.at > _now(log) - ibis.interval(seconds=int(RECENT_DAYS * 86400))
    return a.group_by(key).aggregate(
        activities=a.count(),
        activities_recent=recent.cast("int64").sum(),
        _inbound=(a.direction == "inbound").cast("int64").sum(),
        _last_activity_at=a.at.max(),
        **cols,
    )


# Deal columns an exit criterion's `fields` may name directly (others are attribute keys).
_FIELD_COLUMNS = tuple(
    c for c in DEAL_COLUMNS if c not in ("deal_id", "pipeline_id", "attributes", "version")
)


def _literal_table(rows: Sequence[tuple[object, ...]], schema: dict[str, str]) -> ir.Table:
    """A small table written into the query itself (no in-memory table to register,
    so the compiled SQL runs on its own; see snapshots.run_as_of)."""
    fields = ", ".join(f"{k}: {v}" for k, v in schema.items())
    records = [dict(zip(schema, r, strict=True)) for r in rows]
    value = ibis.literal(records, type=f"array<struct<{fields}>>")
    return value.unnest().name("_row").as_table().unpack("_row")


def _criteria_features(log: EventLog, deals: ir.Table) -> ir.Table:
    """Per deal: exit-criteria checklist items and required fields due so far, and done.

    A criterion is due once the deal is in its stage or beyond (the process says
    it must be met before the deal moves on).
    """
    checklist_rows = []
    field_rows = []
    for p in log.process.pipelines:
        for pos, s in enumerate(p.stages):
            checklist_rows += [(p.id, s.id, pos, c) for c in s.exit_criteria.checklist]
            field_rows += [(p.id, pos, f) for f in s.exit_criteria.fields]
    base = deals.select("deal_id", "pipeline_id", _pos="stage_position")
    out = base.select("deal_id")
    zero = ibis.literal(0, type="int64")
    if checklist_rows:
        crit = _literal_table(
            checklist_rows,
            {
                "pipeline_id": "string",
                "c_stage_id": "string",
                "c_position": "int64",
                "criterion": "string",
            },
        )
        due = base.join(
            crit, [base.pipeline_id == crit.pipeline_id, crit.c_position <= base._pos]
        ).select(base.deal_id, crit.c_stage_id, crit.criterion)
        ck = log.checklist.select(
            "deal_id", c_stage_id="stage_id", criterion="criterion", _done=ibis.literal(1)
        ).distinct()
        matched = due.left_join(
            ck,
            [
                due.deal_id == ck.deal_id,
                due.c_stage_id == ck.c_stage_id,
                due.criterion == ck.criterion,
            ],
        ).select(due.deal_id, ck._done)
        per = matched.group_by("deal_id").aggregate(
            checklist_required=matched.count(),
            checklist_done=matched._done.notnull().cast("int64").sum().cast("int64"),
        )
        out = left_join_on(out, per, "deal_id")
    else:
        out = out.mutate(checklist_required=zero, checklist_done=zero)
    if field_rows:
        fields = _literal_table(
            field_rows, {"pipeline_id": "string", "f_position": "int64", "field": "string"}
        )
        d = deals.select(
            "deal_id", "pipeline_id", "attributes", *_FIELD_COLUMNS, _pos="stage_position"
        )
        due = d.join(fields, [d.pipeline_id == fields.pipeline_id, fields.f_position <= d._pos])
        names = sorted({f for _, _, f in field_rows})
        filled = ibis.cases(
            *[
                (
                    due.field == name,
                    due[name].notnull()
                    if name in _FIELD_COLUMNS
                    else attribute_value(due.attributes, name).notnull(),
                )
                for name in names
            ],
            else_=False,
        )
        per = due.group_by("deal_id").aggregate(
            fields_required=due.count(), fields_done=filled.cast("int64").sum().cast("int64")
        )
        out = left_join_on(out, per, "deal_id")
    else:
        out = out.mutate(fields_required=zero, fields_done=zero)
    return out


def deal_feature_table(log: EventLog, *, keys: tuple[str, ...] = ()) -> ir.Table:
    """Ibis table of the open deals at `log.now`, one row each, with engine-side features.

    Past win rates are not here (see `deal_features`). `keys` are attribute keys
    to pull as `attr_<key>` text columns.
    """
    now = _now(log)
    c = log.cases
    c = c.filter(c.status == "open")
    st = log.store.table("stages").select(
        "pipeline_id",
        "stage_id",
        stage_name="name",
        stage_position="position",
        stage_probability="probability",
    )
    c = c.left_join(
        st, [c.pipeline_id == st.pipeline_id, c.current_stage_id == st.stage_id]
    ).select(c, st.stage_name, st.stage_position, st.stage_probability)
    furthest = log.store.table("stages").select(
        "pipeline_id", furthest_position="position", furthest_stage_name="name"
    )
    c = c.left_join(
        furthest,
        [c.pipeline_id == furthest.pipeline_id, c.furthest_position == furthest.furthest_position],
    ).select(c, furthest.furthest_stage_name)
    usual, moves = _stage_history(log)
    c = c.left_join(
        usual, [c.pipeline_id == usual.pipeline_id, c.current_stage_id == usual.stage_id]
    ).select(c, usual.usual_days)
    c = left_join_on(c, moves, "deal_id")
    c = left_join_on(c, _change_features(log), "deal_id")
    c = left_join_on(c, _activity_features(log, "deal_id"), "deal_id")
    acc = log.store.table("accounts").select(
        "account_id",
        account_industry="industry",
        account_employees="employees",
        account_revenue="revenue",
    )
    c = left_join_on(c, acc, "account_id")
    c = left_join_on(c, _criteria_features(log, c), "deal_id")
    entered = c.current_stage_entered_at.fill_null(c.created_at)
    in_stage = days_between(entered, now)
    # A stage's usual time is floored at one hour, so the ratio stays finite; without
    # a usual time there is no ratio (greatest() would take the floor for a null).
    usual_days = ibis.ifelse(
        c.usual_days.isnull(),
        ibis.null("float64"),
        ibis.greatest(c.usual_days, ibis.literal(1.0 / 24.0)),
    )
    first_amount = c._first_amount.fill_null(c.amount)
    activities = c.activities.fill_null(0)
    return c.select(
        "deal_id",
        "pipeline_id",
        "owner_id",
        "amount",
        "stage_name",
        "furthest_stage_name",
        "stage_probability",
        "checklist_done",
        "checklist_required",
        "fields_done",
        "fields_required",
        stage=c.current_stage_id,
        source=c.source,
        product=c.product,
        region=c.region,
        account_industry=c.account_industry,
        stage_position=c.stage_position.cast("float64"),
        furthest_position=c.furthest_position.cast("float64"),
        days_in_stage=in_stage,
        stage_time_ratio=in_stage / usual_days,
        deal_age_days=days_between(c.created_at, now),
        stage_changes=c.stage_changes.fill_null(0).cast("float64"),
        backward_moves=c.backward_moves.fill_null(0).cast("float64"),
        reentries=(c.n_events - c.n_stages.fill_null(0)).cast("float64"),
        close_pushes=c.close_pushes.fill_null(0).cast("float64"),
        days_to_close=days_between(now, c.expected_close_date.cast("timestamp")),
        amount_changes=c.amount_changes.fill_null(0).cast("float64"),
        amount_ratio=ibis.ifelse(first_amount > 0, c.amount / first_amount, ibis.null("float64")),
        owner_changes=c.owner_changes.fill_null(0).cast("float64"),
        activities=activities.cast("float64"),
        activities_recent=c.activities_recent.fill_null(0).cast("float64"),
        days_since_activity=days_between(c._last_activity_at, now),
        inbound_share=ibis.ifelse(
            activities > 0, c._inbound.cast("float64") / activities, ibis.null("float64")
        ),
        amount_log10=ibis.ifelse(c.amount_base > 0, c.amount_base.log10(), ibis.null("float64")),
        account_employees=c.account_employees.cast("float64"),
        account_revenue=c.account_revenue.cast("float64"),
        checklist_share=ibis.ifelse(
            c.checklist_required > 0,
            c.checklist_done.cast("float64") / c.checklist_required,
            ibis.null("float64"),
        ),
        fields_share=ibis.ifelse(
            c.fields_required > 0,
            c.fields_done.cast("float64") / c.fields_required,
            ibis.null("float64"),
        ),
        **_attribute_columns(c, keys),
    )


def smoothed_rates(closed: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per value of `by`: closed count `n` and a `rate` pulled towards the overall rate.

    `closed` has one row per closed deal (or decided lead) with a 0/1 `positive`
    column. The rate is (positives + m·p̄) / (n + m) with m = PRIOR_STRENGTH.
    """
    if closed.empty:
        return pd.DataFrame({by: pd.Series(dtype=object), "n": [], "rate": []})
    overall = float(closed["positive"].mean())
    g = closed.groupby(by, dropna=True)["positive"].agg(["sum", "count"]).reset_index()
    rate = (g["sum"] + PRIOR_STRENGTH * overall) / (g["count"] + PRIOR_STRENGTH)
    return pd.DataFrame({by: g[by], "n": g["count"].astype(float), "rate": rate})


def closed_deals(log: EventLog) -> ir.Table:
    """Deals closed by `log.now` with a 0/1 `positive` (won) column, owner and source."""
    d = log.deals
    d = d.filter(d.outcome.notnull())
    return d.select("owner_id", "source", positive=(d.outcome == "won").cast("int64"))


def _add_deal_rates(frame: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
    overall = float(closed["positive"].mean()) if len(closed) else float("nan")
    owner = smoothed_rates(closed, "owner_id")
    source = smoothed_rates(closed, "source")
    frame = frame.merge(
        owner.rename(columns={"n": "owner_closed", "rate": "owner_win_rate"}),
        on="owner_id",
        how="left",
    ).merge(
        source[["source", "rate"]].rename(columns={"rate": "source_win_rate"}),
        on="source",
        how="left",
    )
    frame["owner_closed"] = frame["owner_closed"].fillna(0.0)
    frame["owner_win_rate"] = frame["owner_win_rate"].fillna(overall)
    source_rate = frame["source_win_rate"].fillna(overall)
    frame["source_win_rate"] = _known_only(source_rate, frame["source"])
    frame[OVERALL_RATE] = overall
    return frame


def _known_only(rate: pd.Series, key: pd.Series) -> pd.Series:
    """A group's rate where the group is recorded, NaN where it is not. Filled with
    the overall rate, deals without a source would carry the overall win rate of
    each snapshot: a clock, read as "source unknown wins 63%"."""
    return rate.where(key.notna())


# -- leads ------------------------------------------------------------------------
def leads_of(log: EventLog) -> ir.Table:
    """The log's leads, kept to those created in its [since, until) window like its deals."""
    lead = log.leads
    if log.since is not None:
        lead = lead.filter(lead.created_at >= log.since)
    if log.until is not None:
        lead = lead.filter(lead.created_at < log.until)
    return lead


def has_leads(log: EventLog) -> bool:
    """Whether the log holds any lead (in its created-at window)."""
    return bool(leads_of(log).count().execute())


def units_of(log: EventLog, target: str) -> ir.Table:
    """The deals (target `won`) or leads (`converted`) of the log."""
    return log.deals if target == "won" else leads_of(log)


def undecided(log: EventLog, target: str) -> ir.Table:
    """The deals (or leads) of the log with no outcome recorded by `log.now`: open
    deals; leads neither converted nor disqualified."""
    units = units_of(log, target)
    if target == "won":
        return units.filter(units.outcome.isnull())
    return units.filter(units.converted_at.isnull() & units.disqualified_at.isnull())


def attribute_presence(table: ir.Table, keys: Sequence[str]) -> tuple[int, dict[str, float]]:
    """Rows of `table`, and per key the share of them whose JSON `attributes` have
    a value for it (as `attr_<key>`)."""
    counts = {
        f"_k{i}": attribute_value(table.attributes, k).notnull().cast("int64").sum()
        for i, k in enumerate(keys)
    }
    row = table.aggregate(_n=table.count(), **counts).to_pandas().iloc[0]
    n = int(row["_n"])
    shares = {
        f"{ATTRIBUTE_PREFIX}{k}": float(row[f"_k{i}"] or 0) / n if n else float("nan")
        for i, k in enumerate(keys)
    }
    return n, shares


def lead_feature_table(
    log: EventLog, *, horizon_days: float, keys: tuple[str, ...] = ()
) -> ir.Table:
    """Ibis table of the open leads at `log.now`: not converted, not disqualified, and
    younger than the horizon (an older one has missed its chance: it is decided)."""
    now = _now(log)
    lead = leads_of(log)
    horizon = ibis.interval(seconds=int(horizon_days * 86400))
    lead = lead.filter(
        lead.converted_at.isnull()
        & lead.disqualified_at.isnull()
        & (lead.created_at + horizon > now)
    )
    created = lead.select("lead_id", _created_at="created_at")
    c = left_join_on(lead, _activity_features(log, "lead_id", created), "lead_id")
    return c.select(
        "lead_id",
        "owner_id",
        source=c.source,
        campaign=c.campaign_id,
        lead_age_days=days_between(c.created_at, now),
        activities=c.activities.fill_null(0).cast("float64"),
        activities_recent=c.activities_recent.fill_null(0).cast("float64"),
        early_activities=c.early_activities.fill_null(0).cast("float64"),
        days_since_activity=days_between(c._last_activity_at, now),
        **_attribute_columns(c, keys),
    )


def decided_leads(log: EventLog, horizon_days: float) -> ir.Table:
    """Leads whose outcome is known at `log.now`, with a 0/1 `positive` column.

    A lead is positive when it converted within `horizon_days` of creation;
    negative when it was disqualified before converting, or when the horizon
    has passed without a conversion. Younger undecided leads are censored
    (left out): a lead is negative only once enough time has passed.
    """
    lead = leads_of(log)
    horizon = ibis.interval(seconds=int(horizon_days * 86400))
    in_time = lead.converted_at.notnull() & (lead.converted_at <= lead.created_at + horizon)
    dropped = lead.disqualified_at.notnull() & (
        lead.converted_at.isnull() | (lead.disqualified_at < lead.converted_at)
    )
    matured = lead.created_at + horizon <= _now(log)
    positive = in_time & ~dropped
    decided = lead.filter(positive | dropped | matured)
    return decided.select(
        "lead_id",
        "source",
        campaign="campaign_id",
        positive=positive.cast("int64"),
    )


def _add_lead_rates(frame: pd.DataFrame, closed: pd.DataFrame) -> pd.DataFrame:
    overall = float(closed["positive"].mean()) if len(closed) else float("nan")
    names = (("source", "source_conversion_rate"), ("campaign", "campaign_conversion_rate"))
    for by, name in names:
        rates = smoothed_rates(closed, by)[[by, "rate"]].rename(columns={"rate": name})
        frame = frame.merge(rates, on=by, how="left")
        frame[name] = _known_only(frame[name].fillna(overall), frame[by])
    frame[OVERALL_RATE] = overall
    return frame


# -- snapshots --------------------------------------------------------------------
def snapshot_features(
    log: EventLog,
    target: str,
    times: list[pd.Timestamp],
    *,
    horizon_days: float = 90.0,
    rates_until: pd.Timestamp | None = None,
    keys: tuple[str, ...] = (),
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """The open deals (target `won`) or open leads (`converted`) as of each instant.

    One row per (unit, `as_of`): features from `log.as_of(as_of)` only, plus
    past rates of owners and sources (deals) or sources and campaigns (leads)
    from `log.as_of(min(as_of, rates_until))`. Each instant is at most `log.now`.
    """
    unit = TARGETS[target]
    if target == "won":
        frames = run_as_of(
            log, lambda lg: deal_feature_table(lg, keys=keys), times, progress=progress
        )
        outcomes: Callable[[EventLog], ir.Table] = closed_deals
        add_rates = _add_deal_rates
    else:
        frames = run_as_of(
            log,
            lambda lg: lead_feature_table(lg, horizon_days=horizon_days, keys=keys),
            times,
            progress=progress,
        )
        outcomes = partial(decided_leads, horizon_days=horizon_days)
        add_rates = _add_lead_rates
    rate_times = [t if rates_until is None else min(t, rates_until) for t in times]
    distinct = sorted(set(rate_times))
    rate_frames = dict(zip(distinct, run_as_of(log, outcomes, distinct), strict=True))
    out = []
    for t, rt, frame in zip(times, rate_times, frames, strict=True):
        frame = add_rates(frame, rate_frames[rt])
        frame["as_of"] = t
        out.append(frame)
    result = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if result.empty:
        return result
    return result.sort_values(["as_of", unit.id_column], kind="stable").reset_index(drop=True)


def features(
    log: EventLog,
    target: str = "won",
    *,
    horizon_days: float = 90.0,
    rates_until: pd.Timestamp | None = None,
    keys: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The feature frame of the open deals (`won`) or open leads (`converted`) at `log.now`."""
    return snapshot_features(
        log,
        target,
        [log.now],
        horizon_days=horizon_days,
        rates_until=rates_until,
        keys=keys,
    )


def feature_columns(
    target: str, keys: tuple[str, ...], numeric_keys: tuple[str, ...] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) model columns of a target with its attribute keys: those
    of `numeric_keys` read as numbers, the others as categories."""
    unit = TARGETS[target]
    numbers = tuple(f"{ATTRIBUTE_PREFIX}{k}" for k in keys if k in numeric_keys)
    texts = tuple(f"{ATTRIBUTE_PREFIX}{k}" for k in keys if k not in numeric_keys)
    return (*unit.numeric, *numbers), (*unit.categorical, *texts)
