"""The line-by-line XES reader agrees with the lxml one on every file it takes,
and hands every file it cannot read exactly back to lxml."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_data
from funnelwise.ingest.xes import read_traces, read_tree
from funnelwise.ingest.xes_lines import read_lines
from ingest_util import FIXTURES

SMALL = FIXTURES / "xes" / "small.xes"
# small.xes without its list attribute: one simple element per line throughout.
SIMPLE = "".join(
    line
    for line in SMALL.read_text(encoding="utf-8").splitlines(keepends=True)
    if not any(t in line for t in ("<list", "</list", "<values", "</values", 'key="to"'))
)
LXML_MAX_LINE = 65535  # libxml2 reports no line number beyond this


def quick(data: bytes, block_bytes: int = 1 << 20) -> tuple[pa.Table, pa.Table] | None:
    fh = io.BytesIO(data)
    read = read_lines(fh, fh, len(data), block_bytes=block_bytes)
    if read is None:
        return None
    events, cases = read
    return pa.Table.from_batches(events), pa.Table.from_batches(cases)


def tree(data: bytes, tmp_path: Path) -> tuple[pa.Table, pa.Table]:
    path = tmp_path / "log.xes"
    path.write_bytes(data)
    return read_tree(path)


def same(a: tuple[pa.Table, pa.Table], b: tuple[pa.Table, pa.Table]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.to_pylist() == y.to_pylist()


def test_simple_file_reads_as_with_lxml(tmp_path: Path) -> None:
    data = SIMPLE.encode()
    read = quick(data)
    assert read is not None
    same(read, tree(data, tmp_path))
    events, cases = read
    assert events.num_rows == 12  # 7 + 3 + 2
    # Line numbers of the events are those of their <event> tags.
    first = SIMPLE.splitlines().index("    <event>") + 1
    assert events["_row"][0].as_py() == first
    assert cases.filter(pa.compute.equal(cases["key"], "Segment"))["value"].to_pylist() == ["Pymes"]


def test_blocks_cut_between_traces(tmp_path: Path) -> None:
    data = SIMPLE.encode()
    for size in (1, 200, 700, len(data)):
        read = quick(data, block_bytes=size)
        assert read is not None, size
        same(read, tree(data, tmp_path))


def test_character_references_are_read(tmp_path: Path) -> None:
    data = SIMPLE.replace('value="Pymes"', 'value="P&amp;Y\t&#233;&lt;"').encode()
    read = quick(data)
    assert read is not None
    same(read, tree(data, tmp_path))
    assert "P&Y é<" in read[1]["value"].to_pylist()


@pytest.mark.parametrize(
    "layout",
    [
        lambda text: text.replace("\n", "\r\n"),  # Windows line ends
        lambda text: text.replace("  ", "\t"),  # tabs to indent
        lambda text: text.replace('"Pymes"', '"Py\tmes"'),  # a tab in a value
    ],
)
def test_layouts(layout: Callable[[str], str], tmp_path: Path) -> None:
    data = layout(SIMPLE).encode()
    read = quick(data)
    assert read is not None
    same(read, tree(data, tmp_path))


@pytest.mark.parametrize(
    "change",
    [
        ("    <event>\n", "    <event>", 1),  # two elements on a line
        ('<string key="Segment" value="Pymes"/>', "<string key='Segment' value='Pymes'/>", 1),
        ('value="Pymes"', 'value="Py<mes"', 1),  # not XML
        ("  <trace>\n", "  <!-- a comment -->\n  <trace>\n", 2),
        ("  </trace>\n", "  </trace>\n  <trace/>\n", 1),
        ('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1),
        ("</log>\n", "", 1),  # cut short
        ("    </event>\n", "", 1),  # an event never closed
    ],
)
def test_anything_else_goes_to_lxml(change: tuple[str, str, int]) -> None:
    old, new, count = change
    assert SIMPLE.count(old) >= 1
    assert quick(SIMPLE.replace(old, new, count).encode()) is None


def test_list_attributes_go_to_lxml() -> None:
    assert quick(SMALL.read_bytes()) is None


def test_gzip_file_takes_the_quick_way(tmp_path: Path) -> None:
    packed = tmp_path / "log.xes.gz"
    packed.write_bytes(gzip.compress(SIMPLE.encode()))
    same(read_traces(packed), tree(SIMPLE.encode(), tmp_path))


def attr(key: str, value: str) -> str:
    """A string attribute as XES writers put it: double quotes, escaped."""

    def quoted(text: str) -> str:
        marks = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
        return '"' + escape(text, marks) + '"'

    return f"<string key={quoted(key)} value={quoted(value)}/>"


WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    traces=st.lists(
        st.tuples(
            st.lists(st.tuples(WORDS, WORDS), max_size=3),
            st.lists(
                st.lists(
                    st.tuples(
                        st.sampled_from(["concept:name", "org:resource", "time:timestamp", "x"]),
                        WORDS,
                    ),
                    max_size=4,
                ),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    block=st.integers(1, 400),
)
def test_random_logs_agree(traces: list, block: int) -> None:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<log xes.version="1.0">']
    for case_attrs, events in traces:
        lines.append("  <trace>")
        lines += ["    " + attr(k, v) for k, v in case_attrs]
        for attrs in events:
            lines.append("    <event>")
            lines += ["      " + attr(k, v) for k, v in attrs]
            lines.append("    </event>")
        lines.append("  </trace>")
    lines.append("</log>")
    data = ("\n".join(lines) + "\n").encode()
    read = quick(data, block_bytes=block)
    assert read is not None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        same(read, tree(data, Path(tmp)))


@pytest.mark.shared_data
def test_bpi_challenge_2012_reads_as_with_lxml() -> None:
    log = shared_data("bpic2012", "BPI_Challenge_2012.xes.gz")
    data = gzip.decompress(log.read_bytes())
    # 1 MiB blocks: about 75, read out of order in threads and put back in order.
    read = quick(data, block_bytes=1 << 20)
    assert read is not None
    lxml = read_tree(log)
    for x, y in zip(read, lxml, strict=True):
        assert x.drop_columns(["_row"]).equals(y.drop_columns(["_row"]))
        # lxml's line numbers stop at 65535; below that they agree.
        rx, ry = x["_row"].to_numpy(), y["_row"].to_numpy()
        low = ry < LXML_MAX_LINE
        assert (rx[low] == ry[low]).all()
        assert (rx[~low] >= LXML_MAX_LINE).all()
