"""The real data sets in ../shared/data import with the example mappings and give
the published counts. Skipped when the folder is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared_data
from funnelwise.ingest import import_table
from ingest_util import new_project, rows

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.shared_data


def test_crm_sales_opportunities(tmp_path: Path) -> None:
    data = shared_data("crm-sales-opportunities", "sales_pipeline.csv")
    store, process = new_project(tmp_path / "crm")
    r = import_table(store, process, data, EXAMPLES / "crm-sales-opportunities" / "mapping.yaml")
    assert rows(
        store, "SELECT coalesce(outcome, 'open'), count(*) FROM deals GROUP BY 1 ORDER BY 1"
    ) == [("lost", 2473), ("open", 2089), ("won", 4238)]
    assert r.counts["deals"].loaded == 8800
    assert r.n_quarantined == 0
    # The 500 Prospecting deals have no date at all: dated at the export, each noted.
    assert [(g.code, g.rows) for g in r.problem_groups] == [("dated at snapshot", 500)]
    # Every won or lost deal ends in its outcome stage at its close date.
    assert rows(
        store,
        "SELECT count(*) FROM deals d WHERE outcome IS NOT NULL AND NOT EXISTS (SELECT 1 "
        "FROM stage_events e WHERE e.deal_id = d.deal_id AND e.stage_id = "
        "CASE d.outcome WHEN 'won' THEN 'won' ELSE 'lost' END AND e.entered_at = d.closed_at)",
    ) == [(0,)]
    assert rows(store, "SELECT count(DISTINCT region) FROM deals") == [(3,)]
    store.close()


def test_olist_marketing_funnel(tmp_path: Path) -> None:
    data = shared_data("olist-marketing-funnel", "marketing_qualified_leads.csv")
    store, process = new_project(tmp_path / "olist")
    r = import_table(store, process, data, EXAMPLES / "olist-marketing-funnel" / "mapping.yaml")
    assert rows(store, "SELECT count(*), count(converted_at) FROM leads") == [(8000, 842)]
    assert r.n_quarantined == 0
    # One seller was won two days before its first contact date: kept, with a note.
    assert [(g.code, g.rows) for g in r.problem_groups] == [("converted before created", 1)]
    # Spreadsheet-mangled values survive as text.
    assert rows(
        store,
        "SELECT count(*) FROM leads WHERE attributes->>'average_stock' IN ('01-May', 'May-20')",
    ) == [(32,)]
    store.close()
