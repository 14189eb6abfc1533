"""The EventLog: the store seen through filters and, optionally, as of a date.

`log.as_of(t)` is the log as it was known at `t`: deals created after `t`
are gone, events and changes after `t` are removed, outcomes reached after
`t` are unknown (the deal is open and censored at `t`), and amounts, expected
close dates and owners are the values they had at `t` (rebuilt from
`deal_changes`). Everything downstream (snapshots, flow, backtests,
experiments) is built on this one primitive.

All tables are Ibis expressions; nothing is pulled into Python here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from funnelwise.errors import InputError
from funnelwise.process import OUTCOME_KINDS, Process
from funnelwise.store import Store
from funnelwise.timeutil import Instant, to_timestamp

# Deal fields whose history lives in deal_changes, with the type to cast back to.
TRACKED_FIELDS: dict[str, str] = {
    "amount": "float64",
    "expected_close_date": "date",
    "owner_id": "string",
}
DEAL_COLUMNS = (
    "deal_id",
    "pipeline_id",
    "name",
    "account_id",
    "owner_id",
    "source",
    "campaign_id",
    "product",
    "region",
    "amount",
    "currency",
    "amount_base",
    "created_at",
    "expected_close_date",
    "closed_at",
    "outcome",
    "loss_reason",
    "attributes",
    "version",
    "origin",
)
# Deal columns whose value as of a cutoff differs from the stored one: the tracked
# fields and what follows the amount, and the outcome fields of a later close.
AS_OF_FIELDS = frozenset((*TRACKED_FIELDS, "amount_base", "outcome", "loss_reason", "closed_at"))
SECONDS_PER_DAY = 86400.0
# Before any import: where a change came from no import, for ordering ties.
_EARLIEST = ibis.literal(pd.Timestamp("1900-01-01"))
# Every analysis orders a deal's events by (entered_at, seq): never by row order.
_EVENT_ORDER = ibis.window(group_by="deal_id", order_by=["entered_at", "seq"])


def json_path(key: str) -> str:
    """The JSON path of a top-level key, quoted as it is written (dots, colons,
    quotes and accented letters are part of the key)."""
    return "$." + json.dumps(key, ensure_ascii=False)


@ibis.udf.scalar.builtin(name="json_value")
def _json_value(document: str, path: str) -> str:  # type: ignore[empty-body]
    """The scalar at `path` of a JSON text, as JSON text (a string keeps its quotes)."""


@ibis.udf.scalar.builtin(name="json_extract_string")
def _json_extract_string(document: str, path: str) -> str:  # type: ignore[empty-body]
    """The value at `path` of a JSON text as plain text (numbers and booleans too)."""


def json_text(document: ir.StringValue, key: str) -> ir.StringValue:
    """The value of a top-level `key` of a JSON object text, as plain text: '250' for
    a number, 'true' for a boolean, null where the key is missing or holds a list or
    an object. (json_value finds the key by its quoted path and returns the value as
    JSON text; json_extract_string then reads that text whole, at path '$'.)"""
    return _json_extract_string(_json_value(document, json_path(key)), "$")


def days_between(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.FloatingValue:
    """Elapsed days from start to end as a float expression."""
    return (end.epoch_seconds() - start.epoch_seconds()).cast("float64") / SECONDS_PER_DAY


def first_deal_after_cut(log: EventLog) -> pd.Timestamp | None:
    """When the store's first deal was created, if the log is cut before it (a later
    as-of date would help, loading more would not); None otherwise."""
    if log.cutoff is None:
        return None
    first = log.store.table("deals").created_at.min().execute()
    if first is None or pd.isna(first) or pd.Timestamp(first) <= log.cutoff:
        return None
    return pd.Timestamp(first)


def base_rate(deals: ir.Table, currency: str) -> ir.FloatingValue:
    """The deal's rate from amount to amount_base, which an earlier amount moves with.

    A deal that ends at zero (a lost deal's booked value) or without an amount shows
    no rate; in the process `currency` (or none given) it is 1, so its earlier
    amount still has a base value: a missing one would tell the outcome.
    """
    same = deals.currency.isnull() | (deals.currency == currency)
    return ibis.ifelse(
        deals.amount != 0,
        deals.amount_base / deals.amount,
        ibis.ifelse(same, ibis.literal(1.0), ibis.null("float64")),
    )


def left_join_on(left: ir.Table, right: ir.Table, key: str | Sequence[str]) -> ir.Table:
    """Left join keeping the left key (or keys) once and every other right column."""
    keys = [key] if isinstance(key, str) else list(key)
    rest = [right[c] for c in right.columns if c not in keys]
    on = [left[k] == right[k] for k in keys]
    return left.left_join(right, on).select(left, *rest)


def sequenced_changes(store: Store, changes: ir.Table) -> ir.Table:
    """`changes` (rows of deal_changes) plus `seq`: the change's place among the
    deal's changes of its field, from 0, in time order; what a field's value was at
    a time is the new value of the last change by then, else the old value of the
    first one after.

    Changes of one field stamped at one instant (a date-only export stamps a day's
    changes at midnight) are ordered so that the same value counts in every run:

    1. a chain counts to its end: a change whose new value another one at that
       instant starts from (its old value) comes first, and a change starting from
       another's new value comes last, so A→B, B→C is A→B then B→C whatever the
       rows' order, and the value then is C (and was A just before);
    2. otherwise the change of the later import (by its start; a change from no
       import, such as a generated one, counts as the earliest) comes last, then
       the greater import id;
    3. then the greater new value: amounts compared as numbers, dates (ISO text)
       and ids as text, a cleared value (none) as the smallest; last the greater
       old value.

    The store keeps no row order of a source, so none of this reads one. Every
    input is a stored table: the expression stays one query (see
    scoring.snapshots.run_as_of).
    """
    imports = store.table("imports").select(_iid="import_id", _run="started_at")
    ch = changes.left_join(imports, changes.origin == imports._iid).select(
        *changes.columns, _run=imports._run.fill_null(_EARLIEST)
    )
    # How many other changes at the instant start from this one's new value, and end
    # at its old value; a change from a value to itself does not link to itself. A
    # view: joined with what is derived from it, a table's columns would be mixed up.
    o = ch.view()
    at = {"_d": o.deal_id, "_f": o.field, "_t": o.changed_at}
    starts = o.group_by(**at, _v=o.old_value).aggregate(_ns=o.count())
    ends = o.group_by(**at, _v=o.new_value).aggregate(_ne=o.count())

    def same(t: ir.Table, other: ir.Table, value: str) -> list[ir.BooleanValue]:
        keys = zip(("deal_id", "field", "changed_at"), at, strict=True)
        return [*(t[k] == other[a] for k, a in keys), t[value] == other._v]

    j = ch.left_join(starts, same(ch, starts, "new_value")).select(ch, starts._ns)
    j = j.left_join(ends, same(j, ends, "old_value")).select(j, ends._ne)
    itself = (j.old_value == j.new_value).fill_null(False).cast("int64")
    carried = (j._ns.fill_null(0) - itself) > 0
    carries = (j._ne.fill_null(0) - itself) > 0
    number = ibis.ifelse(j.field == "amount", j.new_value.try_cast("float64"), ibis.null("float64"))
    order = [
        "changed_at",
        ibis.desc(carried.cast("int8")),
        carries.cast("int8"),
        "_run",
        "origin",
        ibis.asc(number, nulls_first=True),
        ibis.asc(j.new_value, nulls_first=True),
        ibis.asc(j.old_value, nulls_first=True),
    ]
    seq = ibis.row_number().over(group_by=["deal_id", "field"], order_by=order)
    return j.select(*changes.columns, seq=seq)


@dataclass(frozen=True)
class EventLog:
    """A filtered, possibly time-cut view of a store.

    Build one with `funnelwise.open(project_or_url)`; derive others with
    `filter(...)` and `as_of(t)`. Instances are immutable and cheap.
    """

    store: Store
    process: Process
    cutoff: pd.Timestamp | None = None
    pipeline_id: str | None = None
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    # Per key, the values kept (None keeps deals without a value).
    where: tuple[tuple[str, tuple[str | None, ...]], ...] = field(default=())

    # -- deriving logs ---------------------------------------------------------
    def as_of(self, t: Instant) -> EventLog:
        """The log as known at `t` (naive UTC). Cutting twice keeps the earlier cut."""
        ts = to_timestamp(t, name="as_of")
        if self.cutoff is not None and self.cutoff <= ts:
            return self
        return replace(self, cutoff=ts)

    def filter(
        self,
        *,
        pipeline: str | None = None,
        since: Instant | None = None,
        until: Instant | None = None,
        **attributes: Any,
    ) -> EventLog:
        """Keep deals of one pipeline, created in [since, until), with attribute values.
        Filtering again narrows: windows intersect (one that holds no instant is an
        error), a key filtered twice keeps the values both allow, and another
        pipeline is an error.

        Attribute filters take a deal column (owner_id, source, product, region,
        amount, ...) or a key of the deal's `attributes`; a list keeps any of its
        values, and None keeps deals without one. A key that is neither a column
        nor an attribute of any deal is an InputError (a typo would keep nothing).
        With a cutoff, amount, owner, expected close date and the outcome (with its
        close time and loss reason) are matched as they stood then: a deal won later
        is open then.
        """
        if pipeline is not None:
            self.process.pipeline(pipeline)  # raises naming valid pipelines
            if self.pipeline_id is not None and pipeline != self.pipeline_id:
                raise InputError(
                    f"this log is already cut to pipeline {self.pipeline_id!r}; filtering "
                    f"it to {pipeline!r} would keep nothing"
                )
        where = dict(self.where)
        for key, value in attributes.items():
            self._check_key(key)
            raw = value if isinstance(value, list | tuple | set | frozenset) else [value]
            values = tuple(None if v is None else self._as_text(key, v) for v in raw)
            if key in where:
                values = tuple(v for v in where[key] if v in values)
            where[key] = values
        start = to_timestamp(since, name="since") if since is not None else None
        end = to_timestamp(until, name="until") if until is not None else None
        since_ = max((t for t in (self.since, start) if t is not None), default=None)
        until_ = min((t for t in (self.until, end) if t is not None), default=None)
        if since_ is not None and until_ is not None and since_ >= until_:
            raise InputError(
                f"--since {since_:%Y-%m-%d} is not before --until {until_:%Y-%m-%d}: no deal "
                "is created in between; swap them, or give an --until after --since"
            )
        return replace(
            self,
            pipeline_id=pipeline if pipeline is not None else self.pipeline_id,
            since=since_,
            until=until_,
            where=tuple(sorted(where.items())),
        )

    def _has_key(self, table: str, key: str) -> bool:
        """Whether `key` is a column of `table` or a key of any of its rows' attributes."""
        if key in self.store.table(table).columns:
            return True
        path = json_path(key)
        found = self.store.raw.execute(
            f"SELECT 1 FROM {table} WHERE json_extract(attributes, ?) IS NOT NULL LIMIT 1",
            [path],
        ).fetchone()
        return found is not None

    def _check_key(self, key: str) -> None:
        if self._has_key("deals", key) or self._has_key("leads", key):
            return
        keys = [c for c in self.store.table("deals").columns if c not in ("attributes", "version")]
        raise InputError(
            f"no deal or lead has {key!r}: it is neither a deal column ({', '.join(keys)}) "
            "nor a key of any deal's or lead's attributes"
        )

    def _as_text(self, key: str, value: object) -> str:
        """A filter value in one canonical text, checked against the deal column's
        type: a number as a float's text, a date in ISO form, read as `as_of` reads
        it (an aware time in UTC; `_matches` reads it back as the column's type)."""
        dtype = self.store.table("deals").schema().get(key)
        if dtype is not None and (dtype.is_date() or dtype.is_timestamp()):
            if not isinstance(value, str | dt.date | pd.Timestamp):
                raise InputError(f"{key} is a date; {value!r} is not one")
            stamp = to_timestamp(value, name=key)
            return stamp.date().isoformat() if dtype.is_date() else stamp.isoformat()
        if dtype is not None and dtype.is_numeric():
            try:
                if isinstance(value, bool):
                    raise TypeError(value)
                return repr(float(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise InputError(f"{key} is a number; {value!r} is not one") from None
        return str(value)

    # -- time ------------------------------------------------------------------
    @cached_property
    def observed_until(self) -> pd.Timestamp:
        """End of observation of the whole store: recorded by synth/ingest, else the last
        timestamp in the data."""
        stored = self.store.meta("observed_until")
        if stored is not None:
            return to_timestamp(stored)
        s = self.store
        candidates = [
            s.table("stage_events").entered_at.max(),
            s.table("deals").created_at.max(),
            s.table("deals").closed_at.max(),
            s.table("deal_changes").changed_at.max(),
            s.table("activities").at.max(),
        ]
        values = [v.execute() for v in candidates]
        found = [pd.Timestamp(v) for v in values if v is not None and not pd.isna(v)]
        return max(found) if found else pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None))

    @property
    def now(self) -> pd.Timestamp:
        """The instant open deals are censored at: the cutoff, or the end of observation."""
        if self.cutoff is not None:
            return min(self.cutoff, self.observed_until)
        return self.observed_until

    # -- tables ----------------------------------------------------------------
    def _attribute(self, deals: ir.Table, key: str) -> ir.Value:
        if key in deals.columns:
            return deals[key].cast("string")
        return json_text(deals.attributes, key)

    def _filtered_deals(self) -> ir.Table:
        d = self.store.table("deals")
        if self.pipeline_id is not None:
            d = d.filter(d.pipeline_id == self.pipeline_id)
        if self.since is not None:
            d = d.filter(d.created_at >= self.since)
        if self.until is not None:
            d = d.filter(d.created_at < self.until)
        if self.cutoff is not None:
            d = d.filter(d.created_at <= self.cutoff)
        for key, values in self.where:
            if not self._matched_later(key):
                d = d.filter(self._matches(d, key, values))
        return d

    def _matched_later(self, key: str) -> bool:
        """Whether `key` is matched on the deals as they stood at the cutoff (in
        `deals`, after their values are rebuilt) rather than on the stored ones."""
        return self.cutoff is not None and key in AS_OF_FIELDS

    def _matches(self, t: ir.Table, key: str, values: tuple[str | None, ...]) -> ir.BooleanValue:
        """Rows of `t` whose `key` is one of `values` (None: no value), compared as the
        column's type: numbers as numbers, dates as dates, the rest as text."""
        dtype = t.schema().get(key)
        kept = [v for v in values if v is not None]
        column: ir.Value
        typed: Sequence[object]
        if dtype is not None and dtype.is_numeric():
            column, typed = t[key].cast("float64"), [float(v) for v in kept]
        elif dtype is not None and dtype.is_date():
            column, typed = t[key], [dt.date.fromisoformat(v) for v in kept]
        elif dtype is not None and dtype.is_timestamp():
            column, typed = t[key], [pd.Timestamp(v).to_pydatetime() for v in kept]
        else:
            column, typed = self._attribute(t, key), kept
        hit = column.isin(typed) if typed else ibis.literal(False)
        return (hit | column.isnull()) if None in values else hit.fill_null(False)

    def _values_at_cutoff(self, cutoff: pd.Timestamp) -> ir.Table:
        """Per deal, the tracked fields as they stood at the cutoff (NULL = unchanged);
        changes at one instant count in the order `sequenced_changes` gives them."""
        ch = self.store.table("deal_changes")
        ch = sequenced_changes(self.store, ch.filter(ch.field.isin(list(TRACKED_FIELDS))))
        key = ["deal_id", "field"]
        before = ch.filter(ch.changed_at <= cutoff)
        before = (
            before.mutate(_rn=ibis.row_number().over(group_by=key, order_by=ibis.desc("seq")))
            .filter(lambda t: t._rn == 0)
            .select("deal_id", "field", value="new_value")
        )
        after = ch.filter(ch.changed_at > cutoff)
        after = (
            after.mutate(_rn=ibis.row_number().over(group_by=key, order_by="seq"))
            .filter(lambda t: t._rn == 0)
            .select("deal_id", "field", value="old_value")
        )
        # A change at or before the cutoff wins; otherwise the value before the
        # first later change.
        later_only = after.anti_join(before, key)
        plain = {"deal_id": "string", "field": "string", "value": "string"}
        known = before.cast(plain).union(later_only.cast(plain))
        cols = {}
        for name in TRACKED_FIELDS:
            sel = known.field == name
            cols[f"_{name}_has"] = (sel).cast("int8").max()
            cols[f"_{name}_val"] = known.value.max(where=sel)
        return known.group_by("deal_id").aggregate(**cols)

    @cached_property
    def deals(self) -> ir.Table:
        """Deals after filters; with a cutoff, their state as known at the cutoff."""
        d = self._filtered_deals()
        if self.cutoff is None:
            return d.select(*DEAL_COLUMNS)
        t = self.cutoff
        later = d.closed_at > t
        d = d.mutate(
            outcome=ibis.ifelse(later, ibis.null("string"), d.outcome),
            loss_reason=ibis.ifelse(later, ibis.null("string"), d.loss_reason),
            closed_at=ibis.ifelse(later, ibis.null("timestamp"), d.closed_at),
        )
        v = self._values_at_cutoff(t)
        j = left_join_on(d, v, "deal_id")
        amount_t = ibis.ifelse(j._amount_has == 1, j._amount_val.cast("float64"), j.amount)
        rate = base_rate(j, self.process.currency)
        j = j.mutate(
            amount=amount_t,
            amount_base=ibis.ifelse(j._amount_has == 1, amount_t * rate, j.amount_base),
            expected_close_date=ibis.ifelse(
                j._expected_close_date_has == 1,
                j._expected_close_date_val.cast("date"),
                j.expected_close_date,
            ),
            owner_id=ibis.ifelse(j._owner_id_has == 1, j._owner_id_val, j.owner_id),
        )
        # Owner, amount, close date and outcome are matched as they stood at the cutoff.
        for key, values in self.where:
            if self._matched_later(key):
                j = j.filter(self._matches(j, key, values))
        return j.select(*DEAL_COLUMNS)

    @cached_property
    def _kept_ids(self) -> ir.Table:
        """The ids of the kept deals (filters, created by the cutoff). Rows of the other
        tables are kept by id alone: joining `deals` would rebuild every deal's values
        as of the cutoff, which only a filter on a value that differs then (owner,
        amount, close date, outcome) needs."""
        if any(self._matched_later(key) for key, _ in self.where):
            return self.deals.select("deal_id")
        return self._filtered_deals().select("deal_id")

    def _deal_scoped(self, name: str, time_col: str) -> ir.Table:
        t = self.store.table(name)
        if self.cutoff is not None:
            t = t.filter(t[time_col] <= self.cutoff)
        if self._is_filtered:
            t = t.semi_join(self._kept_ids, "deal_id")
        return t

    @property
    def _is_filtered(self) -> bool:
        return bool(
            self.cutoff is not None
            or self.pipeline_id is not None
            or self.since is not None
            or self.until is not None
            or self.where
        )

    @cached_property
    def stage_events(self) -> ir.Table:
        """Stage entries known at the cutoff, of the kept deals."""
        return self._deal_scoped("stage_events", "entered_at")

    @cached_property
    def deal_changes(self) -> ir.Table:
        """Field changes known at the cutoff, of the kept deals."""
        return self._deal_scoped("deal_changes", "changed_at")

    @cached_property
    def checklist(self) -> ir.Table:
        """Exit-criteria evidence known at the cutoff, of the kept deals."""
        return self._deal_scoped("checklist", "done_at")

    @cached_property
    def activities(self) -> ir.Table:
        """Activities known at the cutoff: of kept deals, or of leads (unfiltered by deal)."""
        a = self.store.table("activities")
        if self.cutoff is not None:
            a = a.filter(a.at <= self.cutoff)
        if self._is_filtered:
            a = a.filter(a.deal_id.isnull() | a.deal_id.isin(self._kept_ids.deal_id))
        return a

    @cached_property
    def leads(self) -> ir.Table:
        """Leads created by the cutoff (and in the since/until window and with the
        filtered values, as deals are); conversions and disqualifications after the
        cutoff unknown."""
        lead = self.store.table("leads")
        if self.since is not None:
            lead = lead.filter(lead.created_at >= self.since)
        if self.until is not None:
            lead = lead.filter(lead.created_at < self.until)
        if self.cutoff is not None:
            t = self.cutoff
            lead = lead.filter(lead.created_at <= t)
            converted_later = lead.converted_at > t
            lead = lead.mutate(
                converted_at=ibis.ifelse(
                    converted_later, ibis.null("timestamp"), lead.converted_at
                ),
                converted_deal_id=ibis.ifelse(
                    converted_later, ibis.null("string"), lead.converted_deal_id
                ),
                disqualified_at=ibis.ifelse(
                    lead.disqualified_at > t, ibis.null("timestamp"), lead.disqualified_at
                ),
            )
        for key, values in self.where:
            # Leads share source, campaign and owner with deals, and other keys where
            # their attributes have them; a key no lead can have (region, product)
            # describes deals only and leaves the leads as they are. Matched after the
            # cutoff: a lead converted later is not converted then.
            if self._has_key("leads", key):
                lead = lead.filter(self._matches(lead, key, values))
        return lead

    @cached_property
    def stages(self) -> ir.Table:
        """The process stages (pipeline_id, stage_id, name, position, kind, targets)."""
        s = self.store.table("stages")
        if self.pipeline_id is not None:
            s = s.filter(s.pipeline_id == self.pipeline_id)
        return s

    # -- derived tables --------------------------------------------------------
    @cached_property
    def positioned_events(self) -> ir.Table:
        """Stage events with the deal's pipeline and the stage's position and kind, in no
        particular order (no window: the cheapest table for counts and aggregates)."""
        e = self.stage_events
        s = self.store.table("stages").select("pipeline_id", "stage_id", "position", "kind")
        if self.pipeline_id is not None:
            # Cut to one pipeline: every kept deal is in it, so the events need no join
            # to the deals (stage_events is already cut to the kept deals). A process of
            # one pipeline is no such cut: deals stored under another pipeline id (one
            # renamed or removed in process.yaml since the import) are not in it.
            e = e.mutate(pipeline_id=ibis.literal(self.pipeline_id))
            s = s.filter(s.pipeline_id == self.pipeline_id)
        else:
            deals = self._filtered_deals().select("deal_id", "pipeline_id")
            e = e.join(deals, "deal_id")
        return left_join_on(e, s, ["pipeline_id", "stage_id"])

    @cached_property
    def events(self) -> ir.Table:
        """`positioned_events` with a per-deal order number `step` (0-based, by entered_at
        then seq)."""
        e = self.positioned_events
        return e.mutate(step=ibis.row_number().over(_EVENT_ORDER))

    @cached_property
    def stage_intervals(self) -> ir.Table:
        """One row per stage visit: the columns of `events` and entered_at, left_at,
        next_stage_id, days, censored, terminal.

        A visit ends at the next stage entry. The last visit of an open deal is
        censored at `now` (left_at null, days up to `now`); the last open-stage
        visit of a closed deal without an outcome event ends at closed_at.
        Outcome visits are terminal (days 0).
        """
        e = self.positioned_events
        # One window for the order number and both leads: the engine sorts once.
        e = e.mutate(
            step=ibis.row_number().over(_EVENT_ORDER),
            next_stage_id=e.stage_id.lead().over(_EVENT_ORDER),
            _next_at=e.entered_at.lead().over(_EVENT_ORDER),
        )
        closed = self.deals.select("deal_id", _closed_at="closed_at")
        e = e.join(closed, "deal_id")
        terminal = e.kind.isin(list(OUTCOME_KINDS))
        left_at = ibis.cases(
            (terminal, e.entered_at),
            (e._next_at.notnull(), e._next_at),
            (e._closed_at.notnull(), ibis.greatest(e._closed_at, e.entered_at)),
            else_=ibis.null("timestamp"),
        )
        censored = (~terminal) & e._next_at.isnull() & e._closed_at.isnull()
        now = ibis.literal(self.now.to_pydatetime(), type="timestamp")
        end = ibis.ifelse(censored, ibis.greatest(now, e.entered_at), left_at)
        return e.mutate(
            left_at=left_at,
            censored=censored,
            terminal=terminal,
            days=days_between(e.entered_at, end),
        ).drop("_next_at", "_closed_at")

    @cached_property
    def cases(self) -> ir.Table:
        """One row per deal: status, current stage, furthest stage, counts and age in days.

        `status` is the outcome or 'open'; `days` runs from creation to close, or to
        `now` for open deals (censored).
        """
        e = self.events
        agg = e.group_by("deal_id").aggregate(
            n_events=e.count(),
            first_event_at=e.entered_at.min(),
            last_event_at=e.entered_at.max(),
            furthest_position=e.position.max(where=e.kind == "open"),
            n_stages=e.stage_id.nunique(),
        )
        last = e.filter(e.step == e.step.max().over(ibis.window(group_by="deal_id"))).select(
            "deal_id", current_stage_id="stage_id", current_stage_entered_at="entered_at"
        )
        d = self.deals
        now = ibis.literal(self.now.to_pydatetime(), type="timestamp")
        c = left_join_on(left_join_on(d, agg, "deal_id"), last, "deal_id")
        c = c.mutate(
            status=d.outcome.fill_null("open"),
            censored=d.outcome.isnull(),
            days=days_between(c.created_at, c.closed_at.fill_null(now)),
            n_events=c.n_events.fill_null(0),
        )
        return c

    # -- conveniences ------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Deals by state, and rows of the other tables, as plain numbers."""
        by_state = (
            self.deals.group_by(status=self.deals.outcome.fill_null("open"))
            .aggregate(n=ibis._.count())
            .to_pandas()
        )
        out = {f"deals_{k}": 0 for k in ("open", "won", "lost", "no_decision")}
        out |= {f"deals_{r.status}": int(r.n) for r in by_state.itertuples()}
        out["deals"] = sum(out[f"deals_{k}"] for k in ("open", "won", "lost", "no_decision"))
        out["stage_events"] = int(self.stage_events.count().execute())
        out["deal_changes"] = int(self.deal_changes.count().execute())
        out["activities"] = int(self.activities.count().execute())
        out["leads"] = int(self.leads.count().execute())
        return out

    def check_stage(self, stage_id: str) -> None:
        """Raise InputError unless stage_id is a stage of the log's pipelines."""
        pipelines = (
            [self.process.pipeline(self.pipeline_id)]
            if self.pipeline_id
            else list(self.process.pipelines)
        )
        known = [s for p in pipelines for s in (*p.stage_ids, *p.alias_map().values())]
        if stage_id not in known:
            raise InputError(
                f"unknown stage {stage_id!r}; stages: {', '.join(dict.fromkeys(known))}"
            )
