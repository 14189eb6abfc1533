"""Writing output files (reports, exports) safely.

Two guarantees for every file a command writes:

* it never lands on a file the project lives on: its store (with the store's
  `.wal` write-ahead log and `.tmp` spill folder) or its process.yaml
  (`refuse_protected`);
* a failed write never leaves a half file: the content goes to a temporary
  file in the same folder, which then replaces the target in one step
  (`atomic_output`). A failure of the file system (no such folder, disk full,
  a folder where a file should be) is an `InputError` naming the path and the
  reason, not a traceback.
"""

from __future__ import annotations

import errno
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
                "Give the output another name or folder"
            )


def precheck(path: Path) -> None:
    """InputError now, before any work, when `path` cannot be a file: it is a folder,
    or a part of its folder path is a file."""
    if path.is_dir():
        raise output_error(path, _os_error(errno.EISDIR))
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise output_error(path, _os_error(errno.ENOTDIR))
            return


def blocking_file(folder: Path) -> Path | None:
    """The file that stands where `folder` or one of its parents should be, if any."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def make_folder(folder: Path) -> str | None:
    """Create `folder` and its parents if missing: None when it is there, else why it
    cannot be (a file in the way, or the system's reason)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = blocking_file(folder)
        return f"{blocker} is a file" if blocker else exc.strerror or str(exc)
    return None


def _os_error(code: int) -> OSError:
    """The OSError (subclass) the system raises for `code`."""
    return OSError(code, os.strerror(code))


def output_error(path: Path, exc: OSError) -> InputError:
    """The InputError for an OSError met while writing `path`: the path and the reason."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EISDIR or path.is_dir():
        hint = f"it is a folder; give a file name in it, e.g. {path / 'out.html'}"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        hint = "a part of the path is a file, not a folder; choose another folder"
    elif exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space or write elsewhere"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "no permission to write there; choose a folder you can write to"
    else:
        hint = "check the path, or write elsewhere"
    return InputError(f"cannot write {path}: {reason}; {hint}")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content to; it replaces `path` when the
    block ends without error, and is removed otherwise. Missing folders are created.

    A target that exists and is no regular file (`/dev/null`, a pipe) is written
    directly: it cannot be replaced, and replacing a device would be wrong.
    """
    if path.is_dir():
        raise output_error(path, _os_error(errno.EISDIR))
    try:
        special = path.exists() and not stat.S_ISREG(path.stat().st_mode)
        if special:
            yield path
            return
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    # A fresh name the writer creates itself, so the file gets the usual permissions.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        yield temp
        os.replace(temp, path)
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        temp.unlink(missing_ok=True)
