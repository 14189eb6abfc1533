"""Rendering frames and records as a Rich table, CSV or JSON. No computation here."""

from __future__ import annotations

import json
import math
import os
import sys
from enum import StrEnum
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

# Characters per line for tables written to a pipe or a file.
PIPE_WIDTH = 200

console = Console()
# Piped into a file or another program there is no terminal width to respect:
# folding a table at 80 columns would split its numbers across lines.
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = PIPE_WIDTH
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    csv = "csv"
    json = "json"


def _jsonable(value: Any) -> Any:
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
    if value is pd.NaT or value is None:
        return None
    return value


def to_json(value: Any) -> str:
    """JSON text for dicts/lists of plain, numpy, pandas and date values."""
    if isinstance(value, pd.DataFrame):
        value = value.to_dict(orient="records")
    return json.dumps(_jsonable(value), indent=2, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def print_frame(frame: pd.DataFrame, fmt: OutputFormat, *, title: str | None = None) -> None:
    """Print a frame in the chosen format (table for people, csv/json for tools)."""
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(frame) + "\n")
    elif fmt is OutputFormat.csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        table = Table(title=title)
        for col in frame.columns:
            table.add_column(
                str(col), justify="right" if frame[col].dtype.kind in "ifu" else "left"
            )
        for row in frame.itertuples(index=False):
            table.add_row(*(_cell(v) for v in row))
        console.print(table)


def print_record(record: dict[str, Any], fmt: OutputFormat, *, title: str | None = None) -> None:
    """Print one record (key/value pairs) in the chosen format."""
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(record) + "\n")
        return
    frame = pd.DataFrame({"field": list(record), "value": [_cell(v) for v in record.values()]})
    print_frame(frame, fmt, title=title)
