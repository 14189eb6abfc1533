"""Writing output files (reports, exports) safely.

Two guarantees for every file a command writes:

* it never lands on a file the project lives on: its store (with the store's
  `.wal` write-ahead log and `.tmp` spill folder) or its process.yaml
  (`refuse_protected`);
* a failed write never leaves a half file: the content goes to a temporary
  file in the same folder, which then replaces the target in one step
  (`atomic_output`).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from funnelwise.errors import InputError

STORE_COMPANIONS = (".wal", ".tmp")


def store_files(store: Path) -> tuple[Path, ...]:
    """The store file and the files DuckDB keeps beside it (`.wal`, `.tmp`)."""
    return (store, *(store.with_name(store.name + s) for s in STORE_COMPANIONS))


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (through links and `..` too)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: not the same file
        return False


def refuse_protected(path: Path, protected: Mapping[Path, str], *, option: str) -> None:
    """InputError when `path` is (or lies inside) one of the `protected` files, which map
    to what they hold ("the project's store"). `option` names the argument."""
    target = path.resolve()
    for guarded, what in protected.items():
        if _same(path, guarded) or guarded.resolve() in target.parents:
            raise InputError(
                f"{option} {path} is {what} ({guarded}); writing there would destroy it. "
                "Give another file name, e.g. report.html or events.csv"
            )


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content to; it replaces `path` when the
    block ends without error, and is removed otherwise.

    A target that exists and is no regular file (`/dev/null`, a pipe) is written
    directly: it cannot be replaced, and replacing a device would be wrong.
    """
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        yield path
        return
    # A fresh name the writer creates itself, so the file gets the usual permissions.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
