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
`</trace>` line, so memory stays bounded; two blocks are read at a time in
threads while the next one is decompressed.
"""

from __future__ import annotations

import html
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Part:
    """One block read: its events and case attributes, with lines and cases
    counted from the block's start (the caller adds what came before)."""

    header: bytes | None  # the file up to the first trace (first block only)
    tail: bytes  # the file after the last trace (last block only)
    batches: tuple[pa.RecordBatch, pa.RecordBatch] | None  # events, case attributes
    lines: int
    traces: int


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


def _parts(fh: IO[bytes], size: int) -> Iterator[_Part]:
    """The blocks of `_blocks`, each read into a `_Part`, in order.

    Reading a block is array work that mostly releases the interpreter lock, so
    two blocks are read in threads while the next one is decompressed; at most
    four blocks are held at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: deque[Future[_Part]] = deque()
        for n, (block, last) in enumerate(_blocks(fh, size)):
            pending.append(pool.submit(_read_block, block, n == 0, last))
            if len(pending) > 2:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _read_block(block: bytes, first_block: bool, last: bool) -> _Part:
    lines = _classify(block)
    code = lines.code
    first = 0
    header = None
    if first_block:
        traces = np.flatnonzero(code == _TRACE)
        if not len(traces):
            raise _NotSimple  # no trace in the first block: an unusual file
        first = int(traces[0])
        header = block[: lines.starts[first]]
    end = len(code)
    if last:
        closes = np.flatnonzero(code[first:] == _END_TRACE)
        end = first + int(closes[-1]) + 1 if len(closes) else first
    region = code[first:end]
    if (region == _OTHER).any():
        raise _NotSimple
    # One `<` per element line: none hides in a key or value (that is not XML).
    if block.count(b"<", lines.starts[first], lines.starts[end]) != (region > _BLANK_LINE).sum():
        raise _NotSimple
    batches = None
    if len(region):
        _check_nesting(region)
        done = int((code[:first] == _ATTR).sum())
        n = int((region == _ATTR).sum())
        batches = _collect(region, lines.keys.slice(done, n), lines.values.slice(done, n), first)
    return _Part(
        header=header,
        tail=block[lines.starts[end] :] if last else b"",
        batches=batches,
        lines=len(code),  # blocks end with a newline, but for the last
        traces=int((region == _TRACE).sum()),
    )


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


def _collect(
    code: np.ndarray, keys: pa.Array, values: pa.Array, line0: int
) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Arrow batches of the region's events and case attributes (lines counted from
    the block's start, `line0` lines before the region; cases from 0)."""
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
    events_batch = event_batch(
        lines=events + line0 + 1,
        case=case,
        index=np.arange(len(events)) - first_event[case],
        owner=event_no[of_event],
        keys=keys.take(pa.array(rank[of_event])),
        values=values.take(pa.array(rank[of_event])),
    )
    # Each trace's attributes, then an empty row per trace (even a bare one).
    owner = np.concatenate([trace_no[of_case], np.arange(n_traces)])
    order = np.argsort(owner, kind="stable")
    blank = pa.array([""] * n_traces, pa.string())
    cases_batch = pa.RecordBatch.from_pydict(
        {
            "case": owner[order],
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
    return events_batch, cases_batch


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
    events: list[pa.RecordBatch] = []
    cases: list[pa.RecordBatch] = []
    line = case = 0  # lines and traces before the part
    header = b""
    try:
        for part in _parts(fh, block_bytes):
            header = part.header if part.header is not None else header
            if part.batches is not None:
                events.append(_shifted(part.batches[0], line, case))
                cases.append(_shifted(part.batches[1], line, case))
            line, case = line + part.lines, case + part.traces
            progress("reading", min(raw.tell(), size), size)
        _check_frame(header + part.tail)
    except _NotSimple:
        return None
    return events, cases


def _shifted(batch: pa.RecordBatch, lines: int, cases: int) -> pa.RecordBatch:
    """A part's batch with the lines and traces before it added."""
    for name, by in (("_row", lines), ("case", cases)):
        i = batch.schema.get_field_index(name)
        batch = batch.set_column(i, name, pc.add(batch.column(i), by))
    return batch
