"""Opening a store from a URL: schema, numbered migrations, transactions."""

from funnelwise.store.schema import PRIMARY_KEYS, SCHEMA_VERSION, TABLES, arrow_schema
from funnelwise.store.store import Store, conform

__all__ = ["PRIMARY_KEYS", "SCHEMA_VERSION", "TABLES", "Store", "arrow_schema", "conform"]
