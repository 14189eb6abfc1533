"""Foundation commands: demo, init, process check|diff, synth, info."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from funnelwise.cli.context import cli_context
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import (
    OutputFormat,
    console,
    print_frame,
    print_record,
    say,
)
from funnelwise.errors import InputError
from funnelwise.info import log_info, unknown_stages_warning
from funnelwise.process import diff_processes, load_process, template_text
from funnelwise.project import PROCESS_FILE, Project

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]


def demo(
    directory: Annotated[Path, typer.Argument(help="Folder to build the demo project in.")] = Path(
        "demo"
    ),
    deals: Annotated[int, typer.Option(help="Number of synthetic deals.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    force: Annotated[
        bool, typer.Option(help="Replace the folder's existing store and process.yaml.")
    ] = False,
) -> None:
    """Build a demo project: the classic B2B process and synthetic deals with known truth."""
    from funnelwise.synth import generate, write_project

    if force:
        _remove_store(directory)
    with progress_bar() as progress:
        result = generate(deals=deals, seed=seed, progress=progress)
        write_project(result, directory, progress=progress, replace_process=force)
    counts = log_info(Project(directory).root)
    # The folder is printed as written: a name such as "[draft]" is no markup.
    console.print(
        f"[bold green]Demo project ready[/] in [bold]{escape(str(directory))}[/]: "
        f"{counts['deals']:,} deals, {counts['stage_events']:,} stage events.",
        soft_wrap=True,
    )
    console.print("Next:")
    say(f"  funnelwise --project {shlex.quote(str(directory))} info")
    say(f"  python -c \"import funnelwise as fw; print(fw.open('{directory}').counts())\"")


def _remove_store(directory: Path) -> None:
    """Delete a project's default store file (and its write-ahead log), keeping the rest."""
    store = Path(Project(directory).store_url.removeprefix("duckdb://"))
    for path in (store, store.with_name(store.name + ".wal")):
        path.unlink(missing_ok=True)


def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing process.yaml.")] = False,
) -> None:
    """Write a commented process.yaml (the classic B2B process) and an empty store."""
    project = Project(directory)
    if project.process_path.exists() and not force:
        if not project.store_path.exists():
            # A process kept without its store (in version control, say): the store
            # is made for it, the process is left as it is.
            project.open_store(create=True).close()
            say(
                f"Kept {project.process_path} and created the empty store "
                f"{project.store_path} for it."
            )
            return
        raise InputError(
            f"{project.process_path} exists already; edit it, or pass --force to overwrite"
        )
    project.make_folder()
    project.process_path.write_text(template_text(), encoding="utf-8")
    project.open_store(create=True).close()
    # The check command names the file (quoted for the shell): it works from where
    # the user stands.
    say(
        f"Wrote {project.process_path}. Edit it, then: "
        f"funnelwise process check {shlex.quote(str(project.process_path))}"
    )


process_app = typer.Typer(help="Check and compare process definitions.", no_args_is_help=True)


@process_app.command("check")
def process_check(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="process.yaml to check (default: the project's).")
    ] = None,
) -> None:
    """Validate a process.yaml; prints every problem with its line."""
    path = file or cli_context(ctx).project / PROCESS_FILE
    process = load_process(path)
    n_stages = sum(len(p.stages) for p in process.pipelines)
    console.print(
        f"[green]ok[/] {escape(str(path))}: {escape(repr(process.name))}, "
        f"{len(process.pipelines)} pipeline(s), "
        f"{n_stages} stages, currency {process.currency}",
        soft_wrap=True,
    )


@process_app.command("diff")
def process_diff(
    a: Annotated[Path, typer.Argument(help="The earlier process.yaml.")],
    b: Annotated[Path, typer.Argument(help="The later process.yaml.")],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Show what changed between two versions of a process."""
    changes = diff_processes(load_process(a), load_process(b))
    if fmt is OutputFormat.table:
        if not changes:
            console.print("no differences")
        for c in changes:
            say(str(c))
        return
    import pandas as pd

    frame = pd.DataFrame(
        [{"kind": c.kind, "path": c.path, "before": c.before, "after": c.after} for c in changes],
        columns=["kind", "path", "before", "after"],
    )
    print_frame(frame, fmt)


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Project folder to write.")],
    deals: Annotated[int, typer.Option(help="Number of deals.")] = 10000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    parquet: Annotated[
        bool, typer.Option(help="Also write the canonical tables as Parquet files.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="Replace the folder's existing store and process.yaml.")
    ] = False,
) -> None:
    """Generate synthetic CRM data with known true parameters into a project folder."""
    from funnelwise.synth import generate, write_project

    if deals < 1:
        raise InputError(f"--deals must be at least 1 (got {deals})")
    if force:
        _remove_store(out)
    with progress_bar() as progress:
        result = generate(deals=deals, seed=seed, progress=progress)
        write_project(result, out, parquet=parquet, progress=progress, replace_process=force)
    console.print(
        f"Wrote {out}: {result.tables['deals'].num_rows:,} deals, "
        f"{result.tables['stage_events'].num_rows:,} stage events (seed {seed})."
    )


def info(ctx: typer.Context, fmt: FormatOpt = OutputFormat.table) -> None:
    """Counts of deals by state, events, changes, activities and the date range."""
    c = cli_context(ctx)
    record = log_info(c.project, store=c.store)
    # A mapping is no key/value cell: JSON keeps it, the table and CSV say it on
    # stderr below (stdout stays a clean table or CSV).
    unknown = record["unknown_stages"] if fmt is OutputFormat.json else record.pop("unknown_stages")
    print_record(record, fmt, title="funnelwise store")
    warning = unknown_stages_warning(unknown)
    if warning:
        say(warning, err=True)


def register(app: typer.Typer) -> None:
    """Attach the foundation commands to the root app."""
    app.command()(demo)
    app.command()(init)
    app.command()(synth)
    app.command()(info)
    app.add_typer(process_app, name="process")
