"""What every command shares: the project folder and store URL from global options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from funnelwise.cli.render import err_console
from funnelwise.log import EventLog, open_log
from funnelwise.outfile import precheck, refuse_protected, store_files
from funnelwise.project import PROCESS_FILE, Project


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

    def protected_files(self) -> dict[Path, str]:
        """The files the project lives on, with what each holds: its process.yaml and its
        store file (the default one, or the --store file) with the store's `.wal`
        write-ahead log and `.tmp` spill folder."""
        stores = [Path(Project(self.project).store_url.removeprefix("duckdb://"))]
        if self.store and self.store.startswith("duckdb://"):
            target = self.store.removeprefix("duckdb://")
            if target and target != ":memory:":
                stores.append(Path(target).expanduser())
        files = {self.project / PROCESS_FILE: "the project's process definition"}
        for store in stores:
            files.update(dict.fromkeys(store_files(store), "the project's store"))
        return files

    def output(self, path: Path, *, option: str) -> Path:
        """`path`, checked before any work (InputError otherwise): it is no file of the
        project, so an output never overwrites the store or the process definition,
        and it is no folder nor under a file."""
        refuse_protected(path, self.protected_files(), option=option)
        precheck(path)
        return path


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
