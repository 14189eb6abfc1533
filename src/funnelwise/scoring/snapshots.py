"""One query of the log as of many instants, compiled once.

Scoring trains on snapshots: the open deals as known at many past instants,
each computed from `log.as_of(t)`. The query is the same for every `t` but its
cut-off, and building and compiling an Ibis expression costs far more than
DuckDB takes to run it. So the expression is built and compiled once, for a
sentinel instant, and the SQL is rerun with each instant's timestamp in place
of the sentinel's. The substitution is checked (the sentinel must appear) and
falls back to compiling per instant on any other backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ibis
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback, no_progress

# A sub-second part no real cut-off carries, so the sentinel's literal is unmistakable.
_SENTINEL_OFFSET = pd.Timedelta(microseconds=271_828)


def _literal_sql(backend: object, t: pd.Timestamp) -> str:
    """How the backend writes the timestamp literal `t` in SQL."""
    sql: str = backend.compile(  # type: ignore[attr-defined]
        ibis.literal(t.to_pydatetime(), type="timestamp").name("t")
    )
    _, _, tail = sql.partition("SELECT")
    return tail.rsplit(" AS ", 1)[0].strip()


def run_as_of(
    log: EventLog,
    build: Callable[[EventLog], ir.Table],
    times: Sequence[pd.Timestamp],
    *,
    progress: ProgressCallback | None = None,
    task: str = "snapshots",
) -> list[pd.DataFrame]:
    """`build(log.as_of(t)).to_pandas()` for each instant `t` (each at most `log.now`).

    `build` must give the same expression shape for every cut-off (it may not
    branch on `log.now`). Returns one frame per instant, in order.
    """
    report = progress or no_progress
    times = [pd.Timestamp(t) for t in times]
    if any(t > log.now for t in times):
        raise ValueError(f"run_as_of: instants must be at most the log's now ({log.now})")
    if not times:
        return []
    backend = log.store.backend
    sentinel = log.now.floor("D") - pd.Timedelta(days=1) + _SENTINEL_OFFSET
    expr = build(log.as_of(sentinel))
    sql: str | None = None
    # DuckDB sums integers into 128 bits; Ibis types them as int64, and so do we.
    schema = expr.schema().to_pyarrow()
    # The SQL must stand alone: an in-memory table would need registering first.
    standalone = not expr.op().find(ops.InMemoryTable)
    if getattr(backend, "name", "") == "duckdb" and len(times) > 1 and standalone:
        compiled = str(backend.compile(expr))
        marker = _literal_sql(backend, sentinel)
        if marker in compiled:
            sql = compiled
    frames = []
    for i, t in enumerate(times):
        if sql is None:
            frames.append(build(log.as_of(t)).to_pandas())
        else:
            query = sql.replace(marker, _literal_sql(backend, t))
            table: pa.Table = backend.con.sql(query).to_arrow_table()
            frames.append(table.cast(schema).to_pandas())
        report(task, i + 1, len(times))
    return frames
