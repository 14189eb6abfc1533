"""Loading checked rows into the store: one transaction, idempotent, counted.

Rows stream from the scratch database into the store in Arrow batches. Every
table is loaded by its natural key, so importing the same or an overlapping
export again loads nothing twice:

- deals, leads (deal_id, lead_id): updated if the row differs and is not older
  than the stored one (deals get `version` + 1). A row as recent as the stored
  one updates it only from an export not older than what its table has seen,
  so an old snapshot imported late moves nothing back. An empty description
  field (owner, amount, source, ...) leaves the stored value. A new amount,
  expected close date or owner, which the export gives no history for, becomes
  a `deal_changes` row dated at the export (at the close for a deal closed
  since), so `as_of` still sees the earlier value (or none, where none was
  known);
- stage_events (deal_id, stage_id, entered_at): skipped; so is a deal's first
  new entry into the stage it is already in;
- deal_changes (deal_id, field, changed_at, new_value), activities
  (activity_id), fx_rates (currency, date): skipped.

A new import's events of an existing deal are numbered after the stored ones
(`seq`). The whole load, the `imports` row and `observed_until` commit together
or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import ProblemGroup, RowProblem
from funnelwise.log.eventlog import TRACKED_FIELDS
from funnelwise.store import Store
from funnelwise.store.schema import PRIMARY_KEYS, TABLES

_IDENTITY = ("version", "origin")


@dataclass(frozen=True)
class TableCount:
    """Rows of one canonical table: loaded new, updated, skipped as duplicates, quarantined."""

    loaded: int = 0
    updated: int = 0
    duplicates: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain counts (for JSON)."""
        return {
            "loaded": self.loaded,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True)
class ImportResult:
    """What one import did: counts per table, problems, where quarantined rows went."""

    import_id: str
    source: str
    files: tuple[str, ...]
    counts: Mapping[str, TableCount]
    problems: tuple[RowProblem, ...]  # the first ones, in file and row order
    problem_groups: tuple[ProblemGroup, ...]  # every problem, grouped by file/column/kind
    n_problems: int
    n_quarantined: int  # source rows kept out of the store
    quarantine_path: Path | None
    observed_until: pd.Timestamp | None
    notes: tuple[str, ...] = ()
    previous_imports: tuple[str, ...] = ()  # earlier imports of the very same files
    started_at: pd.Timestamp | None = None
    finished_at: pd.Timestamp | None = None
    loaded: bool = True  # False for --suggest-mapping runs

    def to_frame(self) -> pd.DataFrame:
        """One row per table: loaded, updated, duplicates, quarantined (rows)."""
        rows = [{"table": t, **c.as_dict()} for t, c in self.counts.items()]
        return pd.DataFrame(
            rows, columns=["table", "loaded", "updated", "duplicates", "quarantined"]
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "import_id": self.import_id,
            "source": self.source,
            "files": list(self.files),
            "counts": {t: c.as_dict() for t, c in self.counts.items()},
            "problems": self.n_problems,
            "problem_groups": [
                {
                    "file": g.file,
                    "column": g.column,
                    "kind": g.code,
                    "action": "quarantined" if g.quarantined else "loaded",
                    "rows": g.rows,
                    "first_row": g.first_row,
                    "example": g.example,
                }
                for g in self.problem_groups
            ],
            "quarantined_rows": self.n_quarantined,
            "quarantine": str(self.quarantine_path) if self.quarantine_path else None,
            "observed_until": self.observed_until.isoformat() if self.observed_until else None,
            "notes": list(self.notes),
            "previous_imports": list(self.previous_imports),
        }


@dataclass
class LoadPlan:
    """Scratch tables (or views) to load, per canonical table."""

    deals: str | None = None  # + _recency
    stage_events: str | None = None  # + _first
    deal_changes: str | None = None
    activities: str | None = None
    leads: str | None = None  # + _recency
    fx_rates: str | None = None


def _cols(table: str) -> list[str]:
    return [c.name for c in TABLES[table] if c.name not in _IDENTITY]


def _rowcount(result: Any) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0


def _may_update(key: str, src: str, origin: str, recency: str, fresh: bool) -> tuple[str, str]:
    """(JOIN, condition) for the import's rows `n` that may update the stored rows `d`:
    not from this import, and newer (or as recent, from a fresh export)."""
    k = quote(key)
    newer = "n._recency >= r.recency" if fresh else "n._recency > r.recency"
    return (
        f"JOIN ({recency.format(src=src)}) r ON r.{k} = n.{k}",
        f"d.{k} = n.{k} AND d.origin IS DISTINCT FROM {literal(origin)} AND {newer}",
    )


@dataclass(frozen=True)
class _Recorded:
    """Field changes an update kept: rows added, stored rows carried on to the new
    value, and carried rows removed because they came back to where they started."""

    added: int = 0
    carried: int = 0
    removed: int = 0


def _record_field_changes(
    st: Staging,
    store: Store,
    source: str,
    origin: str,
    *,
    fresh: bool,
    at: pd.Timestamp,
    changes: str | None,
) -> _Recorded:
    """Tracked fields an update gives a new value (an empty new value changes
    nothing), as deal_changes dated at the export (`at`; a deal closed since its
    stored row, at the close), never before the field's latest stored change: at
    that very time the stored change that ends at the current value is carried on
    to the new value instead. Skipped where the import's own history of the field
    ends at the new value."""
    con, src = store.raw, st.q(source)
    stamp = f"TIMESTAMP {literal(at.isoformat(sep=' '))}"
    when = (
        f"CASE WHEN d.closed_at IS NULL AND n.closed_at IS NOT NULL "
        f"THEN least(n.closed_at, {stamp}) ELSE {stamp} END"
    )
    join, cond = _may_update("deal_id", src, origin, _DEAL_RECENCY, fresh)
    fields = list(TRACKED_FIELDS)
    olds = {f: f"d.{quote(f)}" for f in fields}
    # A new currency: the earlier amount in the new one at the new rate, so that its
    # base value (what every analysis sums) stays what it was.
    olds["amount"] = (
        "CASE WHEN d.currency IS DISTINCT FROM n.currency AND n.amount_base <> 0 "
        "AND d.amount_base IS NOT NULL THEN d.amount_base * n.amount / n.amount_base "
        "ELSE d.amount END"
    )
    pairs = ", ".join(
        f"{olds[f]} AS old_{i}, n.{quote(f)} AS new_{i}, d.{quote(f)} AS stored_{i}"
        for i, f in enumerate(fields)
    )
    # An empty old value is a change too: the value was not known before the export.
    picked = " UNION ALL ".join(
        f"SELECT deal_id, {literal(f)} AS field, CAST(old_{i} AS VARCHAR) AS old_value, "
        f"CAST(new_{i} AS VARCHAR) AS new_value, CAST(stored_{i} AS VARCHAR) AS stored, "
        f"at0 FROM u WHERE new_{i} IS NOT NULL AND old_{i} IS DISTINCT FROM new_{i}"
        for i, f in enumerate(fields)
    )
    own = (
        f"""LEFT JOIN (SELECT deal_id, field, arg_max(new_value, changed_at) AS value
                       FROM {st.q(changes)} GROUP BY ALL) h USING (deal_id, field)"""
        if changes
        else "LEFT JOIN (SELECT NULL::VARCHAR AS deal_id, NULL::VARCHAR AS field, "
        "NULL::VARCHAR AS value WHERE false) h USING (deal_id, field)"
    )
    # Created inside the load's transaction: a failure rolls it back with the rest.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _field_changes AS
            WITH u AS MATERIALIZED (
                SELECT n.deal_id, {when} AS at0, {pairs}
                FROM deals d JOIN {src} n ON d.deal_id = n.deal_id {join} WHERE {cond}),
            c AS ({picked}),
            last AS (SELECT deal_id, field, max(changed_at) AS last_at FROM deal_changes
                     WHERE deal_id IN (SELECT deal_id FROM u) GROUP BY ALL),
            k AS (SELECT c.*, l.last_at,
                         greatest(c.at0, coalesce(l.last_at, c.at0)) AS changed_at
                  FROM c LEFT JOIN last l USING (deal_id, field) {own}
                  WHERE h.value IS DISTINCT FROM c.new_value)
            SELECT k.*, k.changed_at = k.last_at AND EXISTS (
                       SELECT 1 FROM deal_changes t WHERE t.deal_id = k.deal_id
                       AND t.field = k.field AND t.changed_at = k.last_at
                       AND t.new_value = k.stored) AS carry
            FROM k"""
    )
    at_last = "f.carry AND t.deal_id = f.deal_id AND t.field = f.field AND t.changed_at = f.last_at"
    carried = _rowcount(
        con.execute(
            f"""UPDATE deal_changes AS t SET new_value = f.new_value, origin = {literal(origin)}
                FROM _field_changes f WHERE {at_last} AND t.new_value = f.stored"""
        )
    )
    # Carried back to where it started: no change at all.
    removed = _rowcount(
        con.execute(
            f"""DELETE FROM deal_changes t USING _field_changes f
                WHERE {at_last} AND t.origin = {literal(origin)}
                  AND t.new_value = f.new_value AND t.old_value IS NOT DISTINCT FROM t.new_value"""
        )
    )
    added = _rowcount(
        con.execute(
            "INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at, "
            f"origin) SELECT deal_id, field, old_value, new_value, changed_at, "
            f"{literal(origin)} FROM _field_changes WHERE NOT carry"
        )
    )
    con.execute("DROP TABLE _field_changes")
    return _Recorded(added=added, carried=carried, removed=removed)


def _upsert(
    st: Staging,
    store: Store,
    table: str,
    key: str,
    source: str,
    origin: str,
    recency: str,
    fresh: bool = True,
) -> tuple[int, int, int]:
    """Insert new rows, update changed ones that are not older; (rows, new, updated)."""
    con = store.raw
    cols = _cols(table)
    src = st.q(source)
    total = _rowcount(con.execute(f"SELECT count(*) FROM {src}"))
    names = ", ".join(quote(c) for c in cols)
    values = ", ".join(f"n.{quote(c)}" for c in cols)
    extra = ", version, origin" if table == "deals" else ", origin"
    extra_v = f", 1, {literal(origin)}" if table == "deals" else f", {literal(origin)}"
    k = quote(key)
    # Rows arrive in key order: the key's index is built and written in about half the
    # time it takes for keys in hash order (about 3 s less for a million deals).
    in_order = f"ORDER BY n.{k}"
    if _rowcount(con.execute(f"SELECT count(*) FROM {table}")) == 0:
        # The common first import: nothing to match or update.
        new = _rowcount(
            con.execute(
                f"INSERT INTO {table} ({names}{extra}) SELECT {values}{extra_v} FROM {src} n "
                f"{in_order}"
            )
        )
        return total, new, 0
    new = _rowcount(
        con.execute(
            f"INSERT INTO {table} ({names}{extra}) SELECT {values}{extra_v} FROM {src} n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} d WHERE d.{k} = n.{k}) {in_order}"
        )
    )
    changed_cols = [c for c in cols if c not in (key, "created_at")]
    value = {c: f"n.{quote(c)}" for c in changed_cols}
    if table == "deals":
        # An export that leaves a deal's description empty (or lacks the column) does
        # not erase what an earlier one gave; the amount keeps its currency with it.
        for c in _KEPT_DEAL_COLUMNS:
            value[c] = f"coalesce(n.{quote(c)}, d.{quote(c)})"
        for c in ("currency", "amount_base"):
            value[c] = f"CASE WHEN n.amount IS NULL THEN d.{quote(c)} ELSE n.{quote(c)} END"
        # Attributes merge key by key (stored text that is no JSON object is replaced);
        # a deal still lost, at the same close, keeps the reason it was given.
        mergeable = "json_valid(d.attributes) AND json_type(d.attributes) = 'OBJECT'"
        value["attributes"] = (
            f"CASE WHEN n.attributes IS NULL THEN d.attributes WHEN {mergeable} "
            "THEN CAST(json_merge_patch(d.attributes, n.attributes) AS VARCHAR) "
            "ELSE n.attributes END"
        )
        value["loss_reason"] = (
            "CASE WHEN n.loss_reason IS NULL AND n.outcome = 'lost' AND d.outcome = 'lost' "
            "AND n.closed_at IS NOT DISTINCT FROM d.closed_at "
            "THEN d.loss_reason ELSE n.loss_reason END"
        )
    differs_of = {c: f"d.{quote(c)} IS DISTINCT FROM {value[c]}" for c in changed_cols}
    if table == "deals":
        # By content: the merge rewrites the text (key order, spacing) of equal objects.
        differs_of["attributes"] = (
            f"(n.attributes IS NOT NULL AND NOT coalesce({mergeable} "
            "AND json_contains(d.attributes, n.attributes), false))"
        )
    differs = " OR ".join(differs_of.values())
    sets = ", ".join(f"{quote(c)} = {value[c]}" for c in changed_cols)
    bump = ", version = d.version + 1" if table == "deals" else ""
    join, cond = _may_update(key, src, origin, recency, fresh)
    updated = _rowcount(
        con.execute(
            f"""UPDATE {table} AS d SET {sets}, created_at = least(d.created_at, n.created_at),
                    origin = {literal(origin)}{bump}
                FROM {src} n {join} WHERE {cond} AND ({differs})"""
        )
    )
    return total, new, updated


# Deal columns an empty value in a later export leaves as they were.
_KEPT_DEAL_COLUMNS = (*TRACKED_FIELDS, "name", "account_id", "source", "campaign_id", "product")
_KEPT_DEAL_COLUMNS += ("region",)


# The latest time a table's rows hold: for stores loaded before each table kept the
# time of its latest export in meta.
_SEEN = {
    "deals": """SELECT greatest((SELECT max(greatest(created_at, closed_at)) FROM deals),
                                (SELECT max(entered_at) FROM stage_events))""",
    "leads": "SELECT max(greatest(created_at, converted_at, disqualified_at)) FROM leads",
}


def _fresh(store: Store, table: str, newest: pd.Timestamp | None) -> bool:
    """Whether an export whose newest time is `newest` is at least as recent as the
    exports of `table` loaded before (not the store's: an import of other tables
    with later dates does not count); records the table's latest export time."""
    key = f"observed_until:{table}"
    stored = store.meta(key)
    if stored is not None:
        last: pd.Timestamp | None = pd.Timestamp(stored)
    else:
        row = store.raw.execute(_SEEN[table]).fetchone()
        last = pd.Timestamp(row[0]) if row and row[0] is not None else None
    if newest is not None:
        store.set_meta(key, max(newest, last if last is not None else newest).isoformat())
    return last is None or newest is None or newest >= last


# Stored rows' recency, for the rows of an import ({src}) that are stored already.
_DEAL_RECENCY = """
    SELECT d.deal_id, greatest(d.created_at, d.closed_at, max(e.entered_at)) AS recency
    FROM deals d JOIN {src} u ON u.deal_id = d.deal_id
    LEFT JOIN stage_events e ON e.deal_id = d.deal_id
    GROUP BY d.deal_id, d.created_at, d.closed_at"""
_LEAD_RECENCY = """
    SELECT d.lead_id, greatest(d.created_at, d.converted_at, d.disqualified_at) AS recency
    FROM leads d JOIN {src} u ON u.lead_id = d.lead_id"""


@contextmanager
def _dictionary_strings(con: Any) -> Iterator[None]:
    """Text written meanwhile is stored with dictionaries, not FSST.

    Event-like tables (stage events, deal changes, activities) hold identifiers (deal,
    stage, actor, import, field) that a dictionary compresses as well as FSST does,
    while training FSST's symbol tables takes about a third of the time of writing
    ten million events.
    """
    methods = _fsst_methods()
    if methods is None:  # an engine without the setting writes as it always does
        yield
        return
    row = con.execute(
        "SELECT value FROM duckdb_settings() WHERE name = 'disabled_compression_methods'"
    ).fetchone()
    con.execute(f"SET disabled_compression_methods = {literal(methods)}")
    try:
        yield
    finally:
        con.execute(f"SET disabled_compression_methods = {literal(str(row[0] or ''))}")


@cache
def _fsst_methods() -> str | None:
    """The FSST compression methods this engine knows, as the setting that disables them.

    Tried on a throwaway engine: inside the load's transaction a refused setting
    would abort it. The answer depends only on the engine's version, so it is
    kept for the process (opening an engine takes about 15 ms).
    """
    probe = duckdb.connect()
    try:
        for methods in ("fsst,dict_fsst", "fsst"):
            try:
                probe.execute(f"SET disabled_compression_methods = {literal(methods)}")
            except duckdb.Error:
                continue
            return methods
        return None
    finally:
        probe.close()


def _insert_events(st: Staging, store: Store, source: str, origin: str) -> tuple[int, int]:
    con = store.raw
    cols = ", ".join(["deal_id", "stage_id", "entered_at", "seq", "actor_id"])
    src = st.q(source)
    if _rowcount(con.execute("SELECT count(*) FROM stage_events")) == 0:
        # The common first import: nothing to match against.
        n = _rowcount(
            con.execute(
                f"INSERT INTO stage_events ({cols}, origin) "
                f"SELECT {cols}, {literal(origin)} FROM {src}"
            )
        )
        return n, n
    total = _rowcount(con.execute(f"SELECT count(*) FROM {src}"))
    new = _rowcount(
        con.execute(
            f"""
            INSERT INTO stage_events ({cols}, origin)
            SELECT n.deal_id, n.stage_id, n.entered_at, n.seq + coalesce(o.off, 0),
                   n.actor_id, {literal(origin)}
            FROM {src} n
            LEFT JOIN (SELECT deal_id, max(seq) + 1 AS off FROM stage_events
                       WHERE deal_id IN (SELECT deal_id FROM {src}) GROUP BY deal_id) o
                   ON o.deal_id = n.deal_id
            ASOF LEFT JOIN stage_events p
                   ON p.deal_id = n.deal_id AND n.entered_at >= p.entered_at
            WHERE NOT EXISTS (SELECT 1 FROM stage_events s WHERE s.deal_id = n.deal_id
                              AND s.stage_id = n.stage_id AND s.entered_at = n.entered_at)
              AND NOT (n._first AND p.stage_id IS NOT DISTINCT FROM n.stage_id)
            """
        )
    )
    return total, new


def _insert_new(
    st: Staging, store: Store, table: str, source: str, key: list[str], origin: str | None
) -> tuple[int, int]:
    con = store.raw
    cols = _cols(table)
    src = st.q(source)
    total = _rowcount(con.execute(f"SELECT count(*) FROM {src}"))
    match = " AND ".join(f"t.{quote(k)} IS NOT DISTINCT FROM n.{quote(k)}" for k in key)
    names = ", ".join(quote(c) for c in cols)
    values = ", ".join(f"n.{quote(c)}" for c in cols)
    if origin is not None and any(c.name == "origin" for c in TABLES[table]):
        names += ", origin"
        values += f", {literal(origin)}"
    insert = f"INSERT INTO {table} ({names}) SELECT {values} FROM {src} n"
    if _rowcount(con.execute(f"SELECT count(*) FROM {table}")):
        insert += f" WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
    if PRIMARY_KEYS.get(table) == tuple(key):
        # In key order, as for deals: the key's index builds and checkpoints faster.
        insert += " ORDER BY " + ", ".join(f"n.{quote(k)}" for k in key)
    return total, _rowcount(con.execute(insert))


def load(
    st: Staging,
    store: Store,
    plan: LoadPlan,
    *,
    import_id: str,
    quarantined: Mapping[str, int],
    dropped: Mapping[str, int],
    newest: pd.Timestamp | None = None,
) -> dict[str, TableCount]:
    """Load the plan's tables (inside the caller's transaction); counts per table.

    `newest` is the export's newest time (its vantage point): it dates the field
    changes an update makes, and an export older than the earlier exports of a
    table updates only the rows it has newer times for."""
    counts: dict[str, TableCount] = {}

    def count(table: str, total: int, new: int, updated: int = 0) -> None:
        counts[table] = TableCount(
            loaded=new,
            updated=updated,
            duplicates=total - new - updated + dropped.get(table, 0),
            quarantined=quarantined.get(table, 0),
        )

    recorded = _Recorded()
    if plan.deals:
        stored = _rowcount(store.raw.execute("SELECT count(*) FROM deals"))
        fresh = _fresh(store, "deals", newest)
        if stored and newest is not None:
            recorded = _record_field_changes(
                st, store, plan.deals, import_id, fresh=fresh, at=newest, changes=plan.deal_changes
            )
        total, new, upd = _upsert(
            st, store, "deals", "deal_id", plan.deals, import_id, _DEAL_RECENCY, fresh
        )
        count("deals", total, new, upd)
    with _dictionary_strings(store.raw):
        if plan.stage_events:
            total, new = _insert_events(st, store, plan.stage_events, import_id)
            count("stage_events", total, new)
        if plan.deal_changes:
            key = ["deal_id", "field", "changed_at", "new_value"]
            total, new = _insert_new(st, store, "deal_changes", plan.deal_changes, key, import_id)
            count("deal_changes", total, new)
        if recorded != _Recorded():
            # The changes an update kept are rows of deal_changes too: new ones loaded,
            # stored ones carried on (or, back where they started, removed) updated.
            c = counts.get("deal_changes", TableCount())
            counts["deal_changes"] = replace(
                c, loaded=c.loaded + recorded.added, updated=c.updated + recorded.carried
            )
        if plan.activities:
            total, new = _insert_new(
                st, store, "activities", plan.activities, ["activity_id"], import_id
            )
            count("activities", total, new)
    if plan.leads:
        fresh = _fresh(store, "leads", newest)
        total, new, upd = _upsert(
            st, store, "leads", "lead_id", plan.leads, import_id, _LEAD_RECENCY, fresh
        )
        count("leads", total, new, upd)
    if plan.fx_rates:
        total, new = _insert_new(st, store, "fx_rates", plan.fx_rates, ["currency", "date"], None)
        count("fx_rates", total, new)
    for table, n in quarantined.items():
        counts.setdefault(table, TableCount(quarantined=n))
    return counts


def record_import(
    store: Store,
    *,
    import_id: str,
    source: str,
    files: list[tuple[str, str]],
    started_at: pd.Timestamp,
    finished_at: pd.Timestamp,
    counts: Mapping[str, TableCount],
    quarantined: int,
) -> None:
    """Write the `imports` row (inside the caller's transaction)."""
    store.raw.execute(
        "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            import_id,
            source,
            ", ".join(name for name, _ in files),
            ",".join(h for _, h in files),
            started_at.to_pydatetime(),
            finished_at.to_pydatetime(),
            json.dumps({t: c.as_dict() for t, c in counts.items()}, sort_keys=True),
            quarantined,
            "loaded",
        ],
    )


def previous_imports(store: Store, hashes: list[str]) -> tuple[str, ...]:
    """Ids of earlier imports of exactly these files."""
    rows = store.raw.execute(
        "SELECT import_id FROM imports WHERE file_hash = ? ORDER BY started_at",
        [",".join(hashes)],
    ).fetchall()
    return tuple(r[0] for r in rows)


def set_observed_until(store: Store, newest: pd.Timestamp | None) -> pd.Timestamp | None:
    """Meta `observed_until` = max(stored, newest); returns the value set."""
    stored = store.meta("observed_until")
    values = [pd.Timestamp(v) for v in (stored, newest) if v is not None]
    if not values:
        return None
    until = max(values)
    store.set_meta("observed_until", until.isoformat())
    return until


def list_imports(store: Store) -> pd.DataFrame:
    """Past imports, newest first: id, source, files, start, seconds taken, rows loaded
    (new), updated, skipped as duplicates, and source rows quarantined."""
    frame: pd.DataFrame = store.raw.execute(
        "SELECT import_id, source, file_name AS files, started_at, "
        "epoch(finished_at) - epoch(started_at) AS seconds, counts, quarantined, status "
        "FROM imports ORDER BY started_at DESC"
    ).df()
    totals = [
        {
            k: sum(c.get(k, 0) for c in json.loads(text or "{}").values())
            for k in ("loaded", "updated", "duplicates")
        }
        for text in frame["counts"]
    ]
    sums = pd.DataFrame(totals, columns=["loaded", "updated", "duplicates"], index=frame.index)
    cols = ["import_id", "source", "files", "started_at", "seconds"]
    return pd.concat([frame[cols], sums, frame[["quarantined", "status"]]], axis=1)
