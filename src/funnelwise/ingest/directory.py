"""Loading accounts and users, the tables beside the deals.

A reader stages them shaped like the canonical tables, one row per key. They
describe the present rather than history, so the newest import knows them best:
a row new by key is loaded, a changed one replaced (counted as updated), an
identical one skipped as a duplicate. Runs inside the import's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping

from funnelwise.ingest.load import TableCount
from funnelwise.ingest.staging import Staging, quote
from funnelwise.store import Store
from funnelwise.store.schema import PRIMARY_KEYS, TABLES


def _rows(store: Store, sql: str) -> int:
    """Rows counted by a query, or changed by a DELETE or INSERT."""
    row = store.raw.execute(sql).fetchone()
    return int(row[0]) if row else 0


def load_directory(st: Staging, store: Store, tables: Mapping[str, str]) -> dict[str, TableCount]:
    """Load scratch tables {canonical table: scratch table} into accounts and users;
    counts per table."""
    counts: dict[str, TableCount] = {}
    for table, source in tables.items():
        (key,) = PRIMARY_KEYS[table]
        cols = [quote(c.name) for c in TABLES[table]]
        src = st.q(source)
        same = " AND ".join(f"t.{c} IS NOT DISTINCT FROM n.{c}" for c in cols)
        total = _rows(store, f"SELECT count(*) FROM {src}")
        updated = _rows(
            store,
            f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM {src} n "
            f"WHERE n.{quote(key)} = t.{quote(key)} AND NOT ({same}))",
        )
        new = _rows(
            store,
            f"INSERT INTO {table} ({', '.join(cols)}) "
            f"SELECT {', '.join(f'n.{c}' for c in cols)} FROM {src} n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same})",
        )
        counts[table] = TableCount(loaded=new - updated, updated=updated, duplicates=total - new)
    return counts
