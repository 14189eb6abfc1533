"""The root Typer app: global options, error handling at the edge, command registry."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

import funnelwise
import funnelwise.cli.forecast_cmds as forecast_cmds
from funnelwise.cli import analytics_cmds, core_cmds, ingest_cmds, report_cmds, score_cmds
from funnelwise.cli.context import CliContext
from funnelwise.cli.render import console, err_console
from funnelwise.errors import FunnelwiseError

# The status `yes | head -1` reports: 128 + SIGPIPE (13). Standard tools die of
# SIGPIPE when their reader stops early, so scripts under `set -o pipefail` already
# know 141 as "the reader had enough". 0 would claim the output was all written;
# 1 (Click's choice) reads as a failure of the command itself.
EXIT_BROKEN_PIPE = 141


def _discard_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so that the interpreter's flush at exit
    writes what is still buffered there instead of raising BrokenPipeError again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return  # not a real file (a test runner's buffer): nothing will flush to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


class _Group(TyperGroup):
    """Maps funnelwise errors to a clear message and an exit code, nothing broader."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FunnelwiseError as exc:
            # Text, not markup: messages quote user data that may contain [brackets].
            message = Text.assemble(("error: ", "bold red"), str(exc))
            err_console.print(message, highlight=False)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    help="funnelwise: where your sales process leaks and stalls, what it will bring, "
    "and whether a change worked.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"funnelwise {funnelwise.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    project: Annotated[
        Path, typer.Option("--project", "-p", help="Project folder (process.yaml + store).")
    ] = Path("."),
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL, e.g. duckdb:///path/funnelwise.duckdb."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = CliContext(project, store)


core_cmds.register(app)
analytics_cmds.register(app)
ingest_cmds.register(app)
report_cmds.register(app)
forecast_cmds.register(app)
score_cmds.register(app)


def main() -> None:
    """Console entry point. A reader that stops early (`funnelwise variants | head`)
    ends the command quietly with status 141, as it would end `cat` or `yes`."""
    try:
        try:
            app()
        finally:
            # Output small enough to sit in the buffer meets the closed pipe only here.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    except SystemExit as exc:
        # Typer (for a command's EPIPE) and Rich's consoles (ours and the one help is
        # printed by) exit with status 1 from inside their `except BrokenPipeError`:
        # that exit alone carries the closed pipe as its context, a failed command
        # does not.
        if not isinstance(exc.__context__, BrokenPipeError):
            raise
        _discard_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
