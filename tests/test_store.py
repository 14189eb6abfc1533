"""Store: migrations, transactions that land whole or not at all, idempotent inserts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from funnelwise.errors import StoreError
from funnelwise.store import SCHEMA_VERSION, TABLES, Store, conform


def deal_rows(*ids: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal_id": list(ids),
            "pipeline_id": "p",
            "created_at": pd.Timestamp("2024-01-01"),
            "version": 1,
            "amount": 10.0,
        }
    )


def test_migrations_create_every_table_once(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'x.duckdb'}"
    with Store.open(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert set(TABLES) <= set(store.backend.list_tables())
    with Store.open(url) as store:  # reopening migrates nothing twice
        n = store.raw.execute("SELECT count(*) FROM schema_version").fetchone()[0]
        assert n == SCHEMA_VERSION


def test_create_false_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store.open(f"duckdb://{tmp_path / 'none.duckdb'}", create=False)


def test_transaction_rolls_back_everything_on_error() -> None:
    store = Store.open("duckdb://:memory:")
    store.insert("deals", deal_rows("A"))
    with pytest.raises(RuntimeError), store.transaction():
        store.insert("deals", deal_rows("B", "C"))
        store.set_meta("k", "v")
        raise RuntimeError("crash half-way")
    assert store.count("deals") == 1
    assert store.meta("k") is None
    # The store is usable after a rollback.
    store.insert("deals", deal_rows("D"))
    assert store.count("deals") == 2


def test_insert_new_is_idempotent_and_dedupes_within_the_load() -> None:
    store = Store.open("duckdb://:memory:")
    assert store.insert_new("deals", deal_rows("A", "B", "B"), key=["deal_id"]) == 2
    assert store.insert_new("deals", deal_rows("B", "C"), key=["deal_id"]) == 1
    assert store.count("deals") == 3
    events = pd.DataFrame(
        {
            "deal_id": ["A", "A"],
            "stage_id": ["s", "s"],
            "entered_at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "seq": [0, 1],
        }
    )
    key = ["deal_id", "stage_id", "entered_at"]
    assert store.insert_new("stage_events", events, key=key) == 2
    assert store.insert_new("stage_events", events, key=key) == 0


def test_primary_key_violation_leaves_store_unchanged() -> None:
    store = Store.open("duckdb://:memory:")
    store.insert("deals", deal_rows("A"))
    with pytest.raises(Exception, match=r"(?i)duplicate key|constraint"):
        store.insert("deals", deal_rows("B", "A"))
    assert store.count("deals") == 1


def test_conform_names_bad_columns() -> None:
    with pytest.raises(StoreError, match=r"columns \['colour'\] are not in table 'deals'"):
        conform("deals", deal_rows("A").assign(colour="red"))
    with pytest.raises(StoreError, match=r"deals\.created_at is required"):
        conform("deals", deal_rows("A").drop(columns=["created_at"]))
    with pytest.raises(StoreError, match=r"deals\.amount cannot be stored as double"):
        conform("deals", deal_rows("A").assign(amount="ten"))
    table = conform("deals", deal_rows("A"))
    assert table.column_names == [c.name for c in TABLES["deals"]]
    assert table.column("outcome").null_count == 1


def test_unknown_url_scheme_lists_supported() -> None:
    with pytest.raises(StoreError, match="duckdb://"):
        Store.open("sqlite:///x.db")
