"""From what a reader staged to the canonical rows of deals and stage events.

A reader stages typed tables shaped like the canonical ones (`Staged`); this
module checks them, maps stage names, and derives what the source leaves
implicit, the same way for every source:

- events are ordered per deal by (entered_at, source order); `seq` numbers them;
- an event into the stage the deal is already in is not a stage entry (a
  repeat: an exact copy is a duplicate; for XES the repeat is kept as an
  activity so that every event is accounted for);
- a deal's outcome is its current stage when that is an outcome stage, else an
  explicit status, else the kind of its last stage event; its close time is
  the entry into that outcome (else the source's close date);
- every deal ends with what is known: an entry into its current open stage when
  the history does not end there ("created -> current stage" for snapshots), and
  an entry into its outcome stage at the close.

Everything is SQL in the scratch database; Python only sees distinct names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from funnelwise.errors import SourceImportError
from funnelwise.ingest.mapping import (
    Unmapped,
    map_outcomes,
    map_pipelines,
    map_stages,
    stage_map_table,
    unmapped_error,
)
from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import (
    SKIPPED,
    Problems,
    check_duplicate_keys,
    check_negative,
    check_order,
    check_references,
    check_time_range,
)
from funnelwise.process import OUTCOME_KINDS, Process
from funnelwise.store import Store

# Columns a staged table may carry, with their SQL types (missing ones are NULL).
DEAL_COLUMNS = {
    "deal_id": "VARCHAR",
    "pipeline": "VARCHAR",
    "stage": "VARCHAR",
    "outcome": "VARCHAR",
    "name": "VARCHAR",
    "account_id": "VARCHAR",
    "owner_id": "VARCHAR",
    "source": "VARCHAR",
    "campaign_id": "VARCHAR",
    "product": "VARCHAR",
    "region": "VARCHAR",
    "amount": "DOUBLE",
    "currency": "VARCHAR",
    "created_at": "TIMESTAMP",
    "expected_close_date": "DATE",
    "closed_at": "TIMESTAMP",
    "loss_reason": "VARCHAR",
    "attributes": "VARCHAR",
}
EVENT_COLUMNS = {
    "deal_id": "VARCHAR",
    "stage": "VARCHAR",
    "entered_at": "TIMESTAMP",
    "actor_id": "VARCHAR",
    "pipeline": "VARCHAR",
}
# XES: an activity's id and duration, and whether the log itself marks the event as
# an activity (files exported by funnelwise do), whatever its name.
XES_EVENT_COLUMNS = {
    "_activity_id": "VARCHAR",
    "_duration_min": "DOUBLE",
    "_is_activity": "BOOLEAN",
}
_OUTCOMES = "(" + ", ".join(literal(k) for k in OUTCOME_KINDS) + ")"


@dataclass
class Staged:
    """What a reader hands over: typed scratch tables shaped like the canonical ones.

    Every table has `_src` (index of the source file) and `_row`. `labels` maps
    a kind ('deals', 'events', ...) to {canonical column: source column} so
    problems name the column the user knows.
    """

    source: str
    deals: str | None = None
    events: str | None = None
    changes: str | None = None
    activities: str | None = None
    leads: str | None = None
    accounts: str | None = None  # shaped like the canonical table, one row per key
    users: str | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pipeline: str | None = None  # fixed pipeline id
    currency: str | None = None  # currency of amounts without one
    events_to_activities: bool = False  # XES: unmapped and repeated events are activities
    # Without `deals`: per-deal facts for deals made of events (deal_id, amount, currency,
    # attributes, created_at, owner_id); every row is a deal (XES cases).
    deal_info: str | None = None
    event_order: bool = False  # events carry `_ord`, an explicit order for equal times
    snapshot_at: pd.Timestamp | None = None  # when a snapshot export was taken
    undated_at_snapshot: bool = False  # deals without a creation date are dated at it
    # the amount is the value booked at the close; `_listed_amount` the one before
    amount_at_close: bool = False

    def label(self, kind: str, column: str) -> str:
        """The source column name behind a canonical column."""
        return self.labels.get(kind, {}).get(column, column)


@dataclass
class Assembled:
    """Scratch tables ready to load, and what was set aside on the way."""

    deals: str | None = None
    events: str | None = None
    activities_from_events: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # table -> in-import duplicates
    snapshot_at: pd.Timestamp | None = None


def normalized(st: Staging, table: str, columns: dict[str, str]) -> str:
    """SELECT of `table` with every column of `columns` (NULL where absent) plus
    `_src`, `_row` and any underscore helper columns it has."""
    have = st.columns(table)
    select = ["_src", "_row"]
    for name, sql_type in columns.items():
        if name in have:
            select.append(f"CAST({quote(name)} AS {sql_type}) AS {quote(name)}")
        else:
            select.append(f"CAST(NULL AS {sql_type}) AS {quote(name)}")
    extra = [c for c in have if c.startswith("_") and c not in ("_src", "_row")]
    select += [quote(c) for c in extra if c not in columns]
    return f"SELECT {', '.join(select)} FROM {quote(table)}"


def max_timestamp(
    st: Staging, table: str, columns: list[str], *, until: pd.Timestamp | None = None
) -> pd.Timestamp | None:
    """The newest value over timestamp columns of a scratch table (values after
    `until` left out)."""
    if not columns:
        return None
    cut = f" FILTER (WHERE {{c}} <= {literal(until.isoformat())}::TIMESTAMP)" if until else ""
    parts = ", ".join(f"max({quote(c)}){cut.format(c=quote(c))}" for c in columns)
    value = st.scalar(f"SELECT greatest({parts}) FROM {quote(table)}")
    return None if value is None else pd.Timestamp(value)


class Assembler:
    """Runs the checks and derivations of one import (see the module docstring)."""

    def __init__(
        self,
        st: Staging,
        staged: Staged,
        process: Process,
        store: Store,
        problems: Problems,
        *,
        now: pd.Timestamp,
    ) -> None:
        self.st = st
        self.staged = staged
        self.process = process
        self.store = store
        self.problems = problems
        self.now = now
        self.out = Assembled(snapshot_at=staged.snapshot_at)

    # -- deals ---------------------------------------------------------------------
    def _check_deals(self) -> str:
        st, s, p = self.st, self.staged, self.problems
        assert s.deals is not None
        deals = st.create(st.name("deals"), normalized(st, s.deals, DEAL_COLUMNS))
        lab = lambda c: s.label("deals", c)  # noqa: E731
        if s.undated_at_snapshot:
            # Undated deals take their first stage entry, else the snapshot's time.
            self.out.snapshot_at = s.snapshot_at or self._newest(deals)
        elif s.events is None:
            p.add(
                f"SELECT _src, _row, {literal(lab('created_at'))}, NULL, "
                f"'required value is missing' FROM {quote(deals)} WHERE created_at IS NULL",
                quarantine=True,
                code="missing",
            )
        compare = [c for c in DEAL_COLUMNS if c != "deal_id"]
        check_duplicate_keys(st, p, deals, "deal_id", lab("deal_id"), compare)
        check_negative(p, deals, "amount", lab("amount"))
        # Close dates are checked once the outcome is known: for an open deal a
        # source's close date is an expected one, and may well lie ahead.
        check_time_range(p, deals, {"created_at": lab("created_at")}, self.now)
        return deals

    def _newest(self, deals: str) -> pd.Timestamp | None:
        # Dates after the import are quarantined below: they must not date the
        # snapshot (a typo of 2030 would move every undated deal there).
        found = [max_timestamp(self.st, deals, ["created_at", "closed_at"], until=self.now)]
        if self.staged.events:
            found.append(max_timestamp(self.st, self.staged.events, ["entered_at"], until=self.now))
        known = [t for t in found if t is not None]
        return max(known) if known else None

    def _pipelines(self, deals: str | None, events: str | None) -> str:
        """Register `_pipemap(pipeline, pipeline_id)` and return the default pipeline id."""
        st = self.st
        names: list[tuple[str | None, int]] = []
        for table in (deals, events):
            if table is not None:
                names += st.sql(f"SELECT pipeline, count(*) FROM {quote(table)} GROUP BY 1")
        mapping = map_pipelines(self.process, names, self.staged.pipeline)
        default = mapping[None]
        rows = [(k, v) for k, v in mapping.items() if k is not None]
        st.register(
            "_pipemap",
            pa.table(
                {
                    "pipeline": pa.array([r[0] for r in rows], pa.string()),
                    "pipeline_id": pa.array([r[1] for r in rows], pa.string()),
                }
            ),
        )
        return default

    def _with_pipeline(self, table: str, default: str) -> str:
        return self.st.view(
            self.st.name("piped"),
            f"SELECT t.*, coalesce(m.pipeline_id, {literal(default)}) AS pipeline_id "
            f"FROM ({self.problems.clean(table)}) t LEFT JOIN _pipemap m "
            "ON m.pipeline = t.pipeline",
        )

    # -- stage names -----------------------------------------------------------------
    def _map_names(self, deals: str | None, events: str | None) -> None:
        """Register `_stage_map` and `_outcome_map`; stop on unmapped names."""
        st, s = self.st, self.staged
        counts: dict[tuple[str, str], int] = {}
        queries = []
        if deals is not None:
            queries.append(f"SELECT pipeline_id, stage FROM {quote(deals)}")
        if events is not None:
            queries.append(f"SELECT pipeline_id, stage FROM {quote(events)}")
        for q in queries:
            for pid, name, n in st.sql(
                f"SELECT pipeline_id, stage, count(*) FROM ({q}) WHERE stage IS NOT NULL "
                "GROUP BY ALL"
            ):
                counts[(pid, name)] = counts.get((pid, name), 0) + int(n)
        mapped, unmapped = map_stages(self.process, [(k[0], k[1], n) for k, n in counts.items()])
        pipelines = {pid for pid, _ in counts}
        # One pipeline throughout: later steps need not carry it row by row.
        self.pipeline_const = pipelines.pop() if len(pipelines) == 1 else None
        # Unmapped event names of XES become activities: suggested, but no reason to stop.
        blocking = unmapped
        if s.events_to_activities:
            deal_names = (
                {
                    (r[0], r[1])
                    for r in st.sql(f"SELECT DISTINCT pipeline_id, stage FROM {quote(deals)}")
                }
                if deals is not None
                else set()
            )
            blocking = [u for u in unmapped if (u.pipeline_id, u.name) in deal_names]
        outcome_rows: list[tuple[str, str, str | None]] = []
        if deals is not None:
            names = st.sql(
                f"SELECT pipeline_id, outcome, count(*) FROM {quote(deals)} "
                "WHERE outcome IS NOT NULL GROUP BY ALL"
            )
            outcome_rows, bad = map_outcomes(self.process, [(a, b, int(n)) for a, b, n in names])
            if bad:
                raise SourceImportError(
                    unmapped_error(bad, source=self._files(), what="status").replace(
                        "match no stage", "are not won, lost, no decision or open"
                    )
                )
        self.unmapped: list[Unmapped] = unmapped
        if blocking and not self.suggesting:
            raise SourceImportError(unmapped_error(blocking, source=self._files()))
        st.register("_stage_map", stage_map_table(mapped))
        st.register(
            "_outcome_map",
            pa.table(
                {
                    "pipeline_id": pa.array([r[0] for r in outcome_rows], pa.string()),
                    "outcome": pa.array([r[1] for r in outcome_rows], pa.string()),
                    "kind": pa.array([r[2] for r in outcome_rows], pa.string()),
                }
            ),
        )
        outcome_ids = [
            (pl.id, kind, pl.outcome_id(kind))
            for pl in self.process.pipelines
            for kind in OUTCOME_KINDS
        ]
        st.register(
            "_outcome_stage",
            pa.table(
                {
                    "pipeline_id": pa.array([r[0] for r in outcome_ids], pa.string()),
                    "kind": pa.array([r[1] for r in outcome_ids], pa.string()),
                    "stage_id": pa.array([r[2] for r in outcome_ids], pa.string()),
                }
            ),
        )

    suggesting = False
    pipeline_const: str | None = None

    def _files(self) -> str:
        return ", ".join(f.name for f in self.st.files) or self.staged.source

    # -- events ----------------------------------------------------------------------
    def _store_deals(self, events: str, deals: str | None) -> str:
        """`_known(deal_id, pipeline_id, created_at)`: deals of this import and stored deals
        that the events refer to."""
        st = self.st
        local = (
            f"SELECT deal_id, pipeline_id, created_at FROM {quote(deals)}"
            if deals
            else "SELECT NULL::VARCHAR AS deal_id, NULL::VARCHAR AS pipeline_id, "
            "NULL::TIMESTAMP AS created_at WHERE false"
        )
        stored = (
            f"SELECT d.deal_id, d.pipeline_id, d.created_at FROM {st.store_table('deals')} d "
            f"WHERE d.deal_id IN (SELECT deal_id FROM {quote(events)}) "
            f"AND d.deal_id NOT IN (SELECT deal_id FROM ({local}))"
        )
        return st.create("_known", f"{local} UNION ALL {stored}")

    def _normalize_events(self) -> str:
        st, s = self.st, self.staged
        assert s.events is not None
        cols = dict(EVENT_COLUMNS)
        if s.events_to_activities:
            cols |= XES_EVENT_COLUMNS
        if s.event_order:
            cols["_ord"] = "DOUBLE"
        return st.view(st.name("events"), normalized(st, s.events, cols))

    def _check_events(self, events: str, default_pipeline: str, deals: str | None) -> str:
        """Checked events with `pipeline_id` (from their deal, or their own column)."""
        st, s, p = self.st, self.staged, self.problems
        lab = lambda c: s.label("events", c)  # noqa: E731
        check_time_range(p, events, {"entered_at": lab("entered_at")}, self.now)
        if deals is None:
            return self._with_pipeline(events, default_pipeline)
        known = self._store_deals(events, deals)
        check_references(p, events, "deal_id", lab("deal_id"), "SELECT deal_id FROM _known")
        joined = st.view(
            st.name("events"),
            f"SELECT e.* EXCLUDE (pipeline), k.pipeline_id, k.created_at AS _created_at "
            f"FROM ({p.clean(events)}) e JOIN {quote(known)} k USING (deal_id)",
        )
        check_order(
            p,
            joined,
            "_created_at",
            "entered_at",
            lab("entered_at"),
            "is before the deal was created",
        )
        return joined

    def _order_events(self, events: str) -> str:
        """Mapped events numbered per deal, each marked when it repeats the stage before
        (`_repeat`) and when it copies the event before (`_same`, with `_prev_row`).

        The one materialisation of all events: it carries only the columns used later
        (the pipeline only when several occur), to keep millions of rows small.
        """
        st, s = self.st, self.staged
        [(first_src, sources)] = st.sql(
            f"SELECT min(_src), count(DISTINCT _src) FROM {quote(events)}"
        )
        # A shorter sort key when all events come from one file (the usual case).
        order = (
            "e.entered_at"
            + (", e._ord" if s.event_order else "")
            + (", e._src" if sources > 1 else "")
            + ", e._row"
        )
        # The sort moves every column it carries: stage names and ids travel as small
        # numbers (the id's text is looked up after it), and columns with one value on
        # every row are added after it.
        codes = st.create(
            "_stage_codes",
            "SELECT pipeline_id, stage, stage_id, dense_rank() OVER (ORDER BY stage_id) AS _sid, "
            "dense_rank() OVER (ORDER BY stage) AS _name FROM _stage_map",
        )
        ids = st.sql(f"SELECT DISTINCT _sid, stage_id FROM {quote(codes)} ORDER BY 1")
        stage_ids = "CAST([" + ", ".join(literal(i) for _, i in ids) + "] AS VARCHAR[])"
        fixed = {}
        if "actor_id" not in st.columns(s.events or events):
            fixed["actor_id"] = "CAST(NULL AS VARCHAR)"
        if sources == 1:
            fixed["_src"] = f"CAST({int(first_src)} AS {st.columns(events)['_src']})"
        carried = "".join(f", e.{c}" for c in ("actor_id", "_src") if c not in fixed)
        added = ", ".join(f"{fixed.get(c, 'o.' + c)} AS {c}" for c in ("actor_id", "_src"))
        if s.events_to_activities:
            extra = ", e.stage, e._activity_id, e._duration_min"
            extra_out = ", o.stage, o._activity_id, o._duration_min"
        else:
            extra = (
                ", coalesce(lag(c._name) OVER w = c._name AND lag(e.entered_at) OVER w = "
                "e.entered_at, false) AS _same, lag(e._row) OVER w AS _prev_row"
            )
            extra_out = ", o._same, o._prev_row"
        pipeline = "" if self.pipeline_const else "pipeline_id, "
        return st.create(
            st.name("ordered"),
            f"""
            SELECT o.deal_id, {pipeline}{stage_ids}[o._sid] AS stage_id, o.entered_at,
                   {added}, o._row, o.seq, o._repeat{extra_out}
            FROM (
                SELECT e.deal_id, {"e." + pipeline if pipeline else ""}c._sid, e.entered_at
                       {carried}, e._row, row_number() OVER w - 1 AS seq,
                       coalesce(lag(c._sid) OVER w = c._sid, false) AS _repeat{extra}
                FROM ({self.problems.clean(events)}) e
                JOIN {quote(codes)} c ON c.pipeline_id = e.pipeline_id AND c.stage = e.stage
                {"WHERE NOT coalesce(e._is_activity, false)" if s.events_to_activities else ""}
                WINDOW w AS (PARTITION BY e.deal_id ORDER BY {order})) o
            """,
        )

    def _split_repeats(self, ordered: str) -> str:
        """Keep stage entries; exact copies are duplicates, other repeats are set aside."""
        st, s, p = self.st, self.staged, self.problems
        repeat = "_repeat"
        if not s.events_to_activities:
            exact = "_repeat AND _same"
            n = p.add(
                f"SELECT _src, _row, {literal(s.label('events', 'stage'))}, stage_id, "
                f"'repeats row ' || _prev_row || ' exactly; only the first copy is loaded' "
                f"FROM {quote(ordered)} "
                f"WHERE {exact}",
                quarantine=False,
                code=SKIPPED,
            )
            self.out.dropped["stage_events"] = n
            self.out.dropped["repeats"] = int(
                st.scalar(f"SELECT count(*) FROM {quote(ordered)} WHERE {repeat}") - n
            )
        else:
            self.out.activities_from_events = st.view(
                st.name("repeats"),
                f"SELECT _activity_id AS activity_id, deal_id, stage AS kind, entered_at AS at, "
                f"actor_id AS owner_id, _duration_min AS duration_min, _src, _row "
                f"FROM {quote(ordered)} WHERE {repeat}",
            )
        return f"SELECT * FROM {quote(ordered)} WHERE NOT _repeat"

    # -- deals from events -------------------------------------------------------------
    def _aggregate(self, entries: str) -> str:
        """Per deal: pipeline, first and last entry, last stage and its kind, last seq."""
        pipeline = literal(self.pipeline_const) if self.pipeline_const else "any_value(pipeline_id)"
        return self.st.create(
            self.st.name("evagg"),
            f"""
            SELECT a.*, k.kind AS last_kind FROM (
                SELECT deal_id, {pipeline} AS pipeline_id,
                       min(entered_at) AS first_at, max(entered_at) AS last_at,
                       arg_max(stage_id, seq) AS last_stage, max(seq) AS max_seq,
                       arg_min(actor_id, seq) AS first_actor
                FROM ({entries}) GROUP BY deal_id) a
            LEFT JOIN (SELECT DISTINCT pipeline_id, stage_id, kind FROM _stage_map) k
                   ON k.pipeline_id = a.pipeline_id AND k.stage_id = a.last_stage
            """,
        )

    def _deals_from_events(self, agg: str) -> str:
        """Deals made of their events: created at the first entry, closed by an outcome
        entry. With `deal_info` (XES cases) every listed deal is one, events or not,
        with its amount, attributes, first event time and owner (none where the
        reader's owner rule found none, rather than the first entry's actor)."""
        info = self.staged.deal_info
        given = ("amount", "currency", "attributes") if info else ()
        cols = ", ".join(
            f"CAST(NULL AS {t}) AS {quote(c)}"
            for c, t in DEAL_COLUMNS.items()
            if c
            not in (
                *given,
                "deal_id",
                "pipeline",
                "stage",
                "outcome",
                "created_at",
                "owner_id",
                "closed_at",
            )
        )
        outcome = f"CASE WHEN a.last_kind IN {_OUTCOMES} THEN a.last_kind END"
        closed = f"CASE WHEN a.last_kind IN {_OUTCOMES} THEN a.last_at END"
        if info is None:
            source = (
                "SELECT a.deal_id, a.pipeline_id, a.first_at AS created_at, "
                f"a.first_actor AS owner_id, {outcome} AS outcome, {closed} AS closed_at, "
                f"a.last_at AS _recency, {cols} FROM {quote(agg)} a"
            )
        else:
            default = literal(self.pipeline_const or self.process.default_pipeline.id)
            source = f"""
                SELECT i.deal_id, coalesce(a.pipeline_id, {default}) AS pipeline_id,
                       coalesce(i.created_at, a.first_at) AS created_at,
                       i.owner_id,
                       {outcome} AS outcome, {closed} AS closed_at,
                       greatest(i.created_at, a.last_at) AS _recency, i._src, i._row,
                       CAST(CASE WHEN i.amount >= 0 THEN i.amount END AS DOUBLE) AS amount,
                       CAST(i.currency AS VARCHAR) AS currency,
                       CAST(i.attributes AS VARCHAR) AS attributes, {cols}
                FROM {quote(info)} i LEFT JOIN {quote(agg)} a ON a.deal_id = i.deal_id
                WHERE i.deal_id IS NOT NULL"""
            self.problems.add(
                f"SELECT _src, _row, {literal(self.staged.label('deals', 'amount'))}, amount, "
                f"'is negative; left empty' FROM {quote(info)} WHERE amount < 0",
                quarantine=False,
                code="negative",
            )
        return self.st.create(self.st.name("deals_final"), source)

    def _deals_with_state(self, deals: str, agg: str | None) -> str:
        """Deals with outcome and close time from their current stage, status and events."""
        st, p, s = self.st, self.problems, self.staged
        when = self.out.snapshot_at if s.undated_at_snapshot else None
        snapshot = f"TIMESTAMP {literal(when.isoformat(sep=' '))}" if when else "NULL"
        a = (
            quote(agg)
            if agg
            else "(SELECT NULL::VARCHAR AS deal_id, NULL::TIMESTAMP AS first_at, "
            "NULL::TIMESTAMP AS last_at, NULL::VARCHAR AS last_stage, NULL::VARCHAR AS last_kind, "
            "NULL::BIGINT AS max_seq WHERE false)"
        )
        state = st.create(
            st.name("state"),
            f"""
            SELECT d.*, sm.stage_id AS _stage_id, sm.kind AS _stage_kind,
                   a.first_at, a.last_at, a.last_stage, a.last_kind, a.max_seq,
                   CASE WHEN sm.kind IN {_OUTCOMES} THEN sm.kind
                        WHEN om.outcome IS NOT NULL THEN om.kind
                        WHEN sm.kind = 'open' THEN NULL
                        WHEN a.last_kind IN {_OUTCOMES} THEN a.last_kind END AS _outcome
            FROM {quote(deals)} d
            LEFT JOIN _stage_map sm ON sm.pipeline_id = d.pipeline_id AND sm.stage = d.stage
            LEFT JOIN _outcome_map om ON om.pipeline_id = d.pipeline_id AND om.outcome = d.outcome
            LEFT JOIN {a} a ON a.deal_id = d.deal_id
            """,
        )
        # The stage is taken over a status that names another outcome (or "open"):
        # the stage is what the CRM's pipeline reports show, but the mismatch is said.
        # Lost beside a no-decision stage is no mismatch: statuses such as IsClosed and
        # IsWon, or Pipedrive's won and lost, have no word for no decision.
        p.add(
            f"SELECT d._src, d._row, {literal(s.label('deals', 'outcome'))}, d.outcome, "
            "'says ' || coalesce(om.kind, 'open') || ' but the stage ' || "
            "CAST(d.stage AS VARCHAR) || ' is ' || sm.kind || '; the stage is taken' "
            f"FROM {quote(deals)} d "
            "JOIN _stage_map sm ON sm.pipeline_id = d.pipeline_id AND sm.stage = d.stage "
            "JOIN _outcome_map om ON om.pipeline_id = d.pipeline_id AND om.outcome = d.outcome "
            f"WHERE sm.kind IN {_OUTCOMES} AND om.kind IS DISTINCT FROM sm.kind "
            "AND NOT (om.kind = 'lost' AND sm.kind = 'no_decision')",
            quarantine=False,
            code="conflicting outcome",
        )
        if s.undated_at_snapshot:
            label = literal(s.label("deals", "created_at"))
            p.add(
                f"SELECT _src, _row, {label}, NULL, 'no creation date; dated at its first "
                f"stage entry' FROM {quote(state)} WHERE created_at IS NULL "
                "AND first_at IS NOT NULL",
                quarantine=False,
                code="dated by history",
            )
            if when is not None:
                p.add(
                    f"SELECT _src, _row, {label}, NULL, 'no creation date; dated at the "
                    f"snapshot ({when:%Y-%m-%d})' FROM {quote(state)} "
                    "WHERE created_at IS NULL AND first_at IS NULL",
                    quarantine=False,
                    code="dated at snapshot",
                )
        # A source with a close-date column is taken at its word: a closed deal without
        # one is set aside below, not dated at its last stage entry.
        dated = "closed_at" in s.labels.get("deals", {})
        close = "CASE WHEN s.closed_at IS NOT NULL THEN " if dated else ""
        close += "greatest(s.closed_at, s.last_at)" + (" END" if dated else "")
        if dated:
            p.add(
                f"SELECT s._src, s._row, {literal(s.label('deals', 'closed_at'))}, "
                "CAST(s.closed_at AS VARCHAR), 'is before the deal''s last stage entry (' || "
                "CAST(s.last_at AS VARCHAR) || '); the close is dated at that entry' "
                f"FROM {quote(state)} s LEFT JOIN _outcome_stage o "
                "ON o.pipeline_id = s.pipeline_id AND o.kind = s._outcome "
                "WHERE s._outcome IS NOT NULL AND s.last_stage IS DISTINCT FROM o.stage_id "
                "AND s.closed_at < s.last_at",
                quarantine=False,
                code="out of order",
            )
        final = st.create(
            st.name("deals_final"),
            f"""
            SELECT s.* EXCLUDE (outcome, closed_at, created_at),
                   coalesce(s.created_at, s.first_at, {snapshot}) AS created_at,
                   s._outcome AS outcome, o.stage_id AS _outcome_stage,
                   CASE WHEN s._outcome IS NULL THEN NULL
                        WHEN s.last_stage = o.stage_id THEN s.last_at
                        ELSE {close} END AS closed_at
            FROM {quote(state)} s
            LEFT JOIN _outcome_stage o ON o.pipeline_id = s.pipeline_id AND o.kind = s._outcome
            """,
        )
        self.problems.add(
            f"SELECT _src, _row, {literal(self.staged.label('deals', 'closed_at'))}, NULL, "
            "'the deal is closed (' || outcome || ') but has no close date' "
            f"FROM {quote(final)} WHERE outcome IS NOT NULL AND closed_at IS NULL",
            quarantine=True,
            code="no close date",
        )
        # A plain name: the checks quote it themselves (it read "'closed'" quoted twice).
        closed = s.label("deals", "closed_at")
        check_order(p, final, "created_at", "closed_at", closed, "is before the deal was created")
        check_time_range(p, final, {"closed_at": closed}, self.now)
        self.problems.add(
            f"SELECT _src, _row, {literal(self.staged.label('deals', 'created_at'))}, NULL, "
            f"'no creation date and no stage history' FROM {quote(final)} "
            "WHERE created_at IS NULL",
            quarantine=True,
            code="no creation date",
        )
        return final

    def _closing_events(self, deals: str) -> str:
        """Entries the history lacks: into the current open stage (also of a deal closed
        from it, as Pipedrive keeps them), then into the outcome at the close."""
        return f"""SELECT * FROM (
            WITH d AS (
                SELECT *, coalesce(max_seq + 1, 0) AS _next,
                       _stage_kind = 'open' AND last_stage IS DISTINCT FROM _stage_id
                       AND (outcome IS NULL OR last_stage IS DISTINCT FROM _outcome_stage)
                           AS _add_open
                FROM {quote(deals)})
            SELECT deal_id, _stage_id AS stage_id,
                   greatest(created_at, coalesce(last_at, created_at)) AS entered_at,
                   NULL::VARCHAR AS actor_id, _next AS seq, _src, _row
            FROM d WHERE _add_open
            UNION ALL
            SELECT deal_id, _outcome_stage, closed_at, NULL::VARCHAR,
                   _next + CASE WHEN _add_open THEN 1 ELSE 0 END, _src, _row
            FROM d
            WHERE outcome IS NOT NULL AND closed_at IS NOT NULL
              AND last_stage IS DISTINCT FROM _outcome_stage)
        """

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> Assembled:
        """Check and derive; fills and returns `self.out`."""
        st, s, p = self.st, self.staged, self.problems
        if s.deals is None and s.events is None:
            self.unmapped = []
            return self.out
        deals = self._check_deals() if s.deals else None
        events = self._normalize_events() if s.events else None
        default = self._pipelines(deals, events if deals is None else None)
        if deals is not None:
            deals = self._with_pipeline(deals, default)
        if events is not None:
            events = self._check_events(events, default, deals)
        self._map_names(deals, events)
        if self.suggesting:
            return self.out
        entries = agg = None
        if events is not None:
            ordered = self._order_events(events)
            entries = self._split_repeats(ordered)
            agg = self._aggregate(entries)
            if s.events_to_activities:
                self._unmapped_activities(events)
        if deals is None:
            assert agg is not None and entries is not None
            self.out.deals = self._deals_from_events(agg)
            # Row 0 of a deal is never a repeat, so seq 0 is its first entry here.
            self.out.events = st.view(
                st.name("events_final"), f"SELECT e.*, e.seq = 0 AS _first FROM ({entries}) e"
            )
            return self.out
        final = self._deals_with_state(deals, agg)
        kept = st.create(st.name("deals_kept"), p.clean(final))
        closing = self._closing_events(kept)
        union = closing
        if entries is not None:
            # Events of deals set aside late (closed without a date) stay out too.
            union = (
                "SELECT deal_id, stage_id, entered_at, actor_id, seq, "
                f"_src, _row FROM ({entries}) e WHERE deal_id IN (SELECT deal_id FROM "
                f"{quote(kept)}) OR deal_id NOT IN (SELECT deal_id FROM {quote(final)}) "
                f"UNION ALL {closing}"
            )
        self.out.events = st.create(
            st.name("events_final"),
            f"SELECT u.*, u.seq = min(u.seq) OVER (PARTITION BY u.deal_id) AS _first "
            f"FROM ({union}) u",
        )
        self.out.deals = st.view(
            st.name("deals_out"),
            f"SELECT k.*, greatest(k.created_at, k.closed_at, k.last_at) AS _recency "
            f"FROM {quote(kept)} k",
        )
        return self.out

    def _unmapped_activities(self, events: str) -> None:
        """XES: events whose name maps to no stage are activities named after them."""
        st = self.st
        # Views: the activities are read once more, by the load, and copying them
        # into scratch tables first would write them twice.
        unmapped = st.view(
            st.name("unmapped"),
            f"""SELECT _activity_id AS activity_id, deal_id, stage AS kind, entered_at AS at,
                       actor_id AS owner_id, _duration_min AS duration_min, _src, _row
                FROM ({self.problems.clean(events)}) e
                WHERE coalesce(e._is_activity, false)
                   OR NOT EXISTS (SELECT 1 FROM _stage_map m
                                  WHERE m.pipeline_id = e.pipeline_id AND m.stage = e.stage)""",
        )
        repeats = self.out.activities_from_events
        self.out.activities_from_events = st.view(
            st.name("xes_activities"),
            f"SELECT * FROM {quote(unmapped)}"
            + (f" UNION ALL SELECT * FROM {quote(repeats)}" if repeats else ""),
        )
