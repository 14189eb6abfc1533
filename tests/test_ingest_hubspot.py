"""The HubSpot reader on a hand-made deals export (tests/fixtures/ingest/hubspot):
UTF-8 with a byte-order mark, two pipelines, "Date entered" columns, a description
with a line break, two currencies."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.hubspot import import_hubspot
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

HS = FIXTURES / "hubspot"
OPTS = ImportOptions(now=NOW, fx=HS / "fx.csv")


def _project(tmp_path: Path):  # type: ignore[no-untyped-def]
    return new_project(tmp_path / "p", (HS / "process.yaml").read_text(encoding="utf-8"))


def test_export_hand_computed(tmp_path: Path) -> None:
    store, process = _project(tmp_path)
    r = import_hubspot(store, process, HS / "hubspot-deals.csv", options=OPTS)
    assert history(store, "101") == [
        ("lead", "2024-01-02 10:00"),
        ("qualification", "2024-01-05 12:00"),
        ("proposal", "2024-01-20 09:00"),
        ("closing", "2024-02-01 15:00"),
        ("won", "2024-02-15 11:30"),
    ]
    assert history(store, "102") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-03-03 08:00"),
        ("proposal", "2024-03-10 08:00"),
    ]
    # The Sales Pipeline column filled for the renewal deal belongs to another pipeline.
    assert history(store, "103") == [
        ("up-for-renewal", "2024-01-10 09:00"),
        ("renewed", "2024-02-01 17:00"),
    ]
    assert history(store, "104") == [("lead", "2024-02-01 09:00"), ("lost", "2024-02-20 16:00")]
    assert rows(
        store,
        "SELECT deal_id, pipeline_id, name, outcome, amount_base, owner_id, closed_at, "
        "expected_close_date, loss_reason, attributes FROM deals ORDER BY 1",
    ) == [
        (
            "101",
            "new-business",
            "Acme — expansión",
            "won",
            pytest.approx(5500.0),
            "Ana Pérez",
            dt.datetime(2024, 2, 15, 11, 30),
            dt.date(2024, 2, 15),
            None,
            '{"Deal Description":"Línea uno\\nLínea dos, con coma"}',
        ),
        (
            "102",
            "new-business",
            "Beta",
            None,
            2000.0,
            "Bob",
            None,
            dt.date(2024, 4, 30),
            None,
            None,
        ),
        (
            "103",
            "renewals",
            "Gamma renewal",
            "won",
            1200.0,
            "Ana Pérez",
            dt.datetime(2024, 2, 1, 17),
            dt.date(2024, 2, 1),
            None,
            None,
        ),
        (
            "104",
            "new-business",
            "Delta",
            "lost",
            800.0,
            "Bob",
            dt.datetime(2024, 2, 20, 16),
            dt.date(2024, 2, 20),
            "Precio",
            None,
        ),
    ]
    assert r.n_problems == 0
    before = dump(store)
    import_hubspot(store, process, HS / "hubspot-deals.csv", options=OPTS)
    assert dump(store) == before
    store.close()


def test_unknown_pipeline_and_stage_names(tmp_path: Path) -> None:
    store, _ = new_project(tmp_path / "p")  # the bundled process knows neither
    from funnelwise.process import load_process

    bundled = load_process(tmp_path / "p" / "process.yaml")
    with pytest.raises(
        SourceImportError, match=r"pipelines not in process\.yaml: 'Sales Pipeline'"
    ):
        import_hubspot(store, bundled, HS / "hubspot-deals.csv", options=OPTS)
    store.close()
    store, process = _project(tmp_path / "q")
    text = (HS / "hubspot-deals.csv").read_text(encoding="utf-8-sig")
    (tmp_path / "d.csv").write_text(text.replace("Presentation Scheduled,", "Demo Given,", 1))
    with pytest.raises(SourceImportError, match=r"'Demo Given' \(1 rows, pipeline new-business"):
        import_hubspot(store, process, tmp_path / "d.csv", options=replace(OPTS))
    store.close()
