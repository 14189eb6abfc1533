"""The EventLog handle over a store: filters, `as_of(t)` and derived tables."""

from __future__ import annotations

from pathlib import Path

from funnelwise.errors import ProjectError
from funnelwise.log.eventlog import EventLog, days_between
from funnelwise.project import PROCESS_FILE, Project, stored_process
from funnelwise.store import Store


def open_log(
    project_or_url: str | Path = ".",
    *,
    store: str | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    read_only: bool = False,
) -> EventLog:
    """Open an EventLog from a project folder or a store URL.

    `fw.open("demo")` reads demo/process.yaml and demo/funnelwise.duckdb;
    `fw.open("duckdb:///path/x.duckdb")` uses the process recorded in that store.
    `store` overrides a project's default store URL. `memory_limit` and `threads`
    set the engine (see `Store.open`). `read_only` lets other readers open the
    store at the same time (nothing can be written through this log then).
    """
    target = str(project_or_url)
    if "://" in target:
        s = Store.open(
            target, create=False, read_only=read_only, memory_limit=memory_limit, threads=threads
        )
        return EventLog(s, stored_process(s))
    root = Path(target)
    if not (root / PROCESS_FILE).exists():
        raise ProjectError(
            f"{root} is not a funnelwise project (no {PROCESS_FILE}); "
            f"create one with `funnelwise demo {root}` or `funnelwise init {root}`"
        )
    project = Project(root)
    s = project.open_store(store, read_only=read_only, memory_limit=memory_limit, threads=threads)
    return EventLog(s, project.load_process())


__all__ = ["EventLog", "days_between", "open_log"]
