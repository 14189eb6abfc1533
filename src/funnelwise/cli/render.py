"""Rendering frames, records and results as a Rich table, CSV or JSON. No computation here."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from funnelwise.analytics.result import Result, TextTable, cell_text, numeric_columns
from funnelwise.errors import InputError

# Characters per line for tables written to a pipe or a file.
PIPE_WIDTH = 200

console = Console()
# Piped into a file or another program there is no terminal width to respect:
# folding a table at 80 columns would split its numbers across lines.
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = PIPE_WIDTH
# Messages on stderr stay one line each, whatever the width: scripts grep for them.
err_console = Console(stderr=True, soft_wrap=True)


def say(text: str, *, err: bool = False) -> None:
    """Print `text` as written (no markup, no highlighting: a path such as [draft] or
    a value in brackets stays as it is), on stderr with `err`. On a terminal a long
    line wraps at words; piped, and always on stderr, it stays one line: scripts
    grep for it."""
    out = err_console if err else console
    out.print(text, highlight=False, markup=False, soft_wrap=err or not out.is_terminal)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    csv = "csv"
    json = "json"


FrameOpt = Annotated[
    str | None,
    typer.Option(
        "--frame",
        help="Print only this table of the result (CSV prints the first one without it; "
        "a note names the others).",
    ),
]


def _jsonable(value: Any) -> Any:
    # First: NaT has an isoformat() that would give the text "NaT".
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def to_json(value: Any) -> str:
    """JSON text for dicts/lists of plain, numpy, pandas and date values."""
    if isinstance(value, pd.DataFrame):
        value = value.to_dict(orient="records")
    return json.dumps(_jsonable(value), indent=2, ensure_ascii=False)


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists in cells as comma-separated text: a Python repr is no CSV value."""
    # A plain loop over the cells: `map` keeps an empty column's dtype, and `any` over an
    # empty date column warns that it will fail.
    lists = [c for c in frame.columns if any(isinstance(v, list | tuple) for v in frame[c])]
    if not lists:
        return frame
    joined = {
        c: frame[c].map(lambda v: ", ".join(map(str, v)) if isinstance(v, list | tuple) else v)
        for c in lists
    }
    return frame.assign(**joined)


def print_frame(
    frame: pd.DataFrame,
    fmt: OutputFormat,
    *,
    title: str | None = None,
    percent: Collection[str] = (),
) -> None:
    """Print a frame in the chosen format (table for people, csv/json for tools);
    the `percent` columns are shares, shown as percentages in the table."""
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(frame) + "\n")
    elif fmt is OutputFormat.csv:
        _csv_ready(frame).to_csv(sys.stdout, index=False)
    else:
        cells = pd.DataFrame(
            {c: [cell_text(v, c in percent) for v in frame[c]] for c in frame.columns},
            index=frame.index,
        )
        console.print(TextTable(cells, title=title, numeric=numeric_columns(frame)))


def choose_frame(names: Sequence[str], frame: str | None, fmt: OutputFormat) -> str | None:
    """The one table of a result to print: the one asked for with --frame; for CSV,
    which holds one table, the first (a note on stderr names the others, stdout
    stays pure CSV); otherwise None, for all of them."""
    if frame is not None:
        if frame not in names:
            raise InputError(
                f"--frame {frame!r}: no such table here; choose one of {', '.join(names)}"
            )
        return frame
    if fmt is not OutputFormat.csv:
        return None
    if len(names) > 1:
        others = ", ".join(names[1:])
        say(
            f"note: CSV of the {names[0]} table; for the others ({others}) "
            f"add --frame NAME, or use --format json for all",
            err=True,
        )
    return names[0]


def print_frames(
    frames: Mapping[str, pd.DataFrame],
    fmt: OutputFormat,
    *,
    frame: str | None,
    whole: Callable[[], None],
) -> None:
    """Print the one table `choose_frame` picks, or call `whole` to print them all."""
    name = choose_frame(list(frames), frame, fmt)
    if name is None:
        whole()
    else:
        print_frame(frames[name], fmt, title=name)


def print_result(result: Result, fmt: OutputFormat, *, frame: str | None = None) -> None:
    """Print an analysis result: all its tables, or the one chosen by `choose_frame`."""
    name = choose_frame(list(result.frames), frame, fmt)
    if fmt is OutputFormat.table:
        console.print(result.renderable(None if name is None else [name]))
    elif name is not None:
        print_frame(result.frame(name), fmt)
    else:
        sys.stdout.write(to_json(result.to_dict()) + "\n")


def print_record(record: dict[str, Any], fmt: OutputFormat, *, title: str | None = None) -> None:
    """Print one record (key/value pairs) in the chosen format."""
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(record) + "\n")
        return
    values = list(record.values())
    # The value column mixes types: formatted as text for people, left as it is for CSV.
    if fmt is OutputFormat.table:
        values = [cell_text(v) for v in values]
    frame = pd.DataFrame({"field": list(record), "value": pd.Series(values, dtype=object)})
    print_frame(frame, fmt, title=title)
