"""One import from start to end: read, check, map, convert, quarantine, load.

Every reader is a function that stages a source into the scratch database and
returns a `Staged`; `run_import` does the rest the same way for all of them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from funnelwise.errors import SourceImportError
from funnelwise.ingest.assemble import Assembled, Assembler, Staged, max_timestamp
from funnelwise.ingest.booked import booked_at_close
from funnelwise.ingest.directory import load_directory
from funnelwise.ingest.fx import convert, rates_table, read_fx
from funnelwise.ingest.load import (
    ImportResult,
    LoadPlan,
    TableCount,
    load,
    previous_imports,
    record_import,
    set_observed_until,
)
from funnelwise.ingest.mapping import suggestion_yaml
from funnelwise.ingest.parsing import ReadOptions
from funnelwise.ingest.quarantine import discard, publish, quarantine_dir, write_pending
from funnelwise.ingest.records import activities_table, changes_table, known_deals, leads_table
from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import Problems
from funnelwise.outfile import atomic_output
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.store import Store

OnError = Literal["quarantine", "fail"]
SHOW_ON_FAIL = 20


@dataclass(frozen=True)
class ImportOptions:
    """Options every reader shares.

    `on_error`: 'quarantine' loads the good rows and sets the others aside;
    'fail' loads nothing when any row is quarantined. `dayfirst` reads
    ambiguous dates such as 03/04/2024 as day first, and `decimal_comma`
    numbers such as 6.100 as 6100 (where nothing in the file decides). `timezone` is the zone of
    source times without a UTC offset. `fx` is a rate file. `suggest_mapping`
    writes a process.yaml fragment for unmapped stage names instead of loading.
    `now` (naive UTC) is the instant after which timestamps are "in the future".
    """

    on_error: OnError = "quarantine"
    encoding: str | None = None
    dayfirst: bool = False
    decimal_comma: bool = False
    timezone: str = "UTC"
    date_format: str | None = None
    fx: Path | None = None
    suggest_mapping: Path | None = None
    now: pd.Timestamp | None = None
    quarantine_dir: Path | None = None

    def reading(self) -> ReadOptions:
        """How the readers read dates and numbers."""
        return ReadOptions(
            dayfirst=self.dayfirst,
            date_format=self.date_format,
            local_time=self.timezone.upper() != "UTC",
            decimal_comma=self.decimal_comma,
        )


Reader = Callable[[Staging, Problems], Staged]

_KIND_TABLE = {
    "deals": "deals",
    "events": "stage_events",
    "changes": "deal_changes",
    "activities": "activities",
    "leads": "leads",
}


def _once(notes: list[str]) -> tuple[str, ...]:
    # A column mapped to two roles (CRM Sales Opportunities' engage_date is both the
    # creation date and a stage's entry) is read twice and noted twice.
    return tuple(dict.fromkeys(notes))


def _utcnow() -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None))


def _quarantined_per_table(st: Staging, staged: Staged, problems: Problems) -> dict[str, int]:
    if not problems.dirty:
        return {}
    out: dict[str, int] = {}
    for kind, table in _KIND_TABLE.items():
        name = getattr(staged, kind)
        if name is None:
            continue
        n = st.scalar(
            f"SELECT count(*) FROM {quote(name)} t WHERE EXISTS (SELECT 1 FROM _problems p "
            "WHERE p.quarantined AND p._src = t._src AND p._row = t._row)"
        )
        if n:
            out[table] = out.get(table, 0) + int(n)
    return out


def _newest(st: Staging, plan: LoadPlan, snapshot: pd.Timestamp | None) -> pd.Timestamp | None:
    found = [snapshot]
    for table, cols in (
        (plan.deals, ["created_at", "closed_at"]),
        (plan.stage_events, ["entered_at"]),
        (plan.deal_changes, ["changed_at"]),
        (plan.activities, ["at"]),
        (plan.leads, ["created_at", "converted_at", "disqualified_at"]),
    ):
        if table:
            found.append(max_timestamp(st, table, cols))
    known = [t for t in found if t is not None]
    return max(known) if known else None


def _fail(problems: Problems) -> SourceImportError:
    n = problems.count(quarantined=True)
    shown = problems.first(SHOW_ON_FAIL, quarantined=True)
    lines = [f"  - {p}" for p in shown]
    more = [f"  ... and {n - len(shown)} more"] if n > len(shown) else []
    return SourceImportError(
        "\n".join(
            [
                f"{n} row problem(s); nothing was loaded (--on-error fail):",
                *lines,
                *more,
                "Fix the rows, or import with --on-error quarantine to load the others.",
            ]
        )
    )


def run_import(
    store: Store,
    process: Process,
    reader: Reader,
    *,
    source: str,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Run one import into `store` (atomic, idempotent); see ImportResult for the outcome.

    Raises SourceImportError when the source cannot be read, stage names are
    unmapped, a currency lacks a rate, or (with on_error='fail') rows are bad.
    """
    report = progress or no_progress
    started = _utcnow()
    now = options.now if options.now is not None else started
    steps = 4
    with Staging(store, timezone=options.timezone) as st:
        problems = Problems(st)
        report("reading", 0, steps)
        staged = reader(st, problems)
        problems.add_unparsed()
        report("checking", 1, steps)
        asm = Assembler(st, staged, process, store, problems, now=now)
        asm.suggesting = options.suggest_mapping is not None
        out = asm.run()
        files = [(f.name, f.sha256) for f in st.hashed()]
        import_id = f"{started:%Y%m%dT%H%M%S}-{source}-{uuid.uuid4().hex[:6]}"
        if options.suggest_mapping is not None:
            fragment = suggestion_yaml(process, asm.unmapped, source=", ".join(n for n, _ in files))
            with atomic_output(options.suggest_mapping) as temp:
                temp.write_text(fragment, encoding="utf-8")
            return ImportResult(
                import_id=import_id,
                source=source,
                files=tuple(n for n, _ in files),
                counts={},
                problems=problems.first(),
                problem_groups=problems.summary(),
                n_problems=problems.count(),
                n_quarantined=0,
                quarantine_path=None,
                observed_until=None,
                notes=(f"wrote {options.suggest_mapping}; nothing was loaded", *_once(st.notes)),
                loaded=False,
            )
        plan = _plan(st, staged, out, process, store, problems, options, now)
        report("checking", 2, steps)
        if options.on_error == "fail" and problems.count(quarantined=True):
            raise _fail(problems)
        quarantined = _quarantined_per_table(st, staged, problems)
        n_quarantined = sum(problems.quarantined_by_src().values())
        newest = _newest(st, plan, out.snapshot_at)
        base = options.quarantine_dir or quarantine_dir(store.url)
        pending = write_pending(st, problems, base / f".pending-{import_id}") if base else None
        report("loading", 3, steps)
        try:
            with st.in_store(), store.transaction():
                before = previous_imports(store, [h for _, h in files])
                counts = load(
                    st,
                    store,
                    plan,
                    import_id=import_id,
                    quarantined=quarantined,
                    dropped=out.dropped,
                    newest=newest,
                )
                counts |= load_directory(
                    st, store, {t: v for t in ("accounts", "users") if (v := getattr(staged, t))}
                )
                until = set_observed_until(store, newest)
                finished = _utcnow()
                record_import(
                    store,
                    import_id=import_id,
                    source=source,
                    files=files,
                    started_at=started,
                    finished_at=finished,
                    counts=counts,
                    quarantined=n_quarantined,
                )
        except BaseException:
            discard(pending)
            raise
        path = publish(pending, base / import_id) if base and pending else None
        report("loading", steps, steps)
        return ImportResult(
            import_id=import_id,
            source=source,
            files=tuple(n for n, _ in files),
            counts=_ordered(counts),
            problems=problems.first(),
            problem_groups=problems.summary(),
            n_problems=problems.count(),
            n_quarantined=n_quarantined,
            quarantine_path=path,
            observed_until=until,
            notes=_once(st.notes),
            previous_imports=before,
            started_at=started,
            finished_at=finished,
        )


def _ordered(counts: dict[str, TableCount]) -> dict[str, TableCount]:
    order = [
        "deals",
        "stage_events",
        "deal_changes",
        "activities",
        "leads",
        "accounts",
        "users",
        "fx_rates",
    ]
    return {t: counts[t] for t in order if t in counts}


def _plan(
    st: Staging,
    staged: Staged,
    out: Assembled,
    process: Process,
    store: Store,
    problems: Problems,
    options: ImportOptions,
    now: pd.Timestamp,
) -> LoadPlan:
    """Shape the remaining tables and convert amounts; the tables to load."""
    plan = LoadPlan(stage_events=out.events)
    final_deals = out.deals
    if staged.amount_at_close and out.deals:
        # Only snapshots book amounts at the close, and they stage no other changes.
        final_deals, booked = booked_at_close(st, out.deals)
        labels = {
            "deal_id": staged.label("deals", "deal_id"),
            "changed_at": staged.label("deals", "closed_at"),
        }
        staged = replace(staged, changes=booked, labels=staged.labels | {"changes": labels})
    refs = [t for t in (staged.changes, staged.activities) if t]
    known = known_deals(st, refs, final_deals) if refs else ""
    if staged.changes:
        plan.deal_changes, repeats = changes_table(st, staged, problems, known, now)
        out.dropped["deal_changes"] = repeats
    if staged.activities or out.activities_from_events:
        plan.activities = activities_table(
            st, staged, problems, known, now, out.activities_from_events
        )
    if staged.leads:
        plan.leads = leads_table(st, staged, problems, now)
    file_rates = (
        read_fx(
            st,
            options.fx,
            problems,
            currency=process.currency,
            options=options.reading(),
            encoding=options.encoding,
        )
        if options.fx
        else None
    )
    if file_rates:
        plan.fx_rates = file_rates
    if final_deals:
        rates = rates_table(st, st.store_table("fx_rates"), file_rates)
        # An amount without a currency is in the source's, else the process's currency.
        default = literal(staged.currency or process.currency)
        deals = st.view(
            st.name("deals_cur"),
            f"SELECT * REPLACE (CASE WHEN amount IS NULL THEN currency "
            f"ELSE coalesce(currency, {default}) END AS currency) FROM {quote(final_deals)}",
        )
        plan.deals = convert(st, deals, rates, currency=process.currency)
    return plan
