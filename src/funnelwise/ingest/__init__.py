"""Importing CRM exports and event logs into the canonical tables.

One reader per source format (table, XES, Salesforce, HubSpot, Pipedrive), all
sharing the same checks, stage mapping, quarantine and atomic, idempotent load.
"""

from funnelwise.ingest.importer import ImportOptions, run_import
from funnelwise.ingest.load import ImportResult, TableCount, list_imports
from funnelwise.ingest.table import import_table
from funnelwise.ingest.validate import RowProblem

__all__ = [
    "ImportOptions",
    "ImportResult",
    "RowProblem",
    "TableCount",
    "import_table",
    "list_imports",
    "run_import",
]
