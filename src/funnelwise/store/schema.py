"""The canonical tables, created by numbered migrations.

Types are kept to what DuckDB and PostgreSQL both accept so one set of
migrations serves both. JSON documents (attributes, counts) are stored as
text. All timestamps are naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """A column of a canonical table: name, SQL type, Arrow type, nullability."""

    name: str
    sql: str
    arrow: pa.DataType
    nullable: bool = True


def _c(name: str, sql: str, nullable: bool = True) -> Column:
    arrow = {
        "VARCHAR": pa.string(),
        "DOUBLE": pa.float64(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "TIMESTAMP": pa.timestamp("us"),
        "DATE": pa.date32(),
        "BOOLEAN": pa.bool_(),
    }[sql]
    return Column(name, sql, arrow, nullable)


TABLES: dict[str, tuple[Column, ...]] = {
    "meta": (_c("key", "VARCHAR", False), _c("value", "VARCHAR")),
    "pipelines": (
        _c("pipeline_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("position", "INTEGER", False),
    ),
    "stages": (
        _c("pipeline_id", "VARCHAR", False),
        _c("stage_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("position", "INTEGER", False),
        _c("kind", "VARCHAR", False),  # open | won | lost | no_decision
        _c("target_days", "DOUBLE"),
        _c("probability", "DOUBLE"),
    ),
    "deals": (
        _c("deal_id", "VARCHAR", False),
        _c("pipeline_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("account_id", "VARCHAR"),
        _c("owner_id", "VARCHAR"),
        _c("source", "VARCHAR"),
        _c("campaign_id", "VARCHAR"),
        _c("product", "VARCHAR"),
        _c("region", "VARCHAR"),
        _c("amount", "DOUBLE"),
        _c("currency", "VARCHAR"),
        _c("amount_base", "DOUBLE"),  # in the process currency
        _c("created_at", "TIMESTAMP", False),
        _c("expected_close_date", "DATE"),
        _c("closed_at", "TIMESTAMP"),
        _c("outcome", "VARCHAR"),  # won | lost | no_decision | NULL while open
        _c("loss_reason", "VARCHAR"),
        _c("attributes", "VARCHAR"),  # JSON object as text
        _c("version", "INTEGER", False),
        _c("origin", "VARCHAR"),
    ),
    "stage_events": (
        _c("deal_id", "VARCHAR", False),
        _c("stage_id", "VARCHAR", False),
        _c("entered_at", "TIMESTAMP", False),
        _c("seq", "BIGINT", False),  # source order among the deal's events
        _c("actor_id", "VARCHAR"),
        _c("origin", "VARCHAR"),
    ),
    "deal_changes": (
        _c("deal_id", "VARCHAR", False),
        _c("field", "VARCHAR", False),  # amount | expected_close_date | owner_id | probability
        _c("old_value", "VARCHAR"),
        _c("new_value", "VARCHAR"),
        _c("changed_at", "TIMESTAMP", False),
        _c("actor_id", "VARCHAR"),
        _c("origin", "VARCHAR"),
    ),
    "checklist": (
        _c("deal_id", "VARCHAR", False),
        _c("stage_id", "VARCHAR", False),
        _c("criterion", "VARCHAR", False),
        _c("done_at", "TIMESTAMP", False),
        _c("actor_id", "VARCHAR"),
    ),
    "activities": (
        _c("activity_id", "VARCHAR", False),
        _c("deal_id", "VARCHAR"),
        _c("lead_id", "VARCHAR"),
        _c("kind", "VARCHAR", False),  # call | email | meeting | task | ...
        _c("at", "TIMESTAMP", False),
        _c("owner_id", "VARCHAR"),
        _c("duration_min", "DOUBLE"),  # minutes
        _c("direction", "VARCHAR"),  # inbound | outbound | waiting_on_customer | NULL
        _c("origin", "VARCHAR"),
    ),
    "leads": (
        _c("lead_id", "VARCHAR", False),
        _c("created_at", "TIMESTAMP", False),
        _c("source", "VARCHAR"),
        _c("campaign_id", "VARCHAR"),
        _c("owner_id", "VARCHAR"),
        _c("attributes", "VARCHAR"),
        _c("converted_deal_id", "VARCHAR"),
        _c("converted_at", "TIMESTAMP"),
        _c("disqualified_at", "TIMESTAMP"),
        _c("origin", "VARCHAR"),
    ),
    "campaigns": (
        _c("campaign_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("source", "VARCHAR"),
        _c("cost", "DOUBLE"),  # in the process currency
        _c("started_at", "TIMESTAMP"),
        _c("ended_at", "TIMESTAMP"),
    ),
    "accounts": (
        _c("account_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("industry", "VARCHAR"),
        _c("region", "VARCHAR"),
        _c("employees", "BIGINT"),
        _c("revenue", "DOUBLE"),
        _c("attributes", "VARCHAR"),
    ),
    "users": (
        _c("user_id", "VARCHAR", False),
        _c("name", "VARCHAR"),
        _c("role", "VARCHAR"),
        _c("team", "VARCHAR"),
        _c("manager_id", "VARCHAR"),
    ),
    "fx_rates": (
        _c("currency", "VARCHAR", False),
        _c("date", "DATE", False),
        _c("rate", "DOUBLE", False),  # process currency per one unit of `currency`
    ),
    "imports": (
        _c("import_id", "VARCHAR", False),
        _c("source", "VARCHAR", False),
        _c("file_name", "VARCHAR"),
        _c("file_hash", "VARCHAR"),
        _c("started_at", "TIMESTAMP", False),
        _c("finished_at", "TIMESTAMP"),
        _c("counts", "VARCHAR"),  # JSON: table -> {loaded, duplicates, quarantined}
        _c("quarantined", "BIGINT"),
        _c("status", "VARCHAR"),
    ),
    # Fitted scoring models: the artifact is the model as JSON text.
    "models": (
        _c("model_id", "VARCHAR", False),
        _c("target", "VARCHAR", False),  # won | converted
        _c("kind", "VARCHAR", False),
        _c("created_at", "TIMESTAMP", False),
        _c("trained_as_of", "TIMESTAMP", False),
        _c("params", "VARCHAR"),  # JSON
        _c("metrics", "VARCHAR"),  # JSON
        _c("artifact", "VARCHAR", False),
    ),
    # One row per scored open deal (or lead) per model and as-of instant.
    "scores": (
        _c("model_id", "VARCHAR", False),
        _c("target", "VARCHAR", False),
        _c("as_of", "TIMESTAMP", False),
        _c("deal_id", "VARCHAR"),
        _c("lead_id", "VARCHAR"),
        _c("probability", "DOUBLE", False),
        _c("reasons", "VARCHAR"),  # JSON list of phrases
        _c("scored_at", "TIMESTAMP", False),
    ),
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "meta": ("key",),
    "pipelines": ("pipeline_id",),
    "stages": ("pipeline_id", "stage_id"),
    "deals": ("deal_id",),
    "activities": ("activity_id",),
    "leads": ("lead_id",),
    "campaigns": ("campaign_id",),
    "accounts": ("account_id",),
    "users": ("user_id",),
    "fx_rates": ("currency", "date"),
    "imports": ("import_id",),
    "models": ("model_id",),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a canonical table, for building loads."""
    return pa.schema([pa.field(c.name, c.arrow, c.nullable) for c in TABLES[table]])


def _create(table: str) -> str:
    cols = [f'"{c.name}" {c.sql}' + ("" if c.nullable else " NOT NULL") for c in TABLES[table]]
    pk = PRIMARY_KEYS.get(table)
    if pk:
        cols.append(f"PRIMARY KEY ({', '.join(pk)})")
    return f"CREATE TABLE {table} ({', '.join(cols)})"


# The tables of migration 1, frozen: tables added later get their own migration.
_V1_TABLES = (
    "meta",
    "pipelines",
    "stages",
    "deals",
    "stage_events",
    "deal_changes",
    "checklist",
    "activities",
    "leads",
    "campaigns",
    "accounts",
    "users",
    "fx_rates",
    "imports",
)

# Numbered migrations: append, never edit a released one.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "canonical tables",
        tuple(_create(t) for t in _V1_TABLES),
    ),
    (
        2,
        "scoring models and scores",
        (_create("models"), _create("scores")),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]
