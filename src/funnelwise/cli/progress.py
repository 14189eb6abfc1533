"""A Rich progress bar that core functions can drive through a small callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from funnelwise.progressing import ProgressCallback, no_progress


@contextmanager
def progress_bar() -> Iterator[ProgressCallback]:
    """Yield a callback `(task, done, total)` that renders steps as progress bars on stderr
    when it is a terminal, and does nothing otherwise."""
    from funnelwise.cli.render import err_console

    if not err_console.is_terminal:
        # The bars are transient: on a file or pipe they would leave only a blank line,
        # in front of the command's own messages.
        yield no_progress
        return
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def report(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total)
        bars.update(tasks[task], completed=done, total=total)

    with bars:
        yield report
