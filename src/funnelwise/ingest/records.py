"""Checks and shaping of the tables around deals: field changes, activities, leads.

Each function takes a staged scratch table (typed, with `_src` and `_row`),
records its problems and returns a scratch table or view with the canonical
columns, ready to load.
"""

from __future__ import annotations

import pandas as pd

from funnelwise.ingest.assemble import Staged, normalized
from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import (
    Problems,
    check_duplicate_keys,
    check_references,
    check_time_range,
)

CHANGE_COLUMNS = {
    "deal_id": "VARCHAR",
    "field": "VARCHAR",
    "old_value": "VARCHAR",
    "new_value": "VARCHAR",
    "changed_at": "TIMESTAMP",
    "actor_id": "VARCHAR",
}
ACTIVITY_COLUMNS = {
    "activity_id": "VARCHAR",
    "deal_id": "VARCHAR",
    "lead_id": "VARCHAR",
    "kind": "VARCHAR",
    "at": "TIMESTAMP",
    "owner_id": "VARCHAR",
    "duration_min": "DOUBLE",
    "direction": "VARCHAR",
}
LEAD_COLUMNS = {
    "lead_id": "VARCHAR",
    "created_at": "TIMESTAMP",
    "source": "VARCHAR",
    "campaign_id": "VARCHAR",
    "owner_id": "VARCHAR",
    "attributes": "VARCHAR",
    "converted_deal_id": "VARCHAR",
    "converted_at": "TIMESTAMP",
    "disqualified_at": "TIMESTAMP",
}


def known_deals(st: Staging, tables: list[str], deals: str | None) -> str:
    """SQL for the deal ids the import may refer to: its own kept deals and the stored
    deals among those `tables` refer to."""
    own = f"SELECT deal_id FROM {quote(deals)}" if deals else "SELECT NULL::VARCHAR AS deal_id"
    refs = " UNION ".join(
        f"SELECT deal_id FROM {quote(t)} WHERE deal_id IS NOT NULL" for t in tables
    )
    name = st.create(
        st.name("stored_ids"),
        f"SELECT d.deal_id FROM {st.store_table('deals')} d WHERE d.deal_id IN ({refs})",
    )
    return f"{own} UNION ALL SELECT deal_id FROM {quote(name)}"


def changes_table(
    st: Staging, staged: Staged, problems: Problems, known: str, now: pd.Timestamp
) -> tuple[str, int]:
    """Checked field changes without no-op rows or repeats, each chain at one instant
    merged into one change; returns (table, repeats)."""
    assert staged.changes is not None
    table = st.create(st.name("changes"), normalized(st, staged.changes, CHANGE_COLUMNS))
    lab = lambda c: staged.label("changes", c)  # noqa: E731
    check_time_range(problems, table, {"changed_at": lab("changed_at")}, now)
    check_references(problems, table, "deal_id", lab("deal_id"), known)
    useful = st.create(
        st.name("changes_useful"),
        f"SELECT * FROM ({problems.clean(table)}) WHERE old_value IS DISTINCT FROM new_value",
    )
    distinct = st.create(
        st.name("changes_distinct"),
        f"SELECT DISTINCT ON (deal_id, field, changed_at, new_value) * FROM {quote(useful)} "
        "ORDER BY deal_id, field, changed_at, new_value, _src, _row",
    )
    repeats = st.count(useful) - st.count(distinct)
    return st.create(st.name("changes_out"), _chains_merged(distinct)), repeats


def _chains_merged(table: str) -> str:
    """SQL for `table` with each chain of changes of one field at one instant (A to B,
    B to C, as a field history gives a workflow's updates) merged into one (A to C).

    The store keeps no order among rows at one instant, so a chain left as it is
    would be read in any order; the value in between held for no time at all. Rows
    at one instant that make no single chain are kept as they are."""
    t = quote(table)
    link = (
        "b.deal_id = a.deal_id AND b.field = a.field AND b.changed_at = a.changed_at "
        "AND (b._src, b._row) IS DISTINCT FROM (a._src, a._row)"
    )
    key = "USING (deal_id, field, changed_at)"
    return f"""
        WITH tied AS (SELECT * FROM {t} SEMI JOIN (
                 SELECT deal_id, field, changed_at FROM {t} GROUP BY ALL HAVING count(*) > 1
             ) k {key}),
             f AS (SELECT a.*,
                 EXISTS (SELECT 1 FROM tied b WHERE {link}
                         AND b.new_value IS NOT DISTINCT FROM a.old_value) AS _pred,
                 EXISTS (SELECT 1 FROM tied b WHERE {link}
                         AND b.old_value IS NOT DISTINCT FROM a.new_value) AS _succ
                 FROM tied a),
             chains AS (SELECT deal_id, field, changed_at FROM f GROUP BY ALL
                 HAVING count(*) FILTER (NOT _pred) = 1 AND count(*) FILTER (NOT _succ) = 1),
             merged AS (SELECT tail.* EXCLUDE (_pred, _succ) REPLACE (head.old_value AS old_value)
                 FROM f tail JOIN f head {key} SEMI JOIN chains {key}
                 WHERE NOT tail._succ AND NOT head._pred)
        SELECT * FROM {t} ANTI JOIN chains {key}
        UNION ALL BY NAME
        SELECT * FROM merged WHERE old_value IS DISTINCT FROM new_value"""


def activities_table(
    st: Staging,
    staged: Staged,
    problems: Problems,
    known: str,
    now: pd.Timestamp,
    from_events: str | None,
) -> str:
    """Checked activities (staged ones and, for XES, events that are not stage entries)."""
    parts = []
    if staged.activities is not None:
        table = st.create(
            st.name("activities"), normalized(st, staged.activities, ACTIVITY_COLUMNS)
        )
        lab = lambda c: staged.label("activities", c)  # noqa: E731
        check_time_range(problems, table, {"at": lab("at")}, now)
        check_references(problems, table, "deal_id", lab("deal_id"), known)
        compare = [c for c in ACTIVITY_COLUMNS if c != "activity_id"]
        check_duplicate_keys(st, problems, table, "activity_id", lab("activity_id"), compare)
        parts.append(problems.clean(table))
    if from_events is not None:
        cols = ", ".join(
            quote(c) if c in st.columns(from_events) else f"NULL AS {quote(c)}"
            for c in ("_src", "_row", *ACTIVITY_COLUMNS)
        )
        parts.append(f"SELECT {cols} FROM {quote(from_events)}")
    return st.view(st.name("activities_out"), " UNION ALL ".join(parts))


def leads_table(st: Staging, staged: Staged, problems: Problems, now: pd.Timestamp) -> str:
    """Checked leads. A conversion dated before the lead is kept, with a note."""
    assert staged.leads is not None
    table = st.create(st.name("leads"), normalized(st, staged.leads, LEAD_COLUMNS))
    lab = lambda c: staged.label("leads", c)  # noqa: E731
    compare = [c for c in LEAD_COLUMNS if c != "lead_id"]
    check_duplicate_keys(st, problems, table, "lead_id", lab("lead_id"), compare)
    check_time_range(
        problems,
        table,
        {c: lab(c) for c in ("created_at", "converted_at", "disqualified_at")},
        now,
    )
    problems.add(
        f"SELECT _src, _row, {literal(lab('converted_at'))}, converted_at, "
        "'is before the lead was created (' || CAST(created_at AS VARCHAR) || '); kept' "
        f"FROM {quote(table)} WHERE converted_at < created_at",
        quarantine=False,
        code="converted before created",
    )
    return st.view(
        st.name("leads_out"),
        f"SELECT *, greatest(created_at, converted_at, disqualified_at) AS _recency "
        f"FROM ({problems.clean(table)})",
    )
