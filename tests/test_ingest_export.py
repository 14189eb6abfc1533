"""Exports: the PM4Py-compatible event table and XES, read back by the XES reader."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

import funnelwise as fw
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.export import event_table, write_event_table, write_xes
from funnelwise.ingest.xes import XesOptions, import_xes
from funnelwise.project import Project
from funnelwise.store import Store
from ingest_util import FIXTURES, NOW, new_project, rows
from test_report import RENEWALS
from tiny import build_tiny


def _imported_back(path: Path, root: Path) -> Store:
    """A new project in `root` with the exported XES at `path` imported (the export
    writes the amount as `amount`); its store, open."""
    store, process = new_project(root)
    import_xes(
        store,
        process,
        path,
        xes=XesOptions(amount_attribute="amount"),
        options=ImportOptions(now=NOW),
    )
    return store


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
    store = _imported_back(path, tmp_path / "back")
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


def test_xes_round_trip_keeps_each_deals_pipeline_and_currency(tmp_path: Path) -> None:
    # The tiny log with a second pipeline, and a renewal won in euros.
    root = build_tiny(tmp_path / "two")
    process_text = (root / "process.yaml").read_text(encoding="utf-8").rstrip("\n") + "\n"
    (root / "process.yaml").write_text(process_text + RENEWALS, encoding="utf-8")
    store = Project(root).open_store()
    T = pd.Timestamp
    with store.transaction():
        store.insert(
            "deals",
            pd.DataFrame(
                [
                    {
                        "deal_id": "R1",
                        "pipeline_id": "renewals",
                        "amount": 700.0,
                        "currency": "EUR",
                        "amount_base": 770.0,
                        "created_at": T("2024-01-03"),
                        "closed_at": T("2024-02-03"),
                        "outcome": "won",
                        "version": 1,
                    }
                ]
            ),
        )
        store.insert(
            "stage_events",
            pd.DataFrame(
                [
                    ("R1", "renewal-review", T("2024-01-03"), 0),
                    ("R1", "renewed", T("2024-02-03"), 1),
                ],
                columns=["deal_id", "stage_id", "entered_at", "seq"],
            ),
        )
    store.close()
    log = fw.open(root)
    write_xes(log, tmp_path / "two.xes")
    log.store.close()
    (tmp_path / "fx.csv").write_text("currency,date,rate\nEUR,2024-01-01,1.1\n", encoding="utf-8")
    back, process = new_project(tmp_path / "back", process_text + RENEWALS)
    import_xes(
        back,
        process,
        tmp_path / "two.xes",
        xes=XesOptions(amount_attribute="amount"),
        options=ImportOptions(now=NOW, fx=tmp_path / "fx.csv"),
    )
    # Before, R1 went into the default pipeline, open, as a USD 700 deal, and its two
    # stage entries (ids of the other pipeline) became activities.
    deals = "SELECT deal_id, pipeline_id, outcome, currency, amount FROM deals ORDER BY 1"
    assert rows(back, deals)[-1] == ("R1", "renewals", "won", "EUR", 700.0)
    assert {r[1] for r in rows(back, deals)[:-1]} == {"new-business"}
    assert rows(back, "SELECT stage_id FROM stage_events WHERE deal_id = 'R1' ORDER BY seq") == [
        ("renewal-review",),
        ("renewed",),
    ]
    assert rows(back, "SELECT count(*) FROM activities") == [(0,)]
    # Read into columns, the two keys are no deal attributes.
    assert rows(back, "SELECT attributes FROM deals WHERE deal_id = 'R1'") == [(None,)]
    back.close()


def test_xes_round_trip_keeps_the_outcome_out_of_earlier_dates(
    tiny_log: fw.EventLog, tmp_path: Path
) -> None:
    write_xes(tiny_log, tmp_path / "tiny.xes")
    _imported_back(tmp_path / "tiny.xes", tmp_path / "back").close()
    back = fw.open(tmp_path / "back")
    # D1 is won on 2024-02-01, D2 lost on 01-20: as of 01-15 both are open. Before, the
    # outcome and owner at the log's end came back as deal attributes
    # ({"outcome": "won", "owner": "u2"}), there as of any date; now the events alone
    # say them, as known then.
    early = back.as_of("2024-01-15").deals.to_pandas().set_index("deal_id")
    assert early.loc[["D1", "D2"], "outcome"].isna().all()
    kept = early["attributes"].dropna().map(json.loads)
    assert not any({"outcome", "owner"} & set(doc) for doc in kept)
    assert back.deals.to_pandas().set_index("deal_id").loc["D1", "outcome"] == "won"
    back.store.close()


def test_the_xes_export_is_one_element_per_line(tiny_log: fw.EventLog, tmp_path: Path) -> None:
    import gzip

    from funnelwise.ingest.xes_lines import read_lines

    path = tmp_path / "tiny.xes.gz"
    written = write_xes(tiny_log, path, activities=True)
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    assert written == len(text.splitlines())
    # The quick reader takes the file (it answers None to anything else), so an
    # import of the export reads fast and names problems by their real lines.
    with path.open("rb") as raw, gzip.open(raw) as fh:
        read = read_lines(raw, fh, path.stat().st_size)
    assert read is not None
    events, cases = read
    assert sum(len(b) for b in events) == text.count("<event>") > 0
    assert sum(len(b) for b in cases) > 0


def test_xes_round_trip_keeps_the_deals_attributes(tmp_path: Path) -> None:
    doc = {
        "segment": "smb",
        "account.Industry": 'R&D "labs" <EU>',
        "employees": 250,
        "score": 0.75,
        "partner": True,
        "tags": ["a", "b"],
    }
    root = build_tiny(tmp_path / "tiny")
    with Store.open(f"duckdb://{root / 'funnelwise.duckdb'}") as s:
        s.raw.execute("UPDATE deals SET attributes = ? WHERE deal_id = 'D3'", [json.dumps(doc)])
    log = fw.open(root)
    text_path = tmp_path / "tiny.xes"
    write_xes(log, text_path)
    log.store.close()
    text = text_path.read_text(encoding="utf-8")
    # Typed as XES types, escaped, in key order; a list has no XES form here.
    assert (
        '    <string key="account.Industry" value="R&amp;D &quot;labs&quot; &lt;EU&gt;"/>\n'
        '    <int key="employees" value="250"/>\n'
        '    <boolean key="partner" value="true"/>\n'
        '    <float key="score" value="0.75"/>\n'
        '    <string key="segment" value="smb"/>\n'
    ) in text
    assert "tags" not in text
    back = _imported_back(text_path, tmp_path / "back")
    got = dict(rows(back, "SELECT deal_id, attributes FROM deals ORDER BY 1"))
    back.close()
    d3 = json.loads(got["D3"])
    # Values come back as the text XES carries them.
    assert d3 == {
        "account.Industry": 'R&D "labs" <EU>',
        "employees": "250",
        "score": "0.75",
        "partner": "true",
        "segment": "smb",
    }
    assert json.loads(got["D2"]) == {"segment": "ent"} and got["D4"] is None
