"""A measured figure with its unit and, where an issue names one, its target."""

from __future__ import annotations

import resource
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured number. `ok` is None when there is no target."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Read from the kernel's high-water mark of this program's memory (VmHWM), which
    starts afresh when a program starts. `ru_maxrss` does not: Linux keeps it across
    exec, so a subprocess started by a large parent reports the parent's size (a
    child started by a process of 800 MiB read 810 MiB there and 9 MiB here).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_figures(figures: list[Figure]) -> None:
    """Print figures as aligned rows: name, value, unit, target, verdict."""
    for f in figures:
        verdict = "" if f.ok is None else ("ok" if f.ok else "MISSED")
        # A third decimal for scores and shares: 0.706 against a target of 0.72
        # would read 0.71.
        value = f"{f.value:,.3f}" if abs(f.value) < 10 else f"{f.value:,.2f}"
        print(f"  {f.name:<58} {value:>14} {f.unit:<10} {f.target:<24} {verdict}")


def cached(topic: str, name: str, build: Callable[[Path], None]) -> Path:
    """A folder under the temp folder (`funnelwise-bench-<topic>/<name>`) built once:
    `build(root)` runs only when it is not there yet; delete the folder to rebuild."""
    root = Path(tempfile.gettempdir()) / f"funnelwise-bench-{topic}" / name
    done = root / ".built"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        build(root)
        done.write_text("ok", encoding="utf-8")
    return root
