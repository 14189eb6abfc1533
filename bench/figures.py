"""A measured figure with its unit and, where an issue names one, its target."""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured number. `ok` is None when there is no target."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_figures(figures: list[Figure]) -> None:
    """Print figures as aligned rows: name, value, unit, target, verdict."""
    for f in figures:
        verdict = "" if f.ok is None else ("ok" if f.ok else "MISSED")
        print(f"  {f.name:<58} {f.value:>14,.2f} {f.unit:<10} {f.target:<24} {verdict}")
