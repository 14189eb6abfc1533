"""Store: migrations, transactions that land whole or not at all, idempotent inserts."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from funnelwise.errors import StoreError
from funnelwise.store import SCHEMA_VERSION, TABLES, Store, conform
from funnelwise.store.store import default_memory_limit


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


def test_an_outcome_needs_its_kind_and_close_time() -> None:
    # Without a close time, as_of would show the deal closed at every date; an
    # outcome spelled as a CRM stage ("Closed Won") would count as no outcome known.
    store = Store.open("duckdb://:memory:")
    rows = deal_rows("A", "B", "C").assign(
        outcome=["won", "lost", None],
        closed_at=pd.to_datetime(["2024-02-01", None, None]),
    )
    with pytest.raises(
        StoreError, match=r"1 of 3 rows have an outcome but no closed_at .*row 1.*'B'"
    ):
        store.insert("deals", rows)
    rows.loc[1, "outcome"] = "Closed Won"
    with pytest.raises(StoreError, match=r"1 of 3 rows have an outcome other than won, lost"):
        store.insert("deals", rows)
    assert store.count("deals") == 0
    rows.loc[1, ["outcome", "closed_at"]] = ["lost", pd.Timestamp("2024-03-01")]
    assert store.insert("deals", rows) == 3


def test_unknown_url_scheme_lists_supported() -> None:
    with pytest.raises(StoreError, match="duckdb://"):
        Store.open("sqlite:///x.db")


def _setting(store: Store, name: str) -> str:
    return str(store.raw.execute("SELECT current_setting(?)", [name]).fetchone()[0])


def test_engine_memory_threads_and_spill_folder_are_store_settings(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    with Store.open(f"duckdb://{path}", memory_limit="512MiB", threads=1) as store:
        # DuckDB reports the limit in its own units: 512 MiB is about 536.8 MB.
        assert _setting(store, "memory_limit") in {"512.0 MiB", "536.8 MB"}
        assert _setting(store, "threads") == "1"
        assert Path(_setting(store, "temp_directory")) == Path(f"{path}.tmp")


def test_memory_limit_comes_from_the_environment_else_a_share_of_ram(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb://{tmp_path / 'x.duckdb'}"
    monkeypatch.setenv("FUNNELWISE_DUCKDB_MEMORY", "1GiB")
    with Store.open(url) as store:
        assert _setting(store, "memory_limit") in {"1.0 GiB", "1.0 GB", "1073.7 MB"}
    monkeypatch.delenv("FUNNELWISE_DUCKDB_MEMORY")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert default_memory_limit() == f"{max(1024, int(ram / 8 / 2**20))}MiB"
    with Store.open(url) as store:
        by_default = _setting(store, "memory_limit")
    with Store.open(url, memory_limit=default_memory_limit()) as store:
        assert _setting(store, "memory_limit") == by_default


@pytest.mark.parametrize("bad", ["lots", "3", "-1GB"])
def test_bad_memory_limit_names_the_setting(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StoreError, match=r"memory_limit: .* is not a memory size"):
        Store.open(f"duckdb://{tmp_path / 'x.duckdb'}", memory_limit=bad)


def test_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'f.duckdb'}"
    with Store.open(url) as store:
        store.set_meta("owner", "sales-ops")
    with Store.open(url, create=False, read_only=True) as reader:
        assert reader.meta("owner") == "sales-ops"
        with pytest.raises(Exception, match="read-only"):
            reader.set_meta("owner", "someone else")
    # This process already holds it for writing (a notebook's log): a reader
    # shares that open database instead of failing.
    with Store.open(url) as writer, Store.open(url, create=False, read_only=True) as reader:
        writer.set_meta("owner", "revops")
        assert reader.meta("owner") == "revops"


def test_replace_checks_the_data_before_deleting_anything() -> None:
    with Store.open("duckdb://:memory:") as store:
        store.insert("deals", deal_rows("D1", "D2"))
        with pytest.raises(StoreError, match="unknown table 'deal'; tables: "):
            store.replace("deal", deal_rows("D3"))
        with pytest.raises(StoreError, match="not in table 'deals'"):
            store.replace("deals", deal_rows("D3").assign(colour="red"))
        # Nothing was deleted by the refused replacements; a good one replaces.
        assert store.raw.execute("SELECT count(*) FROM deals").fetchone()[0] == 2
        assert store.replace("deals", deal_rows("D3")) == 1
        assert store.raw.execute("SELECT deal_id FROM deals").fetchall() == [("D3",)]
