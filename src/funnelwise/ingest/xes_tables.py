"""The two Arrow tables an XES log is read into, whichever parser reads it.

Events: one row per event with its line, case number, index in its trace and
the attributes the canonical tables use, as text. Case attributes: one row per
trace attribute (key and value), plus an empty one per trace so that a trace
without attributes still counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

NAME, TIME, LIFECYCLE, RESOURCE = (
    "concept:name",
    "time:timestamp",
    "lifecycle:transition",
    "org:resource",
)
# Event attributes read into columns; others are not part of the canonical tables.
EVENT_KEYS = {
    "activity": NAME,
    "timestamp": TIME,
    "lifecycle": LIFECYCLE,
    "resource": RESOURCE,
    "kind": "funnelwise:kind",  # written by `funnelwise export xes`
}
# Trace attributes that `funnelwise export xes` writes start with CASE_PREFIX, and none
# becomes a deal attribute: the reader takes CASE_KEYS back into the deal's columns (a
# pipeline and a currency of its own); the others (the outcome and owner at the end of
# the log) follow from the events, and as attributes would tell every earlier date
# how the deal ends.
CASE_PREFIX = "funnelwise:"
CASE_KEYS = {
    "pipeline": f"{CASE_PREFIX}pipeline",
    "currency": f"{CASE_PREFIX}currency",
}
EVENT_SCHEMA = pa.schema(
    [("_row", pa.int64()), ("case", pa.int64()), ("index", pa.int32())]
    + [(c, pa.string()) for c in EVENT_KEYS]
)
CASE_SCHEMA = pa.schema(
    [("case", pa.int64()), ("_row", pa.int64()), ("key", pa.string()), ("value", pa.string())]
)


def event_batch(
    lines: np.ndarray,
    case: np.ndarray,
    index: np.ndarray,
    owner: np.ndarray,
    keys: pa.Array,
    values: pa.Array,
) -> pa.RecordBatch:
    """Events as EVENT_SCHEMA rows: `lines`, `case` and `index` per event; `keys` and
    `values` (strings) are their attributes, `owner` the event (0-based here) of each."""
    n = len(lines)
    # Keys go to a dictionary once; picking each known key is index work in C.
    coded = keys.dictionary_encode()
    code = coded.indices.to_numpy(zero_copy_only=False)
    names = coded.dictionary.to_pylist()
    cols: dict[str, Any] = {
        "_row": np.asarray(lines, dtype=np.int64),
        "case": np.asarray(case, dtype=np.int64),
        "index": np.asarray(index, dtype=np.int32),
    }
    for col, key in EVENT_KEYS.items():
        if key not in names:
            cols[col] = pa.nulls(n, pa.string())
            continue
        hit = np.flatnonzero(code == names.index(key))
        where = np.full(n, -1, dtype=np.int64)
        where[owner[hit]] = np.arange(len(hit))  # a repeated key: the last one counts
        cols[col] = values.take(pa.array(hit)).take(pa.array(where, mask=where < 0))
    return pa.RecordBatch.from_pydict(cols, schema=EVENT_SCHEMA)
