"""The shared shape of analysis results: named frames plus metadata.

Every analysis returns a subclass of `Result`: an immutable object holding one
or more pandas frames (the first is the main one, returned by `.to_frame()`)
and metadata (as-of time, units, grouping, denominators, options). A result
renders itself as JSON-ready data (`to_dict`), HTML for notebooks
(`_repr_html_`) and a Rich renderable for the terminal, so interfaces never
compute anything.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, overload

import numpy as np
import pandas as pd
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

# Rows shown per frame in the terminal and in notebooks; to_frame/to_dict keep all.
DISPLAY_ROWS = 40
# Cells longer than this (characters) are sentences: their column wraps.
WRAP_AFTER = 30
# On a narrow terminal sentence columns wrap down to this width ...
SENTENCE_MIN = 12
# ... before short cells are cut (with an ellipsis) down to this one.
CUT_MIN = 6


def jsonable(value: Any) -> Any:
    """Plain JSON-ready Python values from numpy, pandas, dates, NaN and containers."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return value.total_seconds() / 86400.0
    if isinstance(value, bool | int | str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as a list of JSON-ready records."""
    columns = [str(c) for c in frame.columns]
    return [
        {c: jsonable(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def instant_text(value: dt.datetime) -> str:
    """An instant for people: to the second, or the date alone at midnight (the
    microseconds of "now" tell a reader nothing)."""
    stamp = pd.Timestamp(value)
    if stamp == stamp.normalize():
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M:%S}"


def cell_text(value: Any, percent: bool = False) -> str:
    """A value as a table cell for people: whole numbers without decimals, small
    ones with two, shares as percentages, instants to the second (a date alone at
    midnight), lists comma-separated, missing as –."""
    if isinstance(value, dt.datetime) and not pd.isna(value):
        return instant_text(value)
    value = jsonable(value)
    if isinstance(value, list):
        return ", ".join(cell_text(v, percent) for v in value) or "–"
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if percent and isinstance(value, int | float):
        # A share that is there but under 0.05% would read "0.0%", as if none; a tiny
        # negative one reads 0.0%, never "-0.0%".
        if abs(value) < 0.0005:
            return "0.0%" if value <= 0 else "<0.1%"
        return f"{100 * value:.1f}%"
    if isinstance(value, float) and abs(value) < 0.005 and value != 0:
        # Too small to show with two decimals: it prints as 0, never as "-0.00".
        value = 0.0
    if isinstance(value, float):
        if value.is_integer():
            return f"{value:,.0f}"
        if abs(value) < 10:
            return f"{value:.2f}"
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fit_widths(
    headers: Sequence[int],
    longest: Sequence[int],
    numeric: Sequence[bool],
    room: int,
    words: Sequence[int] | None = None,
) -> list[int]:
    """Text widths of table columns (header and longest cell lengths given) that
    add up to at most `room`, where that can be done.

    Columns shrink widest first, in steps, each down to a floor: first headers
    fold down to their cells and sentences (cells over WRAP_AFTER) narrow to
    WRAP_AFTER, then sentences to SENTENCE_MIN; then short cells of several words
    ("18.0% [17–19]", "Needs assessment") wrap at their spaces down to their
    longest word (`words`, per column); only then are short cells cut with an
    ellipsis to CUT_MIN, text before numbers. No column is squeezed away.
    """
    widths = [max(h, n) for h, n in zip(headers, longest, strict=True)]
    sentence = [n > WRAP_AFTER for n in longest]
    whole = [max(n, min(h, CUT_MIN)) for h, n in zip(headers, longest, strict=True)]
    wrapped = [max(w, min(h, CUT_MIN)) for h, w in zip(headers, words or longest, strict=True)]
    narrow = [min(w, SENTENCE_MIN) for w in widths]
    cut = [min(w, CUT_MIN) for w in widths]
    floors = (
        [min(w, WRAP_AFTER) if s else f for w, s, f in zip(widths, sentence, whole, strict=True)],
        [a if s else f for a, s, f in zip(narrow, sentence, whole, strict=True)],
        [a if s else f for a, s, f in zip(narrow, sentence, wrapped, strict=True)],
        [
            a if s else (f if n else c)
            for a, s, f, n, c in zip(narrow, sentence, whole, numeric, cut, strict=True)
        ],
        [a if s else c for a, s, c in zip(narrow, sentence, cut, strict=True)],
    )
    for floor in floors:
        while sum(widths) > room:
            slack = [i for i, (w, f) in enumerate(zip(widths, floor, strict=True)) if w > f]
            if not slack:
                break
            widths[max(slack, key=widths.__getitem__)] -= 1
    return widths


@dataclass(frozen=True)
class TextTable:
    """A frame of text cells as a Rich table that fits the console width.

    Numbers, ids and single-word names are never folded: folded, a number reads
    as two. Headers fold and sentence columns wrap to make room, then cells of
    several words (an estimate and its interval) wrap at their spaces; a short
    cell is cut (with an ellipsis) only when nothing else is left to give. A
    frame without rows prints its title and "(no rows)": an empty box looks broken.
    """

    cells: pd.DataFrame
    title: str | None = None
    caption: str | None = None
    numeric: frozenset[str] = frozenset()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.cells.empty:
            if self.title:
                yield Text(self.title, style="table.title")
            yield Text("(no rows)", style="dim")
            return
        names = [str(c) for c in self.cells.columns]
        longest = [max(cell_len(v) for v in self.cells[c]) for c in self.cells.columns]
        words = [
            max(cell_len(w) for v in self.cells[c] for w in v.split(" "))
            for c in self.cells.columns
        ]
        # Each column adds a border and two spaces of padding; one border closes the row.
        room = options.max_width - 3 * len(names) - 1
        numeric = [c in self.numeric for c in self.cells.columns]
        widths = fit_widths([cell_len(n) for n in names], longest, numeric, room, words)
        caption = self.caption
        if any(
            n <= WRAP_AFTER and w < word for w, n, word in zip(widths, longest, words, strict=True)
        ):
            cut = (
                f"… marks cells cut to fit {options.max_width} columns: widen the "
                "terminal or use --format csv"
            )
            caption = f"{caption}; {cut}" if caption else cut
        table = Table(title=self.title, caption=caption)
        for name, width, n, word, is_number in zip(
            names, widths, longest, words, numeric, strict=True
        ):
            # Short cells stay on one line while they fit; narrower, they wrap at
            # spaces while every word fits, and are cut only below that.
            one_line = n <= WRAP_AFTER and (width >= n or width < word)
            table.add_column(
                Text(_header(name, width), overflow="fold", no_wrap=False),
                justify="right" if is_number else "left",
                width=width,
                no_wrap=one_line,
                overflow="ellipsis" if one_line else "fold",
            )
        for row in self.cells.itertuples(index=False, name=None):
            table.add_row(*row)
        yield table


def _header(name: str, width: int) -> str:
    """A column name folded to `width` after its underscores where it can be
    ("share_" / "waiting" rather than "share_" / "waitin" / "g")."""
    if cell_len(name) <= width:
        return name
    lines = [""]
    for part in re.split(r"(?<=_)", name):
        if lines[-1] and cell_len(lines[-1] + part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def numeric_columns(frame: pd.DataFrame) -> frozenset[str]:
    """Names of the number columns (right-aligned in tables)."""
    return frozenset(str(c) for c in frame.columns if frame[c].dtype.kind in "ifu")


class frame_view:
    """A result attribute that returns a copy of the frame of the same name.

    `stages = frame_view("One row per stage")` on a Result subclass makes
    `result.stages` equal `result.frame("stages")`.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> frame_view: ...
    @overload
    def __get__(self, obj: Result, owner: type) -> pd.DataFrame: ...
    def __get__(self, obj: Result | None, owner: type) -> frame_view | pd.DataFrame:
        return self if obj is None else obj.frame(self.name)


def with_interval(value: Any, lower: Any, upper: Any, percent: bool = False) -> str:
    """A value as a cell with its interval in brackets, when it has one:
    '18.0% [17–19]', '15,713 [15,290–16,136]'."""
    cell = cell_text(value, percent)
    if cell == "–" or (jsonable(lower) is None and jsonable(upper) is None):
        return cell
    return f"{cell} [{_bound(lower, percent)}–{_bound(upper, percent)}]"


def _bound(value: Any, percent: bool) -> str:
    """An interval bound, short: whole percent points for shares."""
    value = jsonable(value)
    if value is None:
        return "?"
    if percent:
        return f"{100 * value:.0f}"
    return cell_text(value)


# Metadata shown in the one-line terminal/notebook header (all of it goes to JSON).
_HEADLINE_META = (
    "as_of",
    "start",
    "end",
    "pipeline",
    "since",
    "until",
    "filters",
    "by",
    "cohort",
    "unit",
)


def _headline(value: Any) -> Any:
    """A metadata value for the header line (instants as `instant_text`)."""
    if isinstance(value, dt.datetime) and not pd.isna(value):
        return instant_text(value)
    return jsonable(value)


@dataclass(frozen=True, eq=False)
class Result:
    """Named frames and metadata of one analysis. Immutable: frames are copied out.

    `frames` maps a name to a frame (the first is the main one); `meta` holds
    the as-of instant, units and options. Subclasses name the analysis and
    give the frames readable properties.
    """

    analysis: ClassVar[str] = "result"
    title: ClassVar[str] = "Result"
    # Columns shown in the terminal and notebooks per frame (default: all). A
    # column with `<base>_lower`/`<base>_upper` siblings shows its interval too.
    display: ClassVar[Mapping[str, Sequence[str]]] = {}
    # Columns (besides `*_rate`) that are shares and print as percentages.
    percent: ClassVar[frozenset[str]] = frozenset()
    # Frames printed in the terminal (default: all); JSON and notebooks get all.
    terminal: ClassVar[tuple[str, ...]] = ()
    # Columns that, holding one value in every row of a terminal table, are said
    # once under it instead of repeated (the test set every scorer is scored on).
    shared: ClassVar[tuple[str, ...]] = ()

    frames: Mapping[str, pd.DataFrame]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a result needs at least one frame")
        # Frames are shared read-only: copies go out through to_frame().
        object.__setattr__(self, "frames", MappingProxyType(dict(self.frames)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def main(self) -> str:
        """Name of the main frame."""
        return next(iter(self.frames))

    def frame(self, name: str) -> pd.DataFrame:
        """A copy of the named frame; KeyError names the frames there are."""
        if name not in self.frames:
            raise KeyError(f"no frame {name!r}; frames: {', '.join(self.frames)}")
        return self.frames[name].copy()

    def to_frame(self, name: str | None = None) -> pd.DataFrame:
        """A copy of the main frame (or of the named one)."""
        return self.frame(name or self.main)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `{"analysis", "title", "meta", "frames": {name: [records]}}`."""
        return {
            "analysis": self.analysis,
            "title": self.title,
            "meta": jsonable(self.meta),
            "frames": {name: frame_records(f) for name, f in self.frames.items()},
        }

    # -- rendering ---------------------------------------------------------------
    def _meta_line(self) -> str:
        meta = {k: _headline(v) for k, v in self.meta.items()}
        shown = {k: meta[k] for k in _HEADLINE_META if meta.get(k) not in (None, [], {})}
        return "; ".join(f"{k}: {v}" for k, v in shown.items())

    def _repr_html_(self) -> str:
        parts = [f"<h4>{html.escape(self.title)}</h4>"]
        meta = self._meta_line()
        if meta:
            parts.append(f"<p><small>{html.escape(meta)}</small></p>")
        if self.meta.get("empty"):
            parts.append(f"<p>{html.escape(self.empty_line())}</p>")
        for name, f in self.frames.items():
            more = len(f) - DISPLAY_ROWS
            parts.append(f"<p><b>{html.escape(name)}</b> ({len(f):,} rows)</p>")
            parts.append(self.display_frame(name).to_html(index=False, border=0))
            if more > 0:
                parts.append(f"<p><small>… {more:,} more rows (.to_frame())</small></p>")
        return "\n".join(parts)

    def display_frame(self, name: str) -> pd.DataFrame:
        """The named frame as text cells for people: chosen columns, intervals beside
        their estimates, shares as percentages (first DISPLAY_ROWS rows)."""
        f = self.frames[name].head(DISPLAY_ROWS)
        groups = [
            g
            for g in self.meta.get("groups", ())
            if g in f.columns and (g != "pipeline_id" or f[g].nunique() > 1)
        ]
        chosen = self.display.get(name)
        wanted = [*groups, *(c for c in chosen if c in f.columns)] if chosen else list(f.columns)
        out = {}
        for col in wanted:
            base = col.removesuffix("_rate")
            lo, hi = f"{base}_lower", f"{base}_upper"
            pct = col.endswith("_rate") or col in self.percent
            if lo in f.columns and hi in f.columns:
                cells = [
                    with_interval(v, a, b, pct)
                    for v, a, b in zip(f[col], f[lo], f[hi], strict=True)
                ]
            else:
                cells = [cell_text(v, pct) for v in f[col]]
            out[col] = cells
        return pd.DataFrame(out, index=f.index)

    def rich_tables(self, names: Sequence[str] | None = None) -> list[RenderableType]:
        """One Rich table per frame (first DISPLAY_ROWS rows, display columns): the
        named frames, else the terminal ones (default: all)."""
        if names is None:
            names = [n for n in self.frames if not self.terminal or n in self.terminal]
        tables: list[RenderableType] = []
        for name in names:
            f = self.frames[name]
            more = len(f) - DISPLAY_ROWS
            cells = self.display_frame(name)
            same = [c for c in self.shared if c in cells and len(cells) > 1]
            same = [c for c in same if cells[c].nunique() == 1]
            notes = [f"… {more:,} more rows"] if more > 0 else []
            if same:
                notes.append("every row: " + "; ".join(f"{c} {cells[c].iloc[0]}" for c in same))
            tables.append(
                TextTable(
                    cells.drop(columns=same),
                    title=f"{self.title}: {name}",
                    caption="; ".join(notes) or None,
                    numeric=numeric_columns(f),
                )
            )
        return tables

    def renderable(self, names: Sequence[str] | None = None) -> RenderableType:
        """The headline metadata and the tables of `rich_tables(names)`."""
        meta = self._meta_line()
        parts: list[RenderableType] = [Text(meta, style="dim")] if meta else []
        if self.meta.get("empty"):
            parts.append(Text(self.empty_line(), style="yellow"))
        return Group(*parts, *self.rich_tables(names))

    def empty_line(self) -> str:
        """Why the tables are empty (`meta["empty"]`, set when the log holds no deals)."""
        return f"Nothing to count: {self.meta.get('empty', '')}."

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.renderable()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}: {len(f):,} rows" for n, f in self.frames.items())
        return f"<{type(self).__name__} {sizes}>"
