"""The progress protocol core functions accept, so they never import the CLI."""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    """Called as `report(task, done, total)`; task names a step, counts are in its units."""

    def __call__(self, task: str, done: int, total: int) -> None: ...


def no_progress(task: str, done: int, total: int) -> None:
    """A progress callback that reports nothing."""
