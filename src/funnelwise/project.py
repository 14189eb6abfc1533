"""A project folder: process.yaml plus its store (funnelwise.duckdb by default)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from funnelwise.errors import ProjectError, StoreError
from funnelwise.outfile import make_folder
from funnelwise.process import Process, load_process, parse_process
from funnelwise.store import SCHEMA_VERSION, Store
from funnelwise.store.store import lock_holder

PROCESS_FILE = "process.yaml"
STORE_FILE = "funnelwise.duckdb"


def default_store_url(project_dir: str | Path) -> str:
    """`duckdb:///<project>/funnelwise.duckdb` with an absolute path."""
    return f"duckdb://{Path(project_dir).resolve() / STORE_FILE}"


def write_process(store: Store, process: Process, text: str) -> None:
    """Record the process in the store: pipelines, stages and the YAML text itself."""
    with store.transaction():
        store.replace("pipelines", pd.DataFrame(process.pipeline_rows()))
        store.replace("stages", pd.DataFrame(process.stage_rows()))
        store.set_meta("process_yaml", text)


def stored_process(store: Store) -> Process:
    """The process recorded in a store; ProjectError if none was ever written."""
    if store.schema_version() == 0:
        raise ProjectError(
            f"{store.url} is not a funnelwise store (it has no funnelwise tables); give the "
            "store of a project, or open the project folder"
        )
    text = store.meta("process_yaml")
    if text is None:
        raise ProjectError(
            f"the store {store.url} has no process; open it through its project folder "
            "or load one with `funnelwise init`"
        )
    return parse_process(text, file=f"{store.url} (stored process)")


@dataclass(frozen=True)
class Project:
    """Paths of a project folder."""

    root: Path

    @property
    def process_path(self) -> Path:
        """The process definition file."""
        return self.root / PROCESS_FILE

    @property
    def store_url(self) -> str:
        """The default store URL of this project."""
        return default_store_url(self.root)

    @property
    def store_path(self) -> Path:
        """The default store file of this project."""
        return self.root.resolve() / STORE_FILE

    def make_folder(self) -> None:
        """Create the project folder (and its parents) if missing; ProjectError naming
        the folder and the reason when it cannot be one (a file is in the way, no
        permission)."""
        reason = make_folder(self.root)
        if reason:
            raise ProjectError(
                f"cannot create the folder {self.root}: {reason}; choose another folder"
            )

    def load_process(self) -> Process:
        """Read and validate the project's process.yaml."""
        if not self.process_path.exists():
            raise ProjectError(
                f"{self.root} has no {PROCESS_FILE}; create one with "
                f"`funnelwise init {self.root}` or a demo with `funnelwise demo {self.root}`"
            )
        return load_process(self.process_path)

    def open_store(
        self,
        url: str | None = None,
        *,
        create: bool = False,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> Store:
        """Open the project's store (or `url`), syncing the process into it; `memory_limit`
        and `threads` set the engine (see `Store.open`).

        `read_only` opens it for reading only, so that several readers (a report
        and a backtest, say) can run at once; when the process file changed or
        the store needs a migration, the store is first opened for writing to
        bring it up to date, then reopened for reading.
        """
        process = self.load_process()
        text = self.process_path.read_text(encoding="utf-8")
        if url is None and not create and not self.store_path.exists():
            raise ProjectError(
                f"{self.root} has its {PROCESS_FILE} but no store ({self.store_path}); "
                f"create an empty one with `funnelwise init {self.root}` (the process is "
                "kept), or import data, which creates it"
            )
        opener = partial(
            Store.open, url or self.store_url, memory_limit=memory_limit, threads=threads
        )
        if read_only and not create:
            store = opener(create=False, read_only=True)
            version = store.schema_version()
            if version == SCHEMA_VERSION and store.meta("process_yaml") == text:
                return store
            store.close()
            try:
                writable = opener(create=False)  # opening for writing migrates
            except StoreError as exc:
                holder = lock_holder(exc.__cause__)
                if holder is None:
                    raise
                update = (
                    f"{self.process_path} has changed since the store recorded it"
                    if version == SCHEMA_VERSION
                    else f"the store needs an upgrade (schema {version} to {SCHEMA_VERSION})"
                )
                raise StoreError(
                    f"cannot read the store {store.url}: {update}, and bringing it up to "
                    f"date needs the store alone while {holder} has it open. Retry when "
                    "the other command has finished"
                ) from exc
            with writable:
                if writable.meta("process_yaml") != text:
                    write_process(writable, process, text)
            return opener(create=False, read_only=True)
        store = opener(create=create)
        if store.meta("process_yaml") != text:
            write_process(store, process, text)
        return store
