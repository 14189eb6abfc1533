"""Exports: the PM4Py-compatible event table and XES, read back by the XES reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

import funnelwise as fw
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.export import event_table, write_event_table, write_xes
from funnelwise.ingest.xes import XesOptions, import_xes
from ingest_util import FIXTURES, NOW, new_project, rows


def test_event_table_is_sorted_and_pm4py_named(tiny_log: fw.EventLog) -> None:
    table = event_table(tiny_log)
    assert table.column_names[:5] == [
        "case:concept:name",
        "concept:name",
        "time:timestamp",
        "lifecycle:transition",
        "org:resource",
    ]
    assert table.schema.field("time:timestamp").type == pa.timestamp("us", tz="UTC")
    frame = table.to_pandas()
    assert len(frame) == 15
    d4 = frame[frame["case:concept:name"] == "D4"]
    # Same instant: the source order (seq) decides.
    assert list(d4["concept:name"]) == ["lead", "qualification"]
    assert frame["case:concept:name"].is_monotonic_increasing
    d1 = frame[frame["case:concept:name"] == "D1"]
    assert list(d1["concept:name"]) == ["lead", "qualification", "proposal", "won"]
    assert set(d1["case:outcome"]) == {"won"}


def test_xes_round_trip_keeps_history_and_outcomes(tiny_log: fw.EventLog, tmp_path: Path) -> None:
    path = tmp_path / "tiny.xes.gz"
    write_xes(tiny_log, path)
    store, process = new_project(tmp_path / "back")
    import_xes(
        store,
        process,
        path,
        xes=XesOptions(amount_attribute="amount"),
        options=ImportOptions(now=NOW),
    )
    original = rows(
        tiny_log.store,
        "SELECT deal_id, stage_id, entered_at FROM stage_events ORDER BY deal_id, entered_at, seq",
    )
    back = rows(
        store,
        "SELECT deal_id, stage_id, entered_at FROM stage_events ORDER BY deal_id, entered_at, seq",
    )
    assert back == original
    deals = "SELECT deal_id, outcome, closed_at, amount FROM deals ORDER BY 1"
    assert rows(store, deals) == rows(tiny_log.store, deals)
    store.close()


def test_activities_round_trip(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "a")
    opts = ImportOptions(now=NOW)
    import_xes(
        store, process, FIXTURES / "xes" / "small.xes", xes=XesOptions("Amount"), options=opts
    )
    store.close()
    log = fw.open(tmp_path / "a")
    write_xes(log, tmp_path / "a.xes", activities=True)
    assert write_event_table(log, tmp_path / "a.parquet", activities=True) == 7 + 4
    again, _ = new_project(tmp_path / "b")
    import_xes(again, process, tmp_path / "a.xes", xes=XesOptions("amount"), options=opts)
    # "Qualified" repeats the qualification entry at the same instant; it stays an
    # activity because the export marks it so.
    query = 'SELECT deal_id, kind, "at", duration_min FROM activities ORDER BY ALL'
    assert rows(again, query) == rows(log.store, query)
    history = "SELECT deal_id, stage_id, entered_at, seq FROM stage_events ORDER BY ALL"
    assert [r[:3] for r in rows(again, history)] == [r[:3] for r in rows(log.store, history)]
    log.store.close()
    again.close()
