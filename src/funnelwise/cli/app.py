"""The root Typer app: global options, error handling at the edge, command registry."""

from __future__ import annotations

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
    """Console entry point."""
    app()
