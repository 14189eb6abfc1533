"""What a forecaster learns from: compact aggregates pulled from a log as of a date.

`pull_history(log)` runs a handful of Ibis queries in the engine and returns
small frames (a few thousand rows even for millions of events):

- `visits`: stage visits of open stages counted by (pipeline, stage,
  destination, time-in-stage bin, covariate levels: deal age and close-date
  pushes at entry, segment, deal size band; entry month),
  with the sum of their days (enough for censoring-aware hazards and their
  exposures, and for a Poisson bootstrap over history) and, for deals won
  since, their amounts at the visit's entry and as booked (the amount drift);
  `weekly_visits` holds the same split by entry week as well, while the log
  holds fewer than six months since its first win;
- `open_deals`: one row per open deal at the as-of instant (stage, time in
  stage, age, pushes, amount, expected close date, segment);
- `wins`: won deals (closed_at, amount_base, segment), for run rates and the
  amounts of deals not yet created;
- `creations`: deals created per day by pipeline, first stage, segment and
  deal size band;
- `stage_rates`: per stage, closed deals that visited it and how many won.

Everything downstream (baselines, hazards, Monte Carlo) uses only these, so
a backtest pulls each cut-off once and fits every method on the same data.
Nothing after `log.now` can enter: every query runs on `log` itself, which is
`log.as_of(t)` in a backtest.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.log import EventLog, days_between
from funnelwise.log.eventlog import (
    base_rate,
    first_deal_after_cut,
    json_text,
    sequenced_changes,
)

# Time-in-stage bins (days): fine near zero, where real logs have many
# same-instant moves, and coarse later. The last bin is open-ended.
TIS_EDGES: tuple[float, ...] = (
    0.0,
    0.01,
    0.1,
    0.5,
    1,
    2,
    3,
    5,
    7,
    10,
    14,
    21,
    30,
    45,
    60,
    90,
    120,
    180,
    270,
    365,
)
# Deal age at stage entry (days) and close-date pushes before entry: the levels
# of the covariates the hazards adjust for.
AGE_EDGES: tuple[float, ...] = (0.0, 14, 45, 120, 270)
MAX_PUSHES = 2
STATUSES = ("open", "won", "lost", "no_decision")
# Deal size bands: quintiles of amount_base over the deals known at `now`.
AMOUNT_QUANTILES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
MISSING = "(missing)"
# Decimals kept by `exact_sum`: days to a hundredth of a microsecond (finer than the
# timestamps); amounts to a millionth (of the currency's unit), which leaves 32
# digits for the sum.
DAYS_SCALE = 13
AMOUNT_SCALE = 6
DAY = pd.Timedelta(days=1)
VISIT_KEYS = [
    "pipeline_id",
    "stage_id",
    "dest",
    "tis_bin",
    "age_bin",
    "push_bin",
    "segment",
    "amount_bin",
    "month",
]
WEEKLY_KEYS = [*VISIT_KEYS, "week"]
# Calendar months since the first win from which the weekly split is no longer pulled:
# by then months can be compared (two windows need three months).
WEEKLY_MONTHS = 6
VISIT_SUMS = ["n", "sum_days", "won_visits", "won_at_entry", "won_booked"]
CREATION_KEYS = ["day", "pipeline_id", "first_stage_id", "segment", "amount_bin"]


def _bin(value: ir.NumericValue, edges: tuple[float, ...]) -> ir.IntegerValue:
    """Index of the bin [edges[i], edges[i+1]) holding value (0 below the first edge)."""
    out: ir.IntegerValue = ibis.literal(0)
    for e in edges[1:]:
        out = out + (value >= e).cast("int64")
    return out


def segment_expr(deals: ir.Table, by: str | None) -> ir.StringValue:
    """The segment of each deal: a deal column or a key of its JSON attributes."""
    if by is None:
        return ibis.literal("all")
    value = deals[by].cast("string") if by in deals.columns else json_text(deals.attributes, by)
    return value.fill_null(MISSING)


def _deal_summary(
    log: EventLog,
) -> tuple[tuple[float, ...], pd.Timestamp | None, pd.Timestamp | None, dict[str, int]]:
    """In one query: deal size band edges (quintiles of amount_base; none without
    amounts), the first creation, the first win, and deals by status."""
    d = log.deals
    status = d.outcome.fill_null("open")
    row = (
        d.aggregate(
            first=d.created_at.min(),
            first_won=d.closed_at.min(where=status == "won"),
            **{f"q{i}": d.amount_base.quantile(p) for i, p in enumerate(AMOUNT_QUANTILES)},
            **{f"n_{k}": d.count(where=status == k) for k in STATUSES},
        )
        .to_pandas()
        .iloc[0]
    )
    values = np.array([row[f"q{i}"] for i in range(len(AMOUNT_QUANTILES))], dtype=float)
    edges = () if np.isnan(values).any() else tuple(float(v) for v in np.unique(values))
    first = None if pd.isna(row["first"]) else pd.Timestamp(row["first"])
    first_won = None if pd.isna(row["first_won"]) else pd.Timestamp(row["first_won"])
    return edges, first, first_won, {k: int(row[f"n_{k}"]) for k in STATUSES}


def amount_bin_expr(amount: ir.NumericValue, edges: tuple[float, ...]) -> ir.StringValue:
    """Deal size band label: 'a0' (smallest) ... by the edges; missing amounts apart."""
    out = ibis.literal(0)
    for e in edges:
        out = out + (amount >= e).cast("int64")
    label = ibis.literal("a") + out.cast("string")
    return ibis.ifelse(amount.isnull(), ibis.literal(MISSING), label)


def amount_bins(amount: pd.Series, edges: tuple[float, ...]) -> pd.Series:
    """The same bands as `amount_bin_expr`, for amounts already in pandas."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), amount.to_numpy(float), side="right")
    labels = pd.Series([f"a{i}" for i in idx], index=amount.index)
    return labels.where(amount.notna(), MISSING)


def _stages(log: EventLog) -> pd.DataFrame:
    """The process's stages (pipeline_id, stage_id, position, kind, probability), in
    process order, for the log's pipelines (from the process: no query needed)."""
    rows = pd.DataFrame(log.process.stage_rows())
    if log.pipeline_id is not None:
        rows = rows[rows.pipeline_id == log.pipeline_id]
    rows = rows[["pipeline_id", "stage_id", "position", "kind", "probability"]]
    return _sorted(rows.astype({"probability": float}), ["pipeline_id", "position"])


def _pushes(log: EventLog) -> ir.Table | None:
    """Expected-close-date changes that moved the date later (deal_id, changed_at)."""
    ch = log.deal_changes
    ch = ch.filter(ch.field == "expected_close_date")
    # try_cast: the engine may read other fields' values before the field filter applies.
    pushed = ch.filter(ch.new_value.try_cast("date") > ch.old_value.try_cast("date"))
    if int(pushed.count().execute()) == 0:
        return None
    return pushed.select("deal_id", "changed_at")


def _pushes_before(rows: ir.Table, key: list[str], at: str, pushes: ir.Table | None) -> ir.Table:
    """rows with a `pushes` column: pushes of the deal at or before rows[at]."""
    if pushes is None:
        return rows.mutate(pushes=ibis.literal(0, type="int64"))
    p = pushes.rename(_pd="deal_id", _pat="changed_at")
    joined = rows.left_join(p, (rows.deal_id == p._pd) & (p._pat <= rows[at]))
    counted = joined.group_by(key).aggregate(pushes=joined._pat.count())
    return rows.join(counted, key)


def _amount_changes(log: EventLog) -> ir.Table | None:
    """Amount changes known at `now` (deal_id, changed_at, seq, old, new), or None."""
    ch = log.deal_changes
    ch = ch.filter(ch.field == "amount")
    if int(ch.count().execute()) == 0:
        return None
    ch = sequenced_changes(log.store, ch)
    return ch.select(
        _cd="deal_id",
        _cat="changed_at",
        _seq="seq",
        _old=ch.old_value.try_cast("float64"),
        _new=ch.new_value.try_cast("float64"),
    )


def _amount_base_at(
    rows: ir.Table, key: list[str], at: str, changes: ir.Table | None, currency: str
) -> ir.Table:
    """rows (with deal_id, amount, amount_base, currency) plus `amount_at`: amount_base
    (in the process `currency`) as it stood
    at rows[at], rebuilt from amount changes like `log.as_of` does (the value after the
    last change by then, else before the first later change, else the deal's; changes
    at one instant in the order of `sequenced_changes`)."""
    if changes is None:
        return rows.mutate(amount_at=rows.amount_base)
    j = rows.left_join(changes, rows.deal_id == changes._cd)
    before = j._cat <= j[at]
    after = j._cat > j[at]
    agg = j.group_by(key).aggregate(
        _nb=before.cast("int64").sum(),
        _vb=j._new.argmax(ibis.ifelse(before, j._seq, ibis.null("int64"))),
        _na=after.cast("int64").sum(),
        _va=j._old.argmin(ibis.ifelse(after, j._seq, ibis.null("int64"))),
    )
    out = rows.join(agg, key)
    rate = base_rate(out, currency)
    value = ibis.cases(
        (out._nb > 0, out._vb * rate),
        (out._na > 0, out._va * rate),
        else_=out.amount_base,
    )
    return out.mutate(amount_at=value).drop("_nb", "_vb", "_na", "_va")


# Timed closes fall at midnight about once in 86,400 (to the second): a log whose
# wins are nearly all at midnight has dates for closes.
DATED_SHARE = 0.95
DATED_MIN_WINS = 20


@dataclass(frozen=True)
class History:
    """Compact aggregates of a log as of `now` (see the module docstring)."""

    now: pd.Timestamp
    by: str | None
    currency: str
    stages: pd.DataFrame  # pipeline_id, stage_id, position, kind, probability
    visits: pd.DataFrame
    open_deals: pd.DataFrame
    wins: pd.DataFrame
    creations: pd.DataFrame
    stage_rates: pd.DataFrame
    first_created: pd.Timestamp | None
    outcomes: dict[str, int]  # deals by status: open, won, lost, no_decision
    amount_edges: tuple[float, ...]  # deal size bands (see AMOUNT_QUANTILES)
    # `visits` split by entry week too (week: the Monday it starts): read only when the
    # log is too short to compare months (see `MonteCarlo._shocks`); None once it holds
    # WEEKLY_MONTHS months since its first win.
    weekly_visits: pd.DataFrame | None = None
    # At least DATED_SHARE of the stage entries at midnight (see `dated`).
    events_dated: bool = False
    # The one pipeline the log was filtered to (None: every pipeline of the process).
    pipeline: str | None = None

    @property
    def open_stages(self) -> pd.DataFrame:
        """Open stages in process order, one row each, with a dense `state` index."""
        s = self.stages[self.stages.kind == "open"].sort_values(["pipeline_id", "position"])
        return s.reset_index(drop=True).assign(state=lambda f: np.arange(len(f)))

    @property
    def closed(self) -> int:
        """Deals closed (won, lost or no decision) by `now`."""
        return sum(n for k, n in self.outcomes.items() if k != "open")

    @property
    def steady_from(self) -> pd.Timestamp | None:
        """The first win: before it the log may be still filling (an export that keeps
        the deals closed within its window holds, for its first months, only the deals
        that survived until then), so rates seen earlier do not measure the process's
        ups and downs. None without wins."""
        if not len(self.wins):
            return None
        return pd.Timestamp(self.wins.closed_at.min())

    @property
    def dated(self) -> bool:
        """Whether closes are stamped with dates: at least DATED_SHARE of the wins
        close at midnight (so that a few timed closes do not flip a date-only export),
        or, with fewer than DATED_MIN_WINS wins, of the stage entries. The
        forecast's calendar periods then read each stamp as the day it names."""
        t = pd.to_datetime(self.wins.closed_at)
        if len(t) < DATED_MIN_WINS:
            return self.events_dated
        return float((t == t.dt.normalize()).mean()) >= DATED_SHARE

    @property
    def history_days(self) -> float:
        """Days from the first deal's creation to `now` (0 for an empty log)."""
        if self.first_created is None:
            return 0.0
        return max(0.0, (self.now - self.first_created) / pd.Timedelta(days=1))


def _visits(
    log: EventLog,
    by: str | None,
    pushes: ir.Table | None,
    amounts: ir.Table | None,
    edges: tuple[float, ...],
    *,
    weekly: bool,
) -> pd.DataFrame:
    """The visit histogram (see the module docstring), split by entry week too with
    `weekly`."""
    iv = log.stage_intervals
    iv = iv.filter(iv.kind == "open")
    st = log.store.table("stages").select(
        _np="pipeline_id", _ns="stage_id", next_kind="kind", next_position="position"
    )
    iv = iv.left_join(st, (iv.pipeline_id == st._np) & (iv.next_stage_id == st._ns)).drop(
        "_np", "_ns"
    )
    d = log.deals
    deals = d.select(
        "amount",
        "amount_base",
        "currency",
        _did="deal_id",
        _created="created_at",
        _outcome="outcome",
        segment=segment_expr(d, by),
    )
    iv = iv.join(deals, iv.deal_id == deals._did).drop("_did")
    dest = ibis.cases(
        (iv.censored, ibis.null("string")),
        (iv.next_stage_id.notnull() & (iv.next_kind == "open"), iv.next_stage_id),
        (iv.next_stage_id.notnull() & (iv.next_kind == "won"), ibis.literal("won")),
        (iv.next_stage_id.notnull(), ibis.literal("lost")),
        (iv._outcome == "won", ibis.literal("won")),
        else_=ibis.literal("lost"),
    )
    age = days_between(iv._created, iv.entered_at)
    iv = iv.mutate(
        dest=dest,
        tis_bin=_bin(iv.days, TIS_EDGES),
        age_bin=_bin(age, AGE_EDGES),
        month=iv.entered_at.truncate("M"),
        **({"week": iv.entered_at.truncate("W")} if weekly else {}),
    )
    iv = _pushes_before(iv, ["deal_id", "step"], "entered_at", pushes)
    # The deal's size band as it stood when the visit began: a later amount (a lost
    # deal's zero, say) must not explain how the visit ended.
    iv = _amount_base_at(iv, ["deal_id", "step"], "entered_at", amounts, log.process.currency)
    iv = iv.mutate(
        push_bin=ibis.least(iv.pushes, MAX_PUSHES),
        amount_bin=amount_bin_expr(iv.amount_at, edges),
    )
    # For the amount drift: won deals' amounts at the visit's entry and as booked.
    won = (iv._outcome == "won") & iv.amount_at.notnull() & iv.amount_base.notnull()
    out = iv.group_by(WEEKLY_KEYS if weekly else VISIT_KEYS).aggregate(
        n=iv.count(),
        sum_days=exact_sum(iv.days, DAYS_SCALE),
        won_visits=won.cast("int64").sum(),
        won_at_entry=exact_sum(iv.amount_at, AMOUNT_SCALE, where=won),
        won_booked=exact_sum(iv.amount_base, AMOUNT_SCALE, where=won),
    )
    frame = out.to_pandas()
    # All-NULL sums arrive as object columns: make them numeric before filling.
    for col in ("won_visits", "won_at_entry", "won_booked"):
        frame[col] = pd.to_numeric(frame[col]).fillna(0)
    return frame


def exact_sum(
    value: ir.NumericValue, scale: int, *, where: ir.BooleanValue | None = None
) -> ir.FloatingValue:
    """The sum of a float column, the same whatever order the engine adds the rows in.

    A float sum depends on the order of its terms, which a parallel engine does not
    fix: the same query gave sums of days differing in the last bits from run to run,
    and seeded forecasts differing with them. Each value is rounded to `scale`
    decimals first; decimals add exactly.
    """
    return value.cast(dt.Decimal(38, scale)).sum(where=where).cast("float64")


def _months_between(start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Calendar months from start's month to end's, both counted."""
    return (end.year - start.year) * 12 + end.month - start.month + 1


def monthly_visits(weekly: pd.DataFrame) -> pd.DataFrame:
    """The visit histogram by entry month from the one by entry week (a week that
    straddles two months is already two rows: the engine groups by both)."""
    return weekly.groupby(VISIT_KEYS, dropna=False, sort=False, as_index=False)[VISIT_SUMS].sum()


def _open_deals(
    log: EventLog,
    by: str | None,
    pushes: ir.Table | None,
    amounts: ir.Table | None,
    edges: tuple[float, ...],
    stages: pd.DataFrame,
) -> pd.DataFrame:
    c = log.cases
    c = c.filter(c.status == "open")
    c = c.select(
        "deal_id",
        "pipeline_id",
        "current_stage_id",
        "current_stage_entered_at",
        "created_at",
        "amount",
        "amount_base",
        "currency",
        "expected_close_date",
        segment=segment_expr(c, by),
    )
    c = c.mutate(
        _entered=c.current_stage_entered_at.fill_null(c.created_at),
    )
    c = _pushes_before(c, ["deal_id"], "_entered", pushes).rename(pushes_at_entry="pushes")
    c = _amount_base_at(c, ["deal_id"], "_entered", amounts, log.process.currency)
    if pushes is None:
        c = c.mutate(pushes=ibis.literal(0, type="int64"))
    else:
        # The log is cut at `now`, so every push it holds happened by then.
        total = pushes.group_by(_tid="deal_id").aggregate(pushes=pushes.count())
        c = c.left_join(total, c.deal_id == total._tid).drop("_tid")
        c = c.mutate(pushes=c.pushes.fill_null(0))
    f = c.drop("_entered").to_pandas()
    # A deal without stage events sits in its pipeline's first open stage since creation.
    open_stages = stages[stages.kind == "open"]
    first = open_stages.groupby("pipeline_id", as_index=False).first()[["pipeline_id", "stage_id"]]
    first = first.rename(columns={"stage_id": "_first"})
    f = f.merge(first, on="pipeline_id", how="left")
    f["stage_id"] = f.current_stage_id.fillna(f._first)
    entered = f.current_stage_entered_at.fillna(f.created_at)
    f["tis_days"] = ((log.now - entered) / DAY).clip(lower=0.0)
    f["age_days"] = ((log.now - f.created_at) / DAY).clip(lower=0.0)
    f["age_at_entry"] = ((entered - f.created_at) / DAY).clip(lower=0.0)
    # The band as the current visit began, as for the visits the hazards learn from.
    f["amount_bin"] = amount_bins(f.amount_at, edges)
    dropped = ["_first", "current_stage_id", "current_stage_entered_at", "amount", "amount_at"]
    return f.drop(columns=dropped)


def _wins(log: EventLog, by: str | None, edges: tuple[float, ...]) -> pd.DataFrame:
    d = log.deals
    w = d.filter((d.outcome == "won") & d.closed_at.notnull())
    f = w.select(
        "deal_id", "pipeline_id", "closed_at", "amount_base", segment=segment_expr(w, by)
    ).to_pandas()
    return f.assign(amount_bin=amount_bins(f.amount_base, edges))


def _creations(log: EventLog, by: str | None, edges: tuple[float, ...]) -> pd.DataFrame:
    d = log.deals
    e = log.events
    first = e.filter(e.step == 0).select(_fid="deal_id", first_stage_id="stage_id")
    j = d.left_join(first, d.deal_id == first._fid)
    j = j.mutate(
        day=j.created_at.truncate("D"),
        segment=segment_expr(d, by),
        amount_bin=amount_bin_expr(d.amount_base, edges),
    )
    out = j.group_by(CREATION_KEYS).aggregate(n=j.count())
    return out.to_pandas()


def _stage_rates(log: EventLog) -> pd.DataFrame:
    e = log.events
    e = e.filter(e.kind == "open")
    d = log.deals
    closed = d.filter(d.outcome.notnull()).select(_cid="deal_id", _outcome="outcome")
    j = e.join(closed, e.deal_id == closed._cid)
    return (
        j.group_by(["pipeline_id", "stage_id"])
        .aggregate(
            closed=j.deal_id.nunique(),
            won=j.deal_id.nunique(where=j._outcome == "won"),
        )
        .to_pandas()
    )


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows in a fixed order: the engine returns groups in any order, and seeded
    draws over rows must not depend on it."""
    return frame.sort_values(keys, na_position="first", kind="stable").reset_index(drop=True)


def _midnight_share(log: EventLog) -> float:
    """Share of the stage entries stamped at midnight (0 without entries)."""
    e = log.events
    at = e.entered_at
    share = (at == at.truncate("D")).cast("float64").mean().to_pandas()
    return 0.0 if share is None or pd.isna(share) else float(share)


def _no_deals(log: EventLog) -> str:
    """Why a log without deals cannot be forecast, and what would help."""
    said = f"the log holds no deals as of {log.now:%Y-%m-%d}"
    first = first_deal_after_cut(log)
    if first is not None:
        # Importing more would not help (nor the deals of the leads created by then:
        # they are in the log).
        return (
            f"{said}; its first deal was created on {first:%Y-%m-%d}: "
            "forecast from a later --as-of date"
        )
    leads = int(log.leads.count().execute())
    if leads:
        return (
            f"the log holds no deals, only {leads:,} leads: a bookings forecast learns from "
            "deals, their stages and their outcomes; import the deals the leads became "
            "(`kpis` shows how leads convert)"
        )
    return (
        f"{said}: a bookings forecast learns from deals and their outcomes; import deals, "
        "or forecast from a later --as-of date"
    )


def pull_history(log: EventLog, *, by: str | None = None) -> History:
    """Pull the compact aggregates every forecaster needs from `log` (as of `log.now`).

    `by` names a segment: a deal column (owner_id, source, product, region, ...)
    or a key of the deals' JSON attributes. InputError if no deal has it.
    """
    stages = _stages(log)
    pushes = _pushes(log)
    amounts = _amount_changes(log)
    edges, first, first_won, outcomes = _deal_summary(log)
    if first is None:
        raise NotEnoughDataError(_no_deals(log))
    # Weeks are read only while months since the first win are too few to compare;
    # past WEEKLY_MONTHS the split would only cost time.
    weekly = first_won is None or _months_between(first_won, log.now) < WEEKLY_MONTHS
    # Sorted before the months are summed from the weeks: pandas adds floats in row
    # order, and the engine returns rows in any order.
    keys = WEEKLY_KEYS if weekly else VISIT_KEYS
    raw = _sorted(_visits(log, by, pushes, amounts, edges, weekly=weekly), keys)
    visits = monthly_visits(raw) if weekly else raw
    history = History(
        now=log.now,
        by=by,
        currency=log.process.currency,
        stages=stages,
        visits=_sorted(visits, VISIT_KEYS),
        open_deals=_sorted(_open_deals(log, by, pushes, amounts, edges, stages), ["deal_id"]),
        wins=_sorted(_wins(log, by, edges), ["closed_at", "deal_id"]),
        creations=_sorted(_creations(log, by, edges), CREATION_KEYS),
        stage_rates=_sorted(_stage_rates(log), ["pipeline_id", "stage_id"]),
        first_created=first,
        outcomes=outcomes,
        amount_edges=edges,
        weekly_visits=raw if weekly else None,
        events_dated=_midnight_share(log) >= DATED_SHARE,
        pipeline=log.pipeline_id,
    )
    if by is not None:
        seen = pd.concat([history.open_deals.segment, history.creations.segment])
        if len(seen) and (seen == MISSING).all():
            cols = ", ".join(c for c in log.deals.columns if c not in ("attributes",))
            raise InputError(
                f"segment {by!r}: no deal has a value for it; use a deal column ({cols}) "
                "or a key of the deals' attributes"
            )
    return history
