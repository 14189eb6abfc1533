"""Fuzzing every reader with hypothesis: whatever the file holds, an import either
loads a consistent store or raises SourceImportError and writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions, ImportResult, import_table
from funnelwise.ingest.hubspot import import_hubspot
from funnelwise.ingest.pipedrive import import_pipedrive
from funnelwise.ingest.salesforce import SalesforceFiles, import_salesforce
from funnelwise.ingest.xes import XesOptions, import_xes
from funnelwise.process import Process
from funnelwise.store import Store
from ingest_util import NOW, new_project, rows

FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TABLES = ("deals", "stage_events", "deal_changes", "activities", "leads", "imports")
# Mostly names the bundled process knows, sometimes not.
KNOWN = st.sampled_from(
    [
        "Prospecting",
        "Qualify",
        "Discovery",
        "Propuesta",
        "Negociación",
        "Closed Won",
        "Closed Lost",
        "No Decision",
        "lead",
        " closing ",
    ]
)
# One name in ten is unknown, so most imports get past the stage mapping.
STAGES = st.one_of(*[KNOWN] * 9, st.text(max_size=8))
IDS = st.sampled_from(["A", "B", "C", "d-1", "Ünï", ""]) | st.text(max_size=4)
TEXT = st.text(max_size=10)


@st.composite
def dates(draw: st.DrawFn) -> str:
    """A date in one of many spellings, or something that is not a date."""
    when = draw(st.datetimes(min_value=dt.datetime(1999, 1, 1), max_value=dt.datetime(2031, 1, 1)))
    spellings = [
        when.isoformat(),
        when.strftime("%Y-%m-%d"),
        when.strftime("%d/%m/%Y %H:%M"),
        when.strftime("%m/%d/%Y"),
        when.strftime("%d.%m.%y"),
        when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        when.strftime("%d %b %Y"),
        "",
        draw(TEXT),
    ]
    return draw(st.sampled_from(spellings))


NUMBERS = st.one_of(
    st.integers(-(10**6), 10**9).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1,234.50", "1.234,50", "$ 99", "-", "", "01-May", "May-20"]),
    TEXT,
)
BOOLS = st.sampled_from(["true", "false", "1", "0", "", "yes", "maybe"])


def _csv(rows: list[list[str]], encoding: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    text = buf.getvalue()
    if encoding == "cp1252":
        return text.encode("cp1252", errors="replace")
    if encoding == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", errors="surrogatepass")
    return text.encode("utf-8", errors="surrogatepass")


def _counts(store: Store) -> dict[str, int]:
    return {t: int(rows(store, f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}  # type: ignore[call-overload]


def _check(run: Callable[[Store, Process], ImportResult]) -> None:
    """Run one import on a fresh store; check the outcome is whole either way."""
    with tempfile.TemporaryDirectory() as tmp:
        store, process = new_project(Path(tmp) / "p")
        try:
            result = run(store, process)
        except SourceImportError as exc:
            event(f"refused: {str(exc)[:70]}")
            assert _counts(store) == dict.fromkeys(TABLES, 0)
            store.close()
            return
        event("loaded")
        try:
            assert rows(store, "SELECT count(*) FROM imports") == [(1,)]
            assert rows(
                store,
                "SELECT count(*) FROM stage_events e WHERE NOT EXISTS "
                "(SELECT 1 FROM deals d WHERE d.deal_id = e.deal_id)",
            ) == [(0,)]
            # A closed deal's last entry is its outcome stage at its close time.
            assert rows(
                store,
                "SELECT count(*) FROM deals d JOIN (SELECT deal_id, "
                "arg_max(stage_id, (entered_at, seq)) AS last, max(entered_at) AS at "
                "FROM stage_events GROUP BY 1) e USING (deal_id) JOIN stages s "
                "ON s.pipeline_id = d.pipeline_id AND s.stage_id = e.last "
                "WHERE d.outcome IS NOT NULL AND (s.kind <> d.outcome OR e.at <> d.closed_at)",
            ) == [(0,)]
            loaded = {t: c.loaded for t, c in result.counts.items()}
            for table in ("deals", "stage_events", "activities", "leads"):
                n = rows(store, f"SELECT count(*) FROM {table}")[0][0]
                assert n == loaded.get(table, 0), table
        finally:
            store.close()


OPTS = st.builds(
    ImportOptions,
    on_error=st.sampled_from(["quarantine", "fail"]),
    dayfirst=st.booleans(),
    now=st.just(NOW),
)


@FUZZ
@given(
    data=st.lists(st.tuples(IDS, STAGES, dates(), NUMBERS), max_size=12),
    encoding=st.sampled_from(["utf-8", "bom", "cp1252"]),
    options=OPTS,
)
def test_table_event_log(
    data: list[tuple[str, str, str, str]], encoding: str, options: ImportOptions
) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        folder = Path(store.url.removeprefix("duckdb://")).parent
        (folder / "e.csv").write_bytes(
            _csv([["deal", "stage", "when", "amount"], *map(list, data)], encoding)
        )
        (folder / "m.yaml").write_text(
            "shape: event_log\ncolumns: {deal_id: deal, stage: stage, entered_at: when, "
            "amount: amount}\n"
        )
        return import_table(store, process, folder / "e.csv", folder / "m.yaml", options=options)

    _check(run)


@FUZZ
@given(
    data=st.lists(
        st.tuples(IDS, STAGES, dates(), dates(), NUMBERS, st.sampled_from(["", "EUR", "USD"])),
        max_size=10,
    ),
    options=OPTS,
)
def test_table_snapshot(data: list[tuple[str, ...]], options: ImportOptions) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        folder = Path(store.url.removeprefix("duckdb://")).parent
        (folder / "s.csv").write_bytes(
            _csv([["id", "stage", "created", "closed", "value", "cur"], *map(list, data)], "utf-8")
        )
        (folder / "fx.csv").write_text("currency,date,rate\nEUR,2000-01-01,1.1\n")
        (folder / "m.yaml").write_text(
            "shape: snapshot\ncreated_at_missing: snapshot\ncolumns: {deal_id: id, "
            "stage: stage, created_at: created, closed_at: closed, amount: value, "
            "currency: cur}\nstage_dates: {qualification: created}\n"
        )
        opts = ImportOptions(on_error=options.on_error, now=NOW, fx=folder / "fx.csv")
        return import_table(store, process, folder / "s.csv", folder / "m.yaml", options=opts)

    _check(run)


@st.composite
def xes_logs(draw: st.DrawFn) -> bytes:
    def attr(tag: str, key: str, value: str) -> str:
        # Control characters cannot appear in XML at all, escaped or not.
        text = "".join(c for c in value if c >= " " and not "\ud800" <= c <= "\udfff")
        return f"<{tag} key={quoteattr(key)} value={quoteattr(text)}/>"

    traces = []
    for _ in range(draw(st.integers(0, 4))):
        events = "".join(
            "<event>"
            + attr("string", "concept:name", draw(STAGES))
            + attr("date", "time:timestamp", draw(dates()))
            + attr("string", "lifecycle:transition", draw(st.sampled_from(["start", "", "x"])))
            + "</event>"
            for _ in range(draw(st.integers(0, 5)))
        )
        traces.append(f"<trace>{attr('string', 'concept:name', draw(IDS))}{events}</trace>")
    text = '<?xml version="1.0" encoding="UTF-8"?><log>' + "".join(traces) + "</log>"
    data = text.encode("utf-8", errors="replace")
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # a broken file
    return data


@FUZZ
@given(log=xes_logs(), options=OPTS)
def test_xes(log: bytes, options: ImportOptions) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        path = Path(store.url.removeprefix("duckdb://")).parent / "log.xes"
        path.write_bytes(log)
        return import_xes(store, process, path, xes=XesOptions("amount"), options=options)

    _check(run)


@FUZZ
@given(
    opps=st.lists(
        st.tuples(IDS, STAGES, NUMBERS, dates(), dates(), BOOLS, BOOLS, TEXT), max_size=6
    ),
    history=st.lists(st.tuples(IDS, dates(), STAGES, NUMBERS, dates()), max_size=8),
    options=OPTS,
)
def test_salesforce(
    opps: list[tuple[str, ...]], history: list[tuple[str, ...]], options: ImportOptions
) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        folder = Path(store.url.removeprefix("duckdb://")).parent / "export"
        folder.mkdir()
        head = [
            "Id",
            "StageName",
            "Amount",
            "CreatedDate",
            "CloseDate",
            "IsClosed",
            "IsWon",
            "Region__c",
        ]
        (folder / "Opportunity.csv").write_bytes(_csv([head, *map(list, opps)], "cp1252"))
        hist = ["OpportunityId", "CreatedDate", "StageName", "Amount", "CloseDate"]
        (folder / "OpportunityHistory.csv").write_bytes(_csv([hist, *map(list, history)], "bom"))
        return import_salesforce(store, process, SalesforceFiles.find(folder), options=options)

    _check(run)


@FUZZ
@given(
    deals=st.lists(
        st.tuples(
            IDS,
            STAGES,
            st.sampled_from(["", "new business", "Other"]),
            dates(),
            dates(),
            dates(),
            dates(),
        ),
        max_size=6,
    ),
    options=OPTS,
)
def test_hubspot(deals: list[tuple[str, ...]], options: ImportOptions) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        path = Path(store.url.removeprefix("duckdb://")).parent / "deals.csv"
        head = [
            "Record ID",
            "Deal Stage",
            "Pipeline",
            "Create Date",
            "Close Date",
            'Date entered "Qualify (New business)"',
            'Date exited "Qualify (New business)"',
        ]
        path.write_bytes(_csv([head, *map(list, deals)], "bom"))
        return import_hubspot(store, process, path, options=options)

    _check(run)


@FUZZ
@given(
    deals=st.lists(
        st.tuples(
            IDS,
            STAGES,
            st.sampled_from(["open", "won", "lost", "deleted", "?"]),
            dates(),
            dates(),
            NUMBERS,
        ),
        max_size=6,
    ),
    moves=st.lists(st.tuples(IDS, STAGES, STAGES, dates()), max_size=6),
    options=OPTS,
)
def test_pipedrive(
    deals: list[tuple[str, ...]], moves: list[tuple[str, ...]], options: ImportOptions
) -> None:
    def run(store: Store, process: Process) -> ImportResult:
        folder = Path(store.url.removeprefix("duckdb://")).parent
        head = [
            "Deal - ID",
            "Deal - Stage",
            "Deal - Status",
            "Deal - Deal created",
            "Deal - Won time",
            "Deal - Value",
        ]
        (folder / "deals.csv").write_bytes(_csv([head, *map(list, deals)], "cp1252"))
        log = ["Deal ID", "Old stage", "New stage", "Time"]
        (folder / "moves.csv").write_bytes(_csv([log, *map(list, moves)], "utf-8"))
        return import_pipedrive(
            store, process, folder / "deals.csv", changes=folder / "moves.csv", options=options
        )

    _check(run)
