"""The report command: build the self-contained HTML report of a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from funnelwise.cli.context import cli_context, cut
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import console


def report(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Describe the log as it was known at this date."),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Leave out the slow parts: the forecast backtest and the score evaluation.",
        ),
    ] = False,
) -> None:
    """Write one self-contained HTML report (no network needed to open it)."""
    from funnelwise.report import write_report

    c = cli_context(ctx)
    output = c.output(output, option="--output")
    # As every analysis command: a date after the end of the data is noted on stderr.
    log = cut(c.log(read_only=True), as_of)
    with progress_bar() as progress:
        path = write_report(log, output, quick=quick, progress=progress)
    size = path.stat().st_size / 1e6
    # The path is printed as written: a folder such as "[draft]" is no markup.
    console.print(
        f"Report written to [bold]{escape(str(path))}[/] ({size:.1f} MB): open it in a browser."
    )


def register(app: typer.Typer) -> None:
    """Attach the report command to the root app."""
    app.command()(report)
