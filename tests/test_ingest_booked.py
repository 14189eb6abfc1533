"""Snapshot amounts known only at the close (`amount_known_at: close`), on a hand-made
file (tests/fixtures/ingest/table/booked.csv) with a products file of list prices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import funnelwise as fw
from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions, import_table
from ingest_util import FIXTURES, NOW, dump, new_project, rows

T = FIXTURES / "table"
OPTS = ImportOptions(now=NOW)


def _amounts(log: fw.EventLog) -> dict[str, tuple[float | None, float | None]]:
    frame = log.deals.select("deal_id", "amount", "amount_base").execute()
    return {
        r.deal_id: (
            None if pd.isna(r.amount) else r.amount,
            None if pd.isna(r.amount_base) else r.amount_base,
        )
        for r in frame.itertuples()
    }


def test_booked_amount_is_a_change_at_the_close(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, T / "booked.csv", T / "booked.yaml", options=OPTS)
    assert r.n_problems == 0
    # Now: closed deals carry their booked amount; open ones the booked amount when
    # given (B5), else the list price of their product ('WidgetPro' = 'Widget Pro').
    assert rows(store, "SELECT deal_id, amount, amount_base FROM deals ORDER BY 1") == [
        ("B1", 950.0, 950.0),
        ("B2", 0.0, 0.0),
        ("B3", 1000.0, 1000.0),
        ("B4", 300.0, 300.0),
        ("B5", 120.0, 120.0),
    ]
    # One change per closed deal with a booked amount, from the list price (or nothing:
    # Gizmo has none) at the close.
    assert rows(
        store,
        "SELECT deal_id, field, old_value, new_value, changed_at FROM deal_changes ORDER BY 1",
    ) == [
        ("B1", "amount", "1000.0", "950.0", pd.Timestamp("2024-04-10").to_pydatetime()),
        ("B2", "amount", "200.0", "0.0", pd.Timestamp("2024-03-25").to_pydatetime()),
        ("B4", "amount", None, "300.0", pd.Timestamp("2024-04-01").to_pydatetime()),
    ]
    assert r.counts["deal_changes"].loaded == 3
    log = fw.EventLog(store, process)
    # Before any close: list prices or nothing, whatever the outcome will be.
    assert _amounts(log.as_of("2024-03-20")) == {
        "B1": (1000.0, 1000.0),
        "B2": (200.0, 200.0),
        "B3": (1000.0, 1000.0),
        "B4": (None, None),
        "B5": (120.0, 120.0),
    }
    # Between the closes: B2 (03-25) and B4 (04-01) booked, B1 (04-10) not yet.
    assert _amounts(log.as_of("2024-04-05")) == {
        "B1": (1000.0, 1000.0),
        "B2": (0.0, 0.0),
        "B3": (1000.0, 1000.0),
        "B4": (300.0, 300.0),
        "B5": (120.0, 120.0),
    }
    # A second import loads nothing new.
    before = dump(store)
    again = import_table(store, process, T / "booked.csv", T / "booked.yaml", options=OPTS)
    assert again.counts["deal_changes"].loaded == 0
    assert dump(store) == before
    store.close()


def test_without_the_option_the_amount_holds_from_creation(tmp_path: Path) -> None:
    text = (T / "booked.yaml").read_text(encoding="utf-8")
    plain = tmp_path / "plain.yaml"
    plain.write_text(
        text.replace("amount_known_at: close\n", "").replace(
            "columns: {listed_amount: price}", "attributes: [price]"
        ),
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text((T / "products.csv").read_text(encoding="utf-8"))
    (tmp_path / "booked.csv").write_text((T / "booked.csv").read_text(encoding="utf-8"))
    store, process = new_project(tmp_path / "p")
    import_table(store, process, tmp_path / "booked.csv", plain, options=OPTS)
    assert rows(store, "SELECT count(*) FROM deal_changes") == [(0,)]
    amounts = _amounts(fw.EventLog(store, process).as_of("2024-03-20"))
    assert amounts["B1"] == (950.0, 950.0)
    assert amounts["B3"] == (None, None)
    store.close()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("amount_known_at: close\n", ""), "listed_amount needs amount_known_at: close"),
        (("  amount: booked\n", ""), "amount_known_at: close needs an amount column"),
        (("shape: snapshot", "shape: event_log"), "applies to the snapshot shape only"),
    ],
)
def test_mapping_checks(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = (T / "booked.yaml").read_text(encoding="utf-8").replace(*edit)
    bad = tmp_path / "booked.yaml"
    bad.write_text(text, encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError, match=message):
        import_table(store, process, T / "booked.csv", bad, options=OPTS)
    store.close()


def test_forecast_history_sees_the_listed_amount_of_a_deal_lost_at_zero(tmp_path: Path) -> None:
    """A lost deal's booked zero must not leave its earlier size band empty: an empty
    band only for deals that will be lost would tell the outcome."""
    from funnelwise.forecast.history import MISSING, pull_history

    (tmp_path / "deals.csv").write_text(
        "id,stage,created,engaged,closed,product,booked\n"
        "W1,Won,2024-03-01,2024-03-02,2024-04-10,Widget Pro,950\n"
        "L1,Lost,2024-03-01,2024-03-02,2024-03-25,Widget Basic,0\n",
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text((T / "products.csv").read_text(encoding="utf-8"))
    mapping = (T / "booked.yaml").read_text(encoding="utf-8") + (
        "stage_dates: {needs-assessment: engaged}\n"
    )
    (tmp_path / "m.yaml").write_text(mapping, encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    import_table(store, process, tmp_path / "deals.csv", tmp_path / "m.yaml", options=OPTS)
    visits = pull_history(fw.EventLog(store, process)).visits
    assert set(visits.dest) == {"won", "lost"}
    assert MISSING not in set(visits.amount_bin)
    store.close()
