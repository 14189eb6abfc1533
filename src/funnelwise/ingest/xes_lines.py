"""The quick way through an XES log written one element per line.

Every XES writer in common use (OpenXES, ProM, PM4Py, Disco, `funnelwise export
xes`) puts each element on a line of its own. Such a file is read here without
building an XML tree: the lines become an Arrow string array over the file's
bytes (no copy), one regular expression (RE2, in C++) classifies each line as
a trace or event tag or a simple attribute, and the nesting is checked and
resolved with cumulative sums. The part of the file around the traces (the
header with extensions, globals and classifiers, and the closing tag) is
parsed by lxml, so the whole document is checked.

Anything else (an element spanning lines or sharing one, nested or list
attributes, comments, CDATA, single-quoted attributes, an encoding other than
UTF-8, a `<` inside a value) makes `read_lines` answer None and the caller
reads the file with lxml. Files are read in blocks that end after a
`</trace>` line, so memory stays bounded; two blocks are classified at a time
in threads while the next one is decompressed.
"""

from __future__ import annotations

import html
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from funnelwise.ingest.xes_tables import CASE_SCHEMA, event_batch
from funnelwise.progressing import ProgressCallback, no_progress

BLOCK = 1 << 22  # bytes of XML per block (4 MiB)
_ATTR_START = pa.array(
    [f'<{t} key="' for t in ("string", "date", "int", "float", "boolean", "id")], pa.large_string()
)
_TAG_TEXT = pa.array(["", "<trace>", "</trace>", "<event>", "</event>"], pa.large_string())
_ENCODING = re.compile(rb"^\s*(?:\xef\xbb\xbf)?<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)")
# Line codes.
_OTHER, _BLANK_LINE, _TRACE, _END_TRACE, _EVENT, _END_EVENT, _ATTR = range(-1, 6)


class _NotSimple(Exception):
    """The file is not one simple element per line: read it with lxml."""


@dataclass
class _State:
    """What carries from one block to the next."""

    line: int = 0  # lines before the block
    case: int = 0  # traces before the block
    header: bytes | None = None  # the file up to the first trace, once seen
    events: list[pa.RecordBatch] = field(default_factory=list)
    cases: list[pa.RecordBatch] = field(default_factory=list)


def _blocks(fh: IO[bytes], size: int) -> Iterator[tuple[bytes, bool]]:
    """Blocks of the file, each ending just after a `</trace>` line (the last one
    with the rest of the file), with whether it is the last."""
    carry = b""
    while True:
        chunk = fh.read(size)
        if not chunk:
            yield carry, True
            return
        carry += chunk
        cut = _cut(carry)
        if cut:
            yield carry[:cut], False
            carry = carry[cut:]


def _cut(data: bytes) -> int:
    """Where the last complete `</trace>` line of `data` ends (0 if none)."""
    pos = len(data)
    while (pos := data.rfind(b"</trace>", 0, pos)) >= 0:
        newline = data.find(b"\n", pos)
        if newline >= 0:
            return newline + 1
    return 0


@dataclass(frozen=True)
class _Lines:
    """A block's lines: where each starts (plus the block's end), a code for each,
    and the keys and values of the attribute lines, in order."""

    starts: np.ndarray
    code: np.ndarray
    keys: pa.Array
    values: pa.Array


def _segments(block: bytes, offsets: np.ndarray) -> pa.LargeStringArray:
    """Strings over the block's bytes between consecutive `offsets` (no copy)."""
    segments = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(block)
    )
    try:
        segments.validate(full=True)  # UTF-8
    except pa.ArrowInvalid as exc:
        raise _NotSimple from exc
    return segments


def _classify(block: bytes) -> _Lines:
    """Code every line of the block, reading keys and values of attribute lines.

    An attribute line has exactly four double quotes: `<type key="K" value="V"/>`.
    Its bytes are cut at the quotes into five segments (start, key, middle,
    value, end) of one string array over the block, checked and picked in C."""
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if not len(ends) or ends[-1] != len(block):
        ends = np.append(ends, len(block))
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    quotes = np.flatnonzero(data == 34)
    first_quote = np.searchsorted(quotes, starts)
    n_quotes = np.searchsorted(quotes, ends) - first_quote
    attr = np.flatnonzero(n_quotes == 4)
    cuts = quotes[first_quote[attr, None] + np.arange(4)] + np.array([1, 0, 1, 0])
    pieces = np.where(n_quotes == 4, 5, 1)
    at = np.cumsum(pieces) - pieces  # first segment of each line
    offsets = np.empty(int(pieces.sum()) + 1, dtype=np.int64)
    offsets[at] = starts
    offsets[at[attr, None] + np.arange(1, 5)] = cuts
    offsets[-1] = len(block)
    segments = _segments(block, offsets)

    def piece(lines: np.ndarray, k: int) -> pa.Array:
        return segments.take(pa.array(at[lines] + k))

    code = np.full(len(starts), _OTHER, dtype=np.int8)
    bare = np.flatnonzero(n_quotes == 0)
    tags = pc.index_in(pc.ascii_trim_whitespace(piece(bare, 0)), value_set=_TAG_TEXT)
    # The position in _TAG_TEXT is the code (blank, trace, end of trace, ...).
    code[bare] = pc.fill_null(tags, _OTHER).to_numpy(zero_copy_only=False)
    simple = (
        _mask(pc.is_in(pc.ascii_ltrim_whitespace(piece(attr, 0)), value_set=_ATTR_START))
        & _mask(pc.equal(piece(attr, 2), '" value="'))
        & _mask(pc.equal(pc.ascii_rtrim_whitespace(piece(attr, 4)), '"/>'))
    )
    code[attr[simple]] = _ATTR
    keep = np.flatnonzero(simple)
    marked = _marked(block, data, starts, attr, cuts)[keep]
    return _Lines(
        np.append(starts, len(block)),
        code,
        _unescaped(piece(attr[keep], 1), marked),
        _unescaped(piece(attr[keep], 3), marked),
    )


def _marked(
    block: bytes, data: np.ndarray, starts: np.ndarray, attr: np.ndarray, cuts: np.ndarray
) -> np.ndarray:
    """Which attribute lines have a character reference, a tab or a carriage
    return inside their key or value (found by byte position, not by search)."""
    marked = np.zeros(len(attr), dtype=bool)
    for byte in b"&\t\r":
        if bytes([byte]) not in block or not len(attr):
            continue
        pos = np.flatnonzero(data == byte)
        line = np.searchsorted(starts, pos, side="right") - 1
        k = np.minimum(np.searchsorted(attr, line), len(attr) - 1)
        ours = attr[k] == line
        pos, k = pos[ours], k[ours]
        c = cuts[k]
        inside = ((pos >= c[:, 0]) & (pos < c[:, 1])) | ((pos >= c[:, 2]) & (pos < c[:, 3]))
        marked[k[inside]] = True
    return marked


def _mask(flags: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null read as false."""
    return np.asarray(pc.fill_null(flags, False).to_numpy(zero_copy_only=False), dtype=bool)


def _unescaped(texts: pa.Array, marked: np.ndarray) -> pa.Array:
    """Keys or values as XML reads them; only the `marked` ones can differ: a literal
    tab or carriage return is a space, character references are replaced."""
    if not marked.any():
        return texts.cast(pa.string())
    out = texts.to_pylist()
    for i in np.flatnonzero(marked):
        out[i] = html.unescape(out[i].replace("\t", " ").replace("\r", " "))
    return pa.array(out, pa.string())


def _classified(fh: IO[bytes], size: int) -> Iterator[tuple[bytes, bool, _Lines]]:
    """`_blocks` with each block's lines classified, in order.

    Classifying is array work that releases the interpreter lock, so two blocks
    are classified in threads while the next is decompressed and the previous one
    collected; at most four blocks are held at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque[tuple[bytes, bool, Future[_Lines]]] = deque()
        for block, last in _blocks(fh, size):
            pending.append((block, last, pool.submit(_classify, block)))
            if len(pending) > 2:
                block, last, lines = pending.popleft()
                yield block, last, lines.result()
        while pending:
            block, last, lines = pending.popleft()
            yield block, last, lines.result()


def _read_block(block: bytes, last: bool, lines: _Lines, state: _State) -> None:
    code = lines.code
    first = 0
    if state.header is None:
        traces = np.flatnonzero(code == _TRACE)
        if not len(traces):
            raise _NotSimple  # no trace in the first block: an unusual file
        first = int(traces[0])
        state.header = block[: lines.starts[first]]
    end = len(code)
    if last:
        closes = np.flatnonzero(code[first:] == _END_TRACE)
        end = first + int(closes[-1]) + 1 if len(closes) else first
        _check_frame(state.header + block[lines.starts[end] :])
    region = code[first:end]
    if (region == _OTHER).any():
        raise _NotSimple
    # One `<` per element line: none hides in a key or value (that is not XML).
    if block.count(b"<", lines.starts[first], lines.starts[end]) != (region > _BLANK_LINE).sum():
        raise _NotSimple
    if len(region):
        _check_nesting(region)
        done = int((code[:first] == _ATTR).sum())
        n = int((region == _ATTR).sum())
        _collect(
            region,
            lines.keys.slice(done, n),
            lines.values.slice(done, n),
            state,
            state.line + first,
        )
    state.line += len(code)  # blocks end with a newline, but for the last


def _check_nesting(code: np.ndarray) -> None:
    """Traces hold events and attributes, events hold attributes, nothing more."""
    in_trace = np.cumsum((code == _TRACE).astype(np.int64) - (code == _END_TRACE))
    in_event = np.cumsum((code == _EVENT).astype(np.int64) - (code == _END_EVENT))
    before_t = in_trace - (code == _TRACE) + (code == _END_TRACE)
    before_e = in_event - (code == _EVENT) + (code == _END_EVENT)
    wrong = (
        ((code == _TRACE) & (before_t != 0))
        | ((code == _END_TRACE) & ((before_t != 1) | (before_e != 0)))
        | ((code == _EVENT) & ((before_t != 1) | (before_e != 0)))
        | ((code == _END_EVENT) & (before_e != 1))
        | ((code == _ATTR) & (before_t != 1))
    )
    if wrong.any() or in_trace[-1] != 0 or in_event[-1] != 0:
        raise _NotSimple


def _check_frame(frame: bytes) -> None:
    """The document without its traces must be well-formed XML in UTF-8."""
    declared = _ENCODING.match(frame)
    if declared and declared.group(1).decode("ascii", "replace").lower().replace("-", "") not in (
        "utf8",
        "usascii",
        "ascii",
    ):
        raise _NotSimple
    try:
        etree.fromstring(frame, etree.XMLParser(resolve_entities=False, huge_tree=True))
    except etree.XMLSyntaxError as exc:
        raise _NotSimple from exc


def _collect(code: np.ndarray, keys: pa.Array, values: pa.Array, state: _State, line0: int) -> None:
    """Arrow batches of the region's events and case attributes."""
    n_traces = int((code == _TRACE).sum())
    trace_no = np.cumsum(code == _TRACE) - 1  # within the block
    event_no = np.cumsum(code == _EVENT) - 1
    in_event = np.cumsum((code == _EVENT).astype(np.int64) - (code == _END_EVENT))
    is_event = code == _EVENT
    events = np.flatnonzero(is_event)
    line_of_trace = np.flatnonzero(code == _TRACE) + line0 + 1
    first_event = np.searchsorted(events, np.flatnonzero(code == _TRACE))
    attrs = code == _ATTR
    of_event = np.flatnonzero(attrs & (in_event == 1))
    of_case = np.flatnonzero(attrs & (in_event == 0))
    rank = np.cumsum(attrs) - 1  # attribute lines, numbered
    case = trace_no[events]
    state.events.append(
        event_batch(
            lines=events + line0 + 1,
            case=case + state.case,
            index=np.arange(len(events)) - first_event[case],
            owner=event_no[of_event],
            keys=keys.take(pa.array(rank[of_event])),
            values=values.take(pa.array(rank[of_event])),
        )
    )
    # Each trace's attributes, then an empty row per trace (even a bare one).
    owner = np.concatenate([trace_no[of_case], np.arange(n_traces)])
    order = np.argsort(owner, kind="stable")
    blank = pa.array([""] * n_traces, pa.string())
    state.cases.append(
        pa.RecordBatch.from_pydict(
            {
                "case": (owner + state.case)[order],
                "_row": line_of_trace[owner][order],
                "key": pa.concat_arrays([keys.take(pa.array(rank[of_case])), blank]).take(
                    pa.array(order)
                ),
                "value": pa.concat_arrays([values.take(pa.array(rank[of_case])), blank]).take(
                    pa.array(order)
                ),
            },
            schema=CASE_SCHEMA,
        )
    )
    state.case += n_traces


def read_lines(
    raw: IO[bytes],
    fh: IO[bytes],
    size: int,
    progress: ProgressCallback = no_progress,
    *,
    block_bytes: int = BLOCK,
) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]] | None:
    """Event and case-attribute batches of the XES document in `fh` (`raw` is the
    file under it and `size` its bytes, for progress), or None when it is not one
    simple element per line. Blocks of at least `block_bytes` are read at a time."""
    state = _State()
    try:
        for block, last, lines in _classified(fh, block_bytes):
            _read_block(block, last, lines, state)
            progress("reading", min(raw.tell(), size), size)
    except _NotSimple:
        return None
    return state.events, state.cases
