"""Quarantined rows, written next to the store for fixing and importing again.

For an import with quarantined rows, the folder `quarantine/<import id>/`
beside the store gets one CSV per source file with problems: the original
columns of each quarantined row, preceded by `row` (as in the problem list)
and `reason` (every reason for that row). `problems.csv` lists every problem,
quarantining or not. The folder is written to a scratch name first and moved
into place only when the load has committed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import Problems

FOLDER = "quarantine"


def quarantine_dir(store_url: str) -> Path | None:
    """`quarantine/` beside a DuckDB store file (None for in-memory stores)."""
    if not store_url.startswith("duckdb://"):
        return None
    target = store_url[len("duckdb://") :]
    if not target or target == ":memory:":
        return None
    return Path(target).resolve().parent / FOLDER


def _csv_name(name: str, used: set[str]) -> str:
    stem = Path(name).name
    for suffix in (".gz", ".xes", ".csv", ".parquet", ".xlsx", ".txt", ".tsv", ".xlsm", ".pq"):
        stem = stem.removesuffix(suffix)
    base, n = f"{stem}.csv", 1
    while base in used:
        n += 1
        base = f"{stem}-{n}.csv"
    used.add(base)
    return base


def write_pending(st: Staging, problems: Problems, folder: Path) -> Path | None:
    """Write the quarantine CSVs into `folder` (created); None when nothing to write."""
    if problems.count() == 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    names = ", ".join(f"({i}, {literal(f.name)})" for i, f in enumerate(st.files))
    st.con.execute(
        f"""COPY (SELECT f.name AS file, p._row AS row, p.col AS column, p.value,
                         p.reason, CASE WHEN p.quarantined THEN 'quarantined' ELSE 'loaded' END
                         AS action
                  FROM _problems p JOIN (VALUES {names}) f(idx, name) ON f.idx = p._src
                  ORDER BY p._src, p._row, p.col)
            TO {literal(str(folder / "problems.csv"))} (HEADER, DELIMITER ',')"""
    )
    used: set[str] = {"problems.csv"}
    for src, count in problems.quarantined_by_src().items():
        if not count:
            continue
        f = st.files[src]
        out = folder / _csv_name(f.name, used)
        st.con.execute(
            f"""COPY (SELECT q._row AS row, q.reason, s.* EXCLUDE (_row)
                      FROM {quote(f.table)} s
                      RIGHT JOIN (SELECT _row, string_agg(col || ': ' || reason, '; ' ORDER BY col)
                                   AS reason
                            FROM _problems WHERE quarantined AND _src = {src}
                            GROUP BY _row) q ON q._row = s._row
                      ORDER BY q._row)
                TO {literal(str(out))} (HEADER, DELIMITER ',')"""
        )
    return folder


def publish(pending: Path | None, final: Path) -> Path | None:
    """Move a pending quarantine folder into place after the load committed."""
    if pending is None:
        return None
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(final)
    shutil.move(str(pending), str(final))
    return final


def discard(pending: Path | None) -> None:
    """Remove a pending quarantine folder (the load did not commit)."""
    if pending is not None:
        shutil.rmtree(pending, ignore_errors=True)
