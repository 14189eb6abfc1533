"""What every command shares: the project folder and store URL from global options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from funnelwise.cli.render import err_console
from funnelwise.log import EventLog, open_log


@dataclass(frozen=True)
class CliContext:
    """Global options: `--project DIR` (default: current folder) and `--store URL`."""

    project: Path
    store: str | None

    def log(self, *, read_only: bool = False) -> EventLog:
        """Open the EventLog of the project (or of the store URL); `read_only` for
        commands that only read, so that several can run at once."""
        if self.store and not (self.project / "process.yaml").exists():
            return open_log(self.store, read_only=read_only)
        return open_log(self.project, store=self.store, read_only=read_only)


def cli_context(ctx: typer.Context) -> CliContext:
    """The CliContext set by the root callback (a default one in isolated tests)."""
    obj = ctx.find_root().obj
    if isinstance(obj, CliContext):
        return obj
    return CliContext(Path("."), None)


def cut(log: EventLog, as_of: str | None) -> EventLog:
    """The log as known at `--as-of` (the log itself without it). A date after the
    end of the data gives the data's end, and stderr says so."""
    if not as_of:
        return log
    known = log.as_of(as_of)
    if known.cutoff is not None and known.cutoff > known.observed_until:
        err_console.print(
            f"note: --as-of {as_of} is after the end of the data; the figures are as of "
            f"{known.observed_until}."
        )
    return known
