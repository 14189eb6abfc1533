"""Import commands: `funnelwise import table|xes|salesforce|hubspot|pipedrive`,
`funnelwise imports`, `funnelwise quality` and `funnelwise export`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from funnelwise.analytics.result import instant_text
from funnelwise.cli.analytics_cmds import AsOfOpt, SinceOpt, UntilOpt
from funnelwise.cli.context import cli_context, cut
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import (
    FrameOpt,
    OutputFormat,
    console,
    print_frame,
    print_result,
    say,
    to_json,
)
from funnelwise.errors import ProjectError
from funnelwise.ingest import ImportOptions, ImportResult, list_imports
from funnelwise.log import EventLog
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.project import PROCESS_FILE, Project, stored_process
from funnelwise.store import Store

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]
OnErrorOpt = Annotated[
    str,
    typer.Option(
        "--on-error",
        help="quarantine: load the good rows and set bad ones aside (default); "
        "fail: load nothing if any row is bad.",
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option(help="Text encoding of CSV files (default: detect UTF-8, BOM, Windows-1252)."),
]
DayfirstOpt = Annotated[
    bool, typer.Option("--dayfirst", help="Read ambiguous dates such as 03/04/2024 day first.")
]
DecimalCommaOpt = Annotated[
    bool,
    typer.Option(
        "--decimal-comma",
        help="Read numbers such as 6.100 as 6100 (and 6,100 as 6.1) where no value of the "
        "file shows its decimal mark.",
    ),
]
FxOpt = Annotated[
    Path | None,
    typer.Option(
        "--fx",
        help="Exchange rates: CSV currency,date,rate (process currency per unit), or "
        "Salesforce DatedConversionRate / CurrencyType.",
    ),
]
SuggestOpt = Annotated[
    Path | None,
    typer.Option(
        "--suggest-mapping",
        help="Write a process.yaml fragment for unmapped stage names to this file; load nothing.",
    ),
]
TimezoneOpt = Annotated[str, typer.Option(help="Time zone of source times without a UTC offset.")]
SHOW_PROBLEMS = 20

import_app = typer.Typer(
    help="Import CRM exports and event logs into the project's store.", no_args_is_help=True
)


@contextmanager
def _opened(ctx: typer.Context) -> Iterator[tuple[Store, Process]]:
    """The store and process of the project (or of --store with its stored process)."""
    c = cli_context(ctx)
    if (c.project / PROCESS_FILE).exists():
        project = Project(c.project)
        store = project.open_store(c.store, create=True)
        process = project.load_process()
    elif c.store:
        store = Store.open(c.store, create=False)
        process = stored_process(store)
    else:
        raise ProjectError(
            f"{c.project} has no {PROCESS_FILE}; create one with `funnelwise init "
            f"{c.project}` (then add your stage names as aliases) or pass --project"
        )
    try:
        yield store, process
    finally:
        store.close()


def _options(
    on_error: str,
    encoding: str | None,
    dayfirst: bool,
    decimal_comma: bool,
    fx: Path | None,
    suggest_mapping: Path | None,
    timezone: str,
) -> ImportOptions:
    from funnelwise.errors import InputError

    if on_error not in ("quarantine", "fail"):
        raise InputError(f"--on-error must be quarantine or fail (got {on_error!r})")
    return ImportOptions(
        on_error=on_error,  # type: ignore[arg-type]
        encoding=encoding,
        dayfirst=dayfirst,
        decimal_comma=decimal_comma,
        fx=fx,
        suggest_mapping=suggest_mapping,
        timezone=timezone,
    )


def _render(result: ImportResult, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        console.print_json(to_json(result.to_dict()))
        return
    if not result.loaded:
        for note in result.notes:
            say(note)
        return
    print_frame(result.to_frame(), fmt, title=f"import {result.import_id}")
    if fmt is not OutputFormat.table:
        return
    if result.problem_groups:
        console.print(
            "Problems (rows × file, column: kind (loaded: not set aside; quarantined: set "
            "aside; skipped: an exact copy of a loaded row); first of them):",
            highlight=False,
            soft_wrap=True,
        )
    for g in result.problem_groups[:SHOW_PROBLEMS]:
        say(f"  {g}")
    if len(result.problem_groups) > SHOW_PROBLEMS:
        console.print(f"  ... {len(result.problem_groups) - SHOW_PROBLEMS} more kinds")
    for note in result.notes:
        say(f"note: {note}")
    if result.previous_imports:
        before = "These files were imported before as " + ", ".join(result.previous_imports)
        again = sum(c.loaded for c in result.counts.values())
        if again:
            # The same bytes read differently (another time zone, day order, encoding
            # or mapping) load as new rows beside the earlier ones.
            say(
                f"{before}; yet {again:,} rows were loaded that they did not load: rows "
                "they set aside, or rows read differently now (--timezone, --dayfirst, "
                "--encoding or the mapping changed), which then stand beside the earlier "
                "ones."
            )
        else:
            say(f"{before}; nothing was loaded twice.")
    problems = _count(result.n_problems, "problem")
    quarantined = _count(result.n_quarantined, "row")
    summary = f"{problems}, {quarantined} quarantined" if result.n_problems else "no problems"
    where = f" (see {result.quarantine_path})" if result.quarantine_path else ""
    # As written: a quarantine folder in [brackets] is a path, not markup.
    until = result.observed_until
    observed = f"; observed until {instant_text(until)}" if until is not None else ""
    say(f"Done: {summary}{where}{observed}.")


def _count(n: int, noun: str) -> str:
    """`1 problem`, `2 problems`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _run(
    ctx: typer.Context,
    fmt: OutputFormat,
    call: Callable[[Store, Process, ProgressCallback], ImportResult],
) -> None:
    with _opened(ctx) as (store, process):
        if fmt is OutputFormat.table:
            with progress_bar() as progress:
                result = call(store, process, progress)
        else:
            result = call(store, process, lambda task, done, total: None)
    _render(result, fmt)


ImportCall = Callable[[Store, Process, ImportOptions, ProgressCallback], ImportResult]
_COMMON: tuple[tuple[str, Any, Any], ...] = (
    ("on_error", OnErrorOpt, "quarantine"),
    ("fmt", FormatOpt, OutputFormat.table),
    ("encoding", EncodingOpt, None),
    ("dayfirst", DayfirstOpt, False),
    ("decimal_comma", DecimalCommaOpt, False),
    ("fx", FxOpt, None),
    ("suggest_mapping", SuggestOpt, None),
    ("timezone", TimezoneOpt, "UTC"),
)


def import_command(name: str) -> Callable[[Callable[..., ImportCall]], Callable[..., None]]:
    """Register `funnelwise import NAME`: the decorated function takes the context and
    the reader's own options and returns the import to run; the options every reader
    shares (--on-error, --format, --encoding, --dayfirst, --decimal-comma, --fx,
    --suggest-mapping, --timezone) are added here."""

    def register_one(build: Callable[..., ImportCall]) -> Callable[..., None]:
        signature = inspect.signature(build, eval_str=True)
        own = list(signature.parameters.values())
        shared = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for n, a, d in _COMMON
        ]

        def command(**kwargs: Any) -> None:
            common = {n: kwargs.pop(n) for n, _, _ in _COMMON}
            fmt = common.pop("fmt")
            if common["suggest_mapping"] is not None:
                cli_context(kwargs["ctx"]).output(
                    common["suggest_mapping"], option="--suggest-mapping"
                )
            opts = _options(**common)
            call = build(**kwargs)
            _run(kwargs["ctx"], fmt, lambda s, p, progress: call(s, p, opts, progress))

        params = own + shared
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=None
        )
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = build.__doc__
        command.__name__ = build.__name__
        import_app.command(name)(command)
        return command

    return register_one


@import_command("table")
def import_table_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV, Parquet or Excel (.xlsx) file.")],
    mapping: Annotated[Path, typer.Option("--mapping", "-m", help="Mapping file (see examples/).")],
) -> ImportCall:
    """Import a table (event log, snapshot of deals, or leads) described by a mapping file."""
    from funnelwise.ingest import import_table

    return lambda s, p, opts, progress: import_table(
        s, p, file, mapping, options=opts, progress=progress
    )


@import_command("xes")
def import_xes_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="XES event log, plain or gzip (.xes, .xes.gz).")],
    amount_attribute: Annotated[
        str | None,
        typer.Option(help="Trace attribute holding the deal amount (e.g. AMOUNT_REQ)."),
    ] = None,
    currency: Annotated[
        str | None, typer.Option(help="Currency of the amounts (default: the process's).")
    ] = None,
    owner: Annotated[
        str,
        typer.Option(
            help="Deal owner among the org:resource of the case's events, as it stands "
            "after each event (each change is dated): most (the one with the most events "
            "so far; ties: the one who got there first), first or last (of the first "
            "event, or the latest so far, naming one)."
        ),
    ] = "most",
    not_owner: Annotated[
        list[str] | None,
        typer.Option(
            "--not-owner",
            help="An org:resource that never owns a deal, such as a system account "
            "(repeat for several): its events load, but do not count towards the owner.",
        ),
    ] = None,
) -> ImportCall:
    """Import an XES event log: traces are deals, events stage entries or activities.

    Events whose names are mapped to stages become stage entries, the others activities.
    A deal's owner is the org:resource with the most events of its case so far (--owner)."""
    from funnelwise.ingest.xes import XesOptions, import_xes

    xes = XesOptions(
        amount_attribute=amount_attribute,
        currency=currency,
        owner=owner,  # type: ignore[arg-type]  # checked by XesOptions
        not_owners=tuple(not_owner or ()),
    )
    return lambda s, p, opts, progress: import_xes(
        s, p, file, xes=xes, options=opts, progress=progress
    )


@import_command("salesforce")
def import_salesforce_cmd(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="Export folder (Opportunity.csv, OpportunityHistory.csv, Task.csv, "
            "Event.csv, Account.csv, User.csv) or the Opportunity.csv file."
        ),
    ],
    history: Annotated[
        Path | None, typer.Option(help="OpportunityHistory.csv, if not in the folder.")
    ] = None,
    tasks: Annotated[Path | None, typer.Option(help="Task.csv, if not in the folder.")] = None,
    events: Annotated[Path | None, typer.Option(help="Event.csv, if not in the folder.")] = None,
    accounts: Annotated[
        Path | None,
        typer.Option(help="Account.csv, if not in the folder: account fields as attributes."),
    ] = None,
    users: Annotated[
        Path | None, typer.Option(help="User.csv, if not in the folder: user ids become names.")
    ] = None,
) -> ImportCall:
    """Import a Salesforce export: opportunities, stage history, tasks and events.

    Account fields and user names come along when Account.csv and User.csv are given."""
    from funnelwise.ingest.salesforce import SalesforceFiles, import_salesforce

    found = SalesforceFiles.find(path) if path.is_dir() else SalesforceFiles(path)
    files = SalesforceFiles(
        found.opportunities,
        history or found.history,
        tasks or found.tasks,
        events or found.events,
        accounts or found.accounts,
        users or found.users,
    )
    return lambda s, p, opts, progress: import_salesforce(
        s, p, files, options=opts, progress=progress
    )


@import_command("hubspot")
def import_hubspot_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help='Deals export (CSV or Excel) with "Date entered" columns.')
    ],
) -> ImportCall:
    """Import a HubSpot deals export; its "Date entered <stage>" columns are the history."""
    from funnelwise.ingest.hubspot import import_hubspot

    return lambda s, p, opts, progress: import_hubspot(s, p, file, options=opts, progress=progress)


@import_command("pipedrive")
def import_pipedrive_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Deals export (CSV or Excel).")],
    changes: Annotated[
        Path | None,
        typer.Option(help="Stage-change log: deal id, old stage, new stage, time."),
    ] = None,
) -> ImportCall:
    """Import a Pipedrive deals export, with its stage-change log when given."""
    from funnelwise.ingest.pipedrive import import_pipedrive

    return lambda s, p, opts, progress: import_pipedrive(
        s, p, file, changes=changes, options=opts, progress=progress
    )


def imports(ctx: typer.Context, fmt: FormatOpt = OutputFormat.table) -> None:
    """List past imports, newest first."""
    with _opened(ctx) as (store, _):
        frame = list_imports(store)
    print_frame(frame, fmt, title="imports")


PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline (id).")]
ActivitiesOpt = Annotated[
    bool, typer.Option("--activities/--no-activities", help="Include activities as events.")
]
ExportAsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Export the log as it was known at this date (no later event)."),
]
export_app = typer.Typer(
    help="Export the log for process-mining tools (PM4Py, ProM, ...).", no_args_is_help=True
)


@contextmanager
def _log(
    ctx: typer.Context,
    pipeline: str | None,
    *,
    as_of: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Iterator[EventLog]:
    """The project's log (one pipeline, deals created in a window, as known at a
    date, where given), closed afterwards."""
    log = cli_context(ctx).log(read_only=True)
    try:
        yield cut(log.filter(pipeline=pipeline, since=since, until=until), as_of)
    finally:
        log.store.close()


def quality(
    ctx: typer.Context,
    pipeline: PipelineOpt = None,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
    frame: FrameOpt = None,
) -> None:
    """Data-quality report: missing fields, deals without history, odd outcomes.

    Missing amounts and close dates, deals without stage history, outcomes that
    disagree with the stages, entries into stages the process no longer has, how
    complete each stage's exit criteria are, and which stages any deal was seen
    entering (a snapshot export records none of the stages between)."""
    from funnelwise.ingest.quality import quality_report

    with _log(ctx, pipeline, as_of=as_of) as log:
        report = quality_report(log)
    print_result(report, fmt, frame=frame)


@export_app.command("xes")
def export_xes(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="XES file to write (.xes, or .xes.gz).")],
    activities: ActivitiesOpt = True,
    pipeline: PipelineOpt = None,
    as_of: ExportAsOfOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Write the log as XES: one trace per deal, one event per stage entry (and activity)."""
    from funnelwise.ingest.export import write_xes

    cli_context(ctx).output(file, option="FILE")
    with _log(ctx, pipeline, as_of=as_of, since=since, until=until) as log:
        lines = write_xes(log, file, activities=activities)
    say(f"Wrote {file} ({lines:,} lines).")


@export_app.command("table")
def export_table(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file to write.")],
    activities: ActivitiesOpt = False,
    pipeline: PipelineOpt = None,
    as_of: ExportAsOfOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Write a PM4Py-compatible event table, sorted by case and time.

    Columns case:concept:name, concept:name, time:timestamp, ..."""
    from funnelwise.ingest.export import write_event_table

    cli_context(ctx).output(file, option="FILE")
    with _log(ctx, pipeline, as_of=as_of, since=since, until=until) as log:
        n = write_event_table(log, file, activities=activities)
    say(f"Wrote {file} ({n:,} events).")


def register(app: typer.Typer) -> None:
    """Attach the import, imports, quality and export commands to the root app."""
    app.add_typer(import_app, name="import")
    app.command()(imports)
    app.command()(quality)
    app.add_typer(export_app, name="export")
