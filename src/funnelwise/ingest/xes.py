"""The XES reader: IEEE XES event logs, plain or gzip, streamed with lxml.

Each trace is a deal (its `concept:name` the deal id, its other attributes the
deal's attributes, one of them optionally the amount); each event is a stage
entry when its `concept:name` maps to a stage through the process aliases
(many names may map to one stage), and an activity named after it otherwise.
Every lifecycle transition (schedule, start, complete) is an event of its own;
a completed activity gets the minutes since its start as duration. An event
into the stage the deal is already in is kept as an activity, so every event
of the log is accounted for: as a stage entry or as an activity.

The file is parsed trace by trace (`iterparse`, each trace freed once read),
and attribute values travel to DuckDB in Arrow columns, so memory stays small
and no Python code touches single attributes.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from funnelwise.errors import InputError, SourceImportError
from funnelwise.ingest.assemble import Staged
from funnelwise.ingest.importer import ImportOptions, Reader, run_import
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.parsing import Field, typed_table
from funnelwise.ingest.staging import SourceFile, Staging, literal, quote
from funnelwise.ingest.validate import Problems
from funnelwise.ingest.xes_lines import read_lines
from funnelwise.ingest.xes_tables import (
    CASE_KEYS,
    CASE_PREFIX,
    CASE_SCHEMA,
    EVENT_KEYS,
    EVENT_SCHEMA,
    NAME,
    event_batch,
)
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.store import Store

CHUNK_TRACES = 2000
_NS = re.compile(rb"<log\b[^>]*\bxmlns\s*=\s*[\"']([^\"']+)[\"']")


OwnerRule = Literal["most", "first", "last"]
OWNER_RULES: tuple[OwnerRule, ...] = ("most", "first", "last")
# Per rule: who owns a deal after each of its events (SQL over a window of the events
# so far, `w`, in which `n` counts the resource's own events and `leads` marks an
# event that puts its resource strictly ahead of every other), and how the import's
# note says so. The owner so far is what `as_of` shows; the deal's owner is the one
# after its last event.
_OWNER_PICK: dict[OwnerRule, tuple[str, str]] = {
    "most": (
        "last_value(CASE WHEN leads THEN actor_id END IGNORE NULLS) OVER w",
        "the org:resource with the most events of its case so far (ties: the one who got "
        "there first)",
    ),
    "first": (
        "first_value(actor_id IGNORE NULLS) OVER w",
        "the org:resource of its case's first event",
    ),
    "last": (
        "last_value(actor_id IGNORE NULLS) OVER w",
        "the org:resource of its case's latest event so far",
    ),
}


@dataclass(frozen=True)
class XesOptions:
    """Which trace attribute is the deal amount, in which currency, and who owns a deal.

    `owner` picks each deal's owner among the `org:resource` values of its case's
    events, as it stands after each event (so that the log as of a date shows the
    owner known then; each change is a dated owner change): 'most' (default) the
    resource with the most events so far, counting every lifecycle transition
    (ties: the one who got there first); 'first' or 'last' the resource of the
    case's first event, or of its latest so far, that names one. `not_owners`
    are resources that never own a deal, such as a system account that files
    and declines applications (BPI Challenge 2012's 112): their events are
    loaded with their resource but are not counted towards the owner."""

    amount_attribute: str | None = None
    currency: str | None = None
    owner: OwnerRule = "most"
    not_owners: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = (self.not_owners,) if isinstance(self.not_owners, str) else self.not_owners
        kept = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
        object.__setattr__(self, "not_owners", kept)
        if self.owner not in OWNER_RULES:
            raise InputError(
                f"owner must be {', '.join(OWNER_RULES[:-1])} or {OWNER_RULES[-1]} "
                f"(got {self.owner!r})"
            )


@contextmanager
def _open(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """The raw file (for progress) and a reader of its XML, gunzipped when gzip."""
    with path.open("rb") as raw:
        packed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not packed:
            yield raw, raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
            try:
                yield raw, cast(IO[bytes], unpacked)
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                # Left alone, EOFError reads as a user abort to the command line.
                raise SourceImportError(
                    f"{path.name}: the gzip file is truncated or corrupt ({exc}); copy or "
                    "export it again"
                ) from exc


def _namespace(path: Path) -> str | None:
    with _open(path) as (_, fh):
        head = fh.read(1 << 16)
    m = _NS.search(head)
    return m.group(1).decode() if m else None


class _Chunk:
    """Attributes of a run of traces, as Python lists until turned into Arrow."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.counts: list[int] = []  # attributes per event
        self.lines: list[int] = []  # line of each event
        self.sizes: list[int] = []  # events per trace
        self.cases: list[tuple[int, int, str, str]] = []  # case, line, key, value

    def events(self, first_case: int) -> pa.RecordBatch:
        """One row per event: line, case number, index in its trace and the known keys."""
        n = len(self.counts)
        sizes = np.asarray(self.sizes, dtype=np.int64)
        return event_batch(
            lines=np.asarray(self.lines, dtype=np.int64),
            case=np.repeat(np.arange(first_case, first_case + len(sizes)), sizes),
            index=np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes),
            owner=np.repeat(np.arange(n), np.asarray(self.counts, dtype=np.int64)),
            keys=pa.array(self.keys, pa.string()),
            values=pa.array(self.values, pa.string()),
        )

    def case_batch(self) -> pa.RecordBatch:
        c, ln, k, v = zip(*self.cases, strict=True) if self.cases else ((), (), (), ())
        return pa.RecordBatch.from_pydict(
            {"case": list(c), "_row": list(ln), "key": list(k), "value": list(v)},
            schema=CASE_SCHEMA,
        )


def read_traces(path: Path, progress: ProgressCallback = no_progress) -> tuple[pa.Table, pa.Table]:
    """Parse an XES log (plain or gzip, any namespace) into an events table
    (EVENT_SCHEMA: line, case number, index in the trace, the known keys as text)
    and a case-attributes table (CASE_SCHEMA, one row per key and value).

    A file with one element per line (what XES writers produce) is read line by
    line in Arrow; any other goes through lxml, one chunk of traces at a time."""
    size = max(path.stat().st_size, 1)
    with _open(path) as (raw, fh):
        quick = read_lines(raw, fh, size, progress)
    if quick is not None:
        events, cases = quick
        return pa.Table.from_batches(events, EVENT_SCHEMA), pa.Table.from_batches(
            cases, CASE_SCHEMA
        )
    return read_tree(path, progress)


def read_tree(path: Path, progress: ProgressCallback = no_progress) -> tuple[pa.Table, pa.Table]:
    """`read_traces` by building each trace's XML tree with lxml: any XES file."""
    ns = _namespace(path)
    p = "x:" if ns else ""
    nsmap = {"x": ns} if ns else None
    trace_tag = f"{{{ns}}}trace" if ns else "trace"
    x_keys = etree.XPath(f"{p}event/*/@key", namespaces=nsmap, smart_strings=False)
    x_values = etree.XPath(f"{p}event/*/@value", namespaces=nsmap, smart_strings=False)
    x_events = etree.XPath(f"{p}event", namespaces=nsmap)
    x_case = etree.XPath(f"*[not(self::{p}event)][@key and @value]", namespaces=nsmap)
    events: list[pa.RecordBatch] = []
    cases: list[pa.RecordBatch] = []
    chunk = _Chunk()
    n_cases = first = last = 0
    size = max(path.stat().st_size, 1)
    with _open(path) as (raw, fh):
        parser = etree.iterparse(
            fh, events=("end",), tag=trace_tag, huge_tree=True, remove_blank_text=True
        )
        try:
            for _, trace in parser:
                found = x_events(trace)
                rows = _rows([trace.sourceline, *(e.sourceline for e in found)], last)
                line, last = rows[0], rows[-1]
                chunk.cases += [
                    (n_cases, line, e.get("key"), e.get("value")) for e in x_case(trace)
                ]
                chunk.cases.append((n_cases, line, "", ""))  # every trace, even a bare one
                counts = list(map(len, found))
                keys, values = x_keys(trace), x_values(trace)
                if not len(keys) == len(values) == sum(counts):
                    # Some child lacks a key or a value (a list attribute): pair them one by one.
                    pairs = [[(c.get("key"), c.get("value")) for c in e] for e in found]
                    pairs = [
                        [(a, b) for a, b in ps if a is not None and b is not None] for ps in pairs
                    ]
                    counts = [len(ps) for ps in pairs]
                    keys = [a for ps in pairs for a, _ in ps]
                    values = [b for ps in pairs for _, b in ps]
                chunk.keys += keys
                chunk.values += values
                chunk.counts += counts
                chunk.lines += rows[1:]
                chunk.sizes.append(len(found))
                n_cases += 1
                trace.clear()
                while trace.getprevious() is not None:
                    del trace.getparent()[0]
                if n_cases % CHUNK_TRACES == 0:
                    events.append(chunk.events(first))
                    cases.append(chunk.case_batch())
                    chunk, first = _Chunk(), n_cases
                    progress("reading", min(raw.tell(), size), size)
        except etree.XMLSyntaxError as exc:
            raise SourceImportError(
                f"{path.name} line {exc.lineno}: not well-formed XML: {exc.msg}"
            ) from exc
    events.append(chunk.events(first))
    cases.append(chunk.case_batch())
    return pa.Table.from_batches(events, EVENT_SCHEMA), pa.Table.from_batches(cases, CASE_SCHEMA)


def _rows(lines: list[int | None], last: int) -> list[int]:
    """Rows for a trace and its events (`lines`, from lxml) that name each of them
    alone, after `last` (the row before them): the line of an element where it begins
    on a line of its own, else one past the row before it. Problems and the quarantine
    name an event by its row, and events at one time keep the order of their rows, so
    two events must never share one: on a line of several elements, or past line
    65,535, where libxml2 stops counting lines (every element there is on line 65,535
    for lxml)."""
    at = np.asarray([line or 0 for line in lines], dtype=np.int64)
    k = np.arange(len(at))
    return (np.maximum.accumulate(np.maximum(at - k, last + 1)) + k).tolist()


def _typed_times(events: pa.Table) -> pa.Table:
    """The events with their times as naive UTC when every one is an XES date with a
    UTC offset (the standard form), read in C; otherwise as they were, for the
    importer's date reading to type (and report) them."""
    try:
        instants = pc.cast(events["timestamp"], pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return events
    # Dropping the zone keeps the UTC wall time: the store's naive UTC.
    times = instants.cast(pa.timestamp("us"))
    return events.set_column(events.schema.get_field_index("timestamp"), "timestamp", times)


def _stage(
    st: Staging, path: Path, events: pa.Table, cases: pa.Table, opts: XesOptions
) -> SourceFile:
    """Scratch tables `xes_source` (one row per event, in file order) and `xes_cases`."""
    st.attach("_x_cases", cases)
    read = {"case_id": NAME, "amount": opts.amount_attribute or ""} | CASE_KEYS
    columns = ", ".join(
        f"max(value) FILTER (WHERE key = {literal(key)}) AS {col}" for col, key in read.items()
    )
    taken = ", ".join(literal(key) for key in read.values())
    st.create(
        "xes_cases",
        f"""SELECT "case", min(_row) AS _row, {columns},
                   list(struct_pack(k := key, v := value) ORDER BY key)
                       FILTER (WHERE key NOT IN ('', {taken})
                               AND NOT starts_with(key, {literal(CASE_PREFIX)})) AS attrs
            FROM _x_cases GROUP BY "case" """,
    )
    # Cases are numbered 0, 1, ... in file order, each with a row: the case id of
    # every event is a take in Arrow rather than a join. Traces repeating a case id
    # go on with its numbering, so each event's number within its deal is its index
    # plus the events of the case's earlier traces (a window over cases, not events).
    st.attach("_x_read", events)
    ids = st.con.execute(
        """SELECT c.case_id, c.pipeline, CAST(coalesce(sum(e.size) OVER (
                   PARTITION BY nullif(trim(c.case_id), '') ORDER BY c."case"
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS BIGINT) AS before
           FROM xes_cases c
           LEFT JOIN (SELECT "case", count(*) AS size FROM _x_read GROUP BY "case") e
             ON e."case" = c."case"
           ORDER BY c."case" """
    ).to_arrow_table()
    events = _typed_times(events)
    events = events.append_column("case_id", ids["case_id"].take(events["case"]))
    events = events.append_column("pipeline", ids["pipeline"].take(events["case"]))
    nth = pc.add(events["index"].cast(pa.int64()), ids["before"].take(events["case"]))
    events = events.append_column("nth", nth)
    # The events stay in Arrow for the whole import; the source is a view over them.
    st.attach("_x_events", events)
    st.view(
        "xes_source",
        'SELECT _row, case_id AS "case", "index", nth, activity, timestamp, lifecycle, '
        "resource, kind, pipeline FROM _x_events",
    )
    src = SourceFile(
        name=path.name,
        path=path,
        sha256="",
        table="xes_source",
        columns=("case", "index", *EVENT_KEYS, "pipeline"),
        rows=events.num_rows,
    )
    return st.add_file(src)


def _owners_so_far(
    st: Staging, events: str, rule: OwnerRule, not_owners: tuple[str, ...] = ()
) -> str:
    """Per event of every case (`events`: SQL of the clean events), its place in the
    deal's history (`_step`: by time, events at one time in file order) and the deal's
    owner after it under `rule`, among the resources not in `not_owners`. The owner
    changes and the deal's owner both read the owners in `_step` order, so the deal's
    owner is the last change's new value."""
    window = "PARTITION BY deal_id ORDER BY _step"
    actor = "actor_id"
    if not_owners:
        listed = ", ".join(literal(r) for r in not_owners)
        actor = f"CASE WHEN actor_id IN ({listed}) THEN NULL ELSE actor_id END"
    return st.create(
        st.name("xes_owners"),
        f"""
        WITH stepped AS (
            SELECT _src, _row, deal_id, {actor} AS actor_id, entered_at,
                   row_number() OVER (PARTITION BY deal_id ORDER BY entered_at, _row) AS _step
            FROM ({events}) WHERE deal_id IS NOT NULL),
        counted AS (
            SELECT *, CASE WHEN actor_id IS NOT NULL THEN count(*) OVER (
                       PARTITION BY deal_id, actor_id ORDER BY _step
                       ROWS UNBOUNDED PRECEDING) END AS n
            FROM stepped),
        led AS (
            SELECT *, coalesce(n > coalesce(max(n) OVER (
                       {window} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0), false)
                       AS leads
            FROM counted)
        SELECT _src, _row, deal_id, entered_at, _step, {_OWNER_PICK[rule][0]} AS owner_id
        FROM led WINDOW w AS ({window} ROWS UNBOUNDED PRECEDING)
        """,
    )


def _owner_changes(st: Staging, owners: str) -> str:
    """Dated owner changes: every time after whose events a deal's owner differs from
    the one before them. Events at one time make one change at most (the owner after
    the last of them), as the store keeps no order among changes at one time: the
    owner known at a time is the one after all of its events. A deal owned by no one
    at first (its first events name no resource, or only `not_owners`) changes from
    no owner to its first, so that the log as of then shows none."""
    return st.create(
        st.name("xes_owner_changes"),
        f"""
        SELECT _src, _row, deal_id, 'owner_id' AS field, before AS old_value,
               owner_id AS new_value, entered_at AS changed_at, CAST(NULL AS VARCHAR) AS actor_id
        FROM (SELECT *, lag(owner_id) OVER w AS before, row_number() OVER w AS _k
              FROM (SELECT * FROM {quote(owners)} QUALIFY _step = max(_step) OVER (
                        PARTITION BY deal_id, entered_at))
              WINDOW w AS (PARTITION BY deal_id ORDER BY _step))
        WHERE _k > 1 AND owner_id IS DISTINCT FROM before
        """,
    )


def _set_aside_bare_traces(st: Staging, problems: Problems) -> None:
    """Quarantine every trace without events whose case has none in another trace
    either: it has no date to load a deal at. Its row goes to the quarantine file
    with its case id, beside the events set aside."""
    bare = st.view(
        st.name("xes_bare"),
        """SELECT _row, "case" AS _case, case_id AS "case", pipeline FROM xes_cases
           WHERE "case" NOT IN (SELECT "case" FROM _x_events)
             AND (nullif(trim(case_id), '') IS NULL OR trim(case_id) NOT IN (
                  SELECT trim(case_id) FROM _x_events
                  WHERE nullif(trim(case_id), '') IS NOT NULL))""",
    )
    added = problems.add(
        "SELECT 0, _row, 'trace concept:name', \"case\", 'has no event, so no date to load a "
        "deal at (trace ' || (_case + 1) || ' of the file); add its events or leave it out' "
        f"FROM {quote(bare)}",
        quarantine=True,
        code="empty trace",
    )
    if added:
        src = st.files[0]
        rows = st.view(
            st.name("xes_rows"),
            f"SELECT * FROM {quote(src.table)} "
            f"UNION ALL BY NAME SELECT * EXCLUDE (_case) FROM {quote(bare)}",
        )
        st.files[0] = replace(src, table=rows)


def _note_owners(
    st: Staging, traces: str, events: str, rule: OwnerRule, not_owners: tuple[str, ...]
) -> None:
    """Say how owners were chosen (when the log names resources), which resources
    were kept from owning, and how many deals already stored with another owner (say,
    chosen by another rule) take the new one."""
    if not_owners:
        listed = ", ".join(literal(r) for r in not_owners)
        found = {
            r
            for (r,) in st.sql(
                f"SELECT DISTINCT actor_id FROM ({events}) WHERE actor_id IN ({listed})"
            )
        }
        unknown = [r for r in not_owners if r not in found]
        if unknown:
            st.notes.append(
                f"--not-owner {', '.join(unknown)}: no event of the log names "
                f"{'this resource' if len(unknown) == 1 else 'these resources'} "
                "(org:resource values are matched exactly)"
            )
    owners, moved = st.sql(
        f"""SELECT count(DISTINCT t.owner_id),
                   count(DISTINCT t.deal_id) FILTER (
                       WHERE d.deal_id IS NOT NULL AND t.owner_id IS NOT NULL
                       AND d.owner_id IS DISTINCT FROM t.owner_id)
            FROM {quote(traces)} t LEFT JOIN {st.store_table("deals")} d USING (deal_id)"""
    )[0]
    if not owners:
        return
    note = f"owners: {_OWNER_PICK[rule][1]}, --owner {rule}"
    if not_owners:
        note += f", never {', '.join(not_owners)} (--not-owner)"
    note += f"; {owners:,} distinct"
    if moved:
        deals = "deal" if moved == 1 else "deals"
        note += (
            f"; {moved:,} {deals} stored with another owner take this one from the log's "
            "end on (import into a new project to have it from the start)"
        )
    st.notes.append(note)


def xes_reader(
    path: Path, opts: XesOptions, options: ImportOptions, progress: ProgressCallback | None = None
) -> Reader:
    """A reader for run_import over the XES file at `path`."""
    report = progress or no_progress

    def read(st: Staging, problems: Problems) -> Staged:
        events, cases = read_traces(path, report)
        src = _stage(st, path, events, cases, opts)
        fields = [
            Field("deal_id", "case", required=True),
            Field("stage", "activity", required=True),
            Field("entered_at", "timestamp", "timestamp", required=True),
            Field("actor_id", "resource"),
            Field("lifecycle", "lifecycle"),
            Field("index", "index", "integer"),
            Field("_kind", "kind"),
            Field("pipeline", "pipeline"),
        ]
        typed = typed_table(
            st, src.table, fields, problems, src=0, options=options.reading(), keep=["nth"]
        )
        events = st.create(
            st.name("xes_events"),
            f"""
            SELECT * EXCLUDE (_kind, nth), lower(_kind) = 'activity' AS _is_activity,
                   deal_id || ':' || nth || ':' || lower(coalesce(lifecycle, 'complete'))
                      AS _activity_id,
                   CASE WHEN lower(coalesce(lifecycle, 'complete')) = 'complete'
                        THEN (epoch(entered_at) - epoch(last_value(
                                 CASE WHEN lower(lifecycle) = 'start' THEN entered_at END
                                 IGNORE NULLS) OVER w)) / 60.0 END AS _duration_min
            FROM {quote(typed)}
            WINDOW w AS (PARTITION BY deal_id, stage ORDER BY entered_at, _row
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
            """,
        )
        owners = _owners_so_far(st, problems.clean(events), opts.owner, opts.not_owners)
        traces = st.create(
            st.name("xes_traces"),
            f"""
            SELECT 0 AS _src, c._row, nullif(trim(c.case_id), '') AS deal_id,
                   TRY_CAST(c.amount AS DOUBLE) AS amount,
                   coalesce(c.currency, {literal(opts.currency) if opts.currency else "NULL"})
                       AS currency,
                   CASE WHEN len(c.attrs) > 0
                        THEN CAST(CAST(map_from_entries(c.attrs) AS JSON) AS VARCHAR) END
                       AS attributes,
                   e.created_at, e.owner_id
            FROM xes_cases c
            JOIN (SELECT deal_id, min(entered_at) AS created_at,
                         arg_max(owner_id, _step) AS owner_id
                  FROM {quote(owners)} GROUP BY deal_id) e
              ON e.deal_id = nullif(trim(c.case_id), '')
            """,
        )
        _note_owners(st, traces, problems.clean(events), opts.owner, opts.not_owners)
        _set_aside_bare_traces(st, problems)
        first = "row_number() OVER (PARTITION BY deal_id ORDER BY _row)"
        problems.add(
            f"SELECT _src, _row, 'trace concept:name', deal_id, 'repeats the case of the "
            f"trace on line ' || first_value(_row) OVER (PARTITION BY deal_id ORDER BY _row) "
            f"|| '; its events join that deal' FROM {quote(traces)} QUALIFY {first} > 1",
            quarantine=False,
            code="duplicate case",
        )
        if opts.amount_attribute:
            # Kept, as the table reader keeps an unreadable value: the deal without an
            # amount, and a note naming the trace and what it said.
            problems.add(
                f"SELECT 0, _row, {literal(opts.amount_attribute)}, amount, "
                "'is not a number; the deal is loaded without an amount' FROM xes_cases "
                "WHERE nullif(trim(amount), '') IS NOT NULL "
                "AND TRY_CAST(amount AS DOUBLE) IS NULL",
                quarantine=False,
                code="unreadable",
            )
        cases = st.view(st.name("xes_deals"), f"SELECT * FROM {quote(traces)} QUALIFY {first} = 1")
        labels = {
            "deal_id": "case concept:name",
            "stage": "activity",
            "entered_at": "timestamp",
            "amount": opts.amount_attribute or "amount",
            "pipeline": CASE_KEYS["pipeline"],
        }
        return Staged(
            source="xes",
            deal_info=cases,
            events=events,
            changes=_owner_changes(st, owners),
            labels={"events": labels, "deals": labels, "changes": labels},
            currency=opts.currency,
            events_to_activities=True,
        )

    return read


def import_xes(
    store: Store,
    process: Process,
    path: str | Path,
    *,
    xes: XesOptions = XesOptions(),
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import an XES event log (plain or gzip)."""
    p = Path(path)
    if not p.is_file():
        raise SourceImportError(f"{p}: file not found")
    reader = xes_reader(p, xes, options, progress)
    return run_import(store, process, reader, source="xes", options=options, progress=progress)
