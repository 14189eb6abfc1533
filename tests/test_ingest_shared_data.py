"""The real data sets in ../shared/data import with the example mappings and give
the published counts. Skipped when the folder is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import funnelwise as fw
from conftest import shared_data
from funnelwise.ingest import import_table
from funnelwise.scoring import BoostedScorer
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


def test_crm_amounts_are_booked_at_the_close(tmp_path: Path) -> None:
    """close_value is known only at the close: before it, a deal shows its product's
    list price (products.csv, read here with pandas, apart from the importer)."""
    data = shared_data("crm-sales-opportunities", "sales_pipeline.csv")
    pipeline = pd.read_csv(data)
    prices = pd.read_csv(data.parent / "products.csv")
    key = prices["product"].str.lower().str.replace(r"[^a-z0-9]", "", regex=True)
    price = dict(zip(key, prices.sales_price, strict=True))
    pipeline["listed"] = (
        pipeline["product"].str.lower().str.replace(r"[^a-z0-9]", "", regex=True).map(price)
    )
    assert pipeline.listed.notna().all()  # 'GTXPro' included
    closed = pipeline[pipeline.deal_stage.isin(["Won", "Lost"])]
    moved = closed[closed.close_value != closed.listed]
    store, process = new_project(tmp_path / "crm")
    import_table(store, process, data, EXAMPLES / "crm-sales-opportunities" / "mapping.yaml")
    changes = store.raw.execute(
        "SELECT deal_id, CAST(old_value AS DOUBLE) AS old, CAST(new_value AS DOUBLE) AS new, "
        "changed_at FROM deal_changes WHERE field = 'amount'"
    ).df()
    assert len(changes) == len(moved)
    j = changes.merge(moved, left_on="deal_id", right_on="opportunity_id")
    assert len(j) == len(moved)
    assert (j.old == j.listed).all() and (j.new == j.close_value).all()
    assert (j.changed_at == pd.to_datetime(j.close_date, format="%m/%d/%Y")).all()
    # As of mid-2017, deals still open then carry list prices, whatever their outcome.
    t = pd.Timestamp("2017-06-30")
    then = fw.EventLog(store, process).as_of(t).deals.execute()
    later = then.merge(closed, left_on="deal_id", right_on="opportunity_id")
    later = later[pd.to_datetime(later.close_date, format="%m/%d/%Y") > t]
    assert len(later) > 0
    assert (later.amount == later.listed).all()
    assert (later.amount_base == later.listed).all()
    store.close()


def test_crm_account_columns_are_deal_attributes(tmp_path: Path) -> None:
    """Every column of accounts.csv lands in the attributes of the account's deals
    (compared with pandas, apart from the importer), and scoring reads
    year_established, revenue and employees as numbers, with reasons in numbers."""
    data = shared_data("crm-sales-opportunities", "sales_pipeline.csv")
    accounts = pd.read_csv(data.parent / "accounts.csv", dtype=str).set_index("account")
    pipeline = pd.read_csv(data, dtype=str)
    store, process = new_project(tmp_path / "crm")
    import_table(store, process, data, EXAMPLES / "crm-sales-opportunities" / "mapping.yaml")
    attrs = store.raw.execute("SELECT deal_id, attributes FROM deals").df()
    attrs = attrs.set_index("deal_id")["attributes"].map(json.loads)
    columns = list(accounts.columns)
    assert columns == [
        "sector",
        "year_established",
        "revenue",
        "employees",
        "office_location",
        "subsidiary_of",
    ]
    with_account = pipeline.dropna(subset=["account"])
    assert len(with_account) == 7375
    for deal_id, account in zip(with_account.opportunity_id, with_account.account, strict=True):
        wanted = accounts.loc[account].dropna().to_dict()
        assert {k: v for k, v in attrs[deal_id].items() if k in columns} == wanted
    assert sum("subsidiary_of" in a for a in attrs) == 1292
    store.close()
    log = fw.open(tmp_path / "crm")
    model = BoostedScorer(num_threads=1, n_estimators=50, snapshots=4, seed=0).fit(log)
    assert set(model.keys_) >= set(columns)
    assert model.numeric_keys_ == ("employees", "revenue", "year_established")
    assert model.dropped_keys_ == ()
    assert {"attr_revenue", "attr_year_established"} <= set(model.encoder_.numeric)
    reasons = model.score(log, top=5).to_frame().filter(like="reason_").stack()
    said = reasons[reasons.str.contains("revenue")]
    assert len(said) > 0
    pattern = r"^[+−] revenue ([\d,]+(\.\d+)?|unknown)( \((more|less) than (\d+%|all) of deals\))?$"
    assert said.str.match(pattern).all(), said[~said.str.match(pattern)].head()
    log.store.close()


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
