"""What every command shares: the project folder and store URL from global options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

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
