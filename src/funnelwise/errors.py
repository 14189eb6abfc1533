"""The one error hierarchy of funnelwise.

Every error names the offending value, the valid choices and the fix. The CLI
maps these to exit codes at the edge; nothing else catches broadly.

    FunnelwiseError
    ├── ProcessError          process.yaml is invalid (one line per problem)
    ├── StoreError            a store URL or schema problem
    │   └── ConflictError     optimistic-concurrency check failed
    ├── ProjectError          a project folder is missing or incomplete
    ├── InputError            bad user input (dates, options, filters)
    │   └── UnknownPipelineError  a pipeline id the process does not define
    ├── SourceImportError     a source file cannot be imported
    └── NotEnoughDataError    an analysis lacks the history it needs
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FunnelwiseError(Exception):
    """Base class of every error funnelwise raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True)
class Problem:
    """One located problem in a file: where it is and what is wrong."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        prefix = f"{where}: " if where else ""
        loc = f"{self.path}: " if self.path else ""
        return f"{prefix}{loc}{self.message}"


class ProcessError(FunnelwiseError):
    """A process definition is invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the process definition:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class StoreError(FunnelwiseError):
    """The store cannot be opened, migrated or written."""

    exit_code = 3


class ConflictError(StoreError):
    """A deal was changed by someone else since it was read (version mismatch)."""

    exit_code = 4


class ProjectError(FunnelwiseError):
    """A project folder is missing, or lacks process.yaml or its store."""

    exit_code = 2


class InputError(FunnelwiseError):
    """An option or value given by the user is invalid."""

    exit_code = 2


class UnknownPipelineError(InputError, KeyError):
    """A pipeline id the process does not define; the message names the valid ones.

    Also a KeyError, because `Process.pipeline` is a lookup by key and callers
    may catch it as one.
    """

    def __str__(self) -> str:
        # KeyError would quote the message; it is a sentence, not a key.
        return str(self.args[0]) if self.args else ""


class SourceImportError(FunnelwiseError):
    """A source file cannot be imported (unmapped stages, unreadable file, ...)."""

    exit_code = 5


class NotEnoughDataError(FunnelwiseError):
    """An analysis or model lacks the history it needs; says how much it needs."""

    exit_code = 6
