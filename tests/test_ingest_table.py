"""The table reader and the shared import core, on hand-made files whose every
number is worked out in the comments."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import funnelwise as fw
from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions, import_table, list_imports
from funnelwise.ingest.encoding import detect_encoding
from funnelwise.ingest.load import ImportResult
from funnelwise.process import template_text
from funnelwise.store import Store
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

T = FIXTURES / "table"
OPTS = ImportOptions(now=NOW)


def test_event_log_hand_computed(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    # D1..D4 load; D5 has a negative amount and D6 an unreadable date: 2 rows set aside.
    assert rows(store, "SELECT deal_id, outcome, amount, owner_id FROM deals ORDER BY 1") == [
        ("D1", "won", 1200.0, "ana"),  # the last amount given wins
        ("D2", "lost", 500.0, "bob"),
        ("D3", None, 2000.0, "ana"),
        ("D4", None, 300.0, "bob"),
    ]
    # 15/01/2024 decides that the column is day first: 01/02/2024 is 1 February.
    assert history(store, "D1") == [
        ("lead", "2024-01-01 09:00"),
        ("qualification", "2024-01-05 10:00"),  # the repeat on 01-06 is no stage entry
        ("proposal", "2024-01-15 00:00"),
        ("won", "2024-02-01 16:30"),
    ]
    assert rows(store, "SELECT closed_at FROM deals WHERE deal_id = 'D1'") == [
        (pd.Timestamp("2024-02-01 16:30").to_pydatetime(),)
    ]
    assert history(store, "D3") == [
        ("lead", "2024-01-10 00:00"),
        ("qualification", "2024-01-12 00:00"),
        ("needs-assessment", "2024-01-20 00:00"),
        ("qualification", "2024-02-01 00:00"),  # re-entries are kept
    ]
    # Equal timestamps keep the source order through seq.
    assert history(store, "D4") == [
        ("lead", "2024-02-01 08:00"),
        ("qualification", "2024-02-01 08:00"),
    ]
    counts = {t: c.as_dict() for t, c in r.counts.items()}
    assert counts["deals"] == {"loaded": 4, "updated": 0, "duplicates": 0, "quarantined": 1}
    # 4 + 3 + 4 + 2 entries; D2's copied row is a duplicate; D5 and D6 are set aside.
    assert counts["stage_events"] == {
        "loaded": 13,
        "updated": 0,
        "duplicates": 1,
        "quarantined": 2,
    }
    assert r.n_quarantined == 2
    reasons = {(p.row, p.column, p.quarantined) for p in r.problems}
    assert (17, "amount", True) in reasons  # D5 on row 17
    assert (18, "entered", True) in reasons  # D6 on row 18
    assert (9, "stage", False) in reasons  # D2's duplicate on row 9
    # The copy is skipped, not loaded; the row it copies is.
    [copy] = [str(p) for p in r.problems if p.row == 9]
    assert copy == (
        "events.csv row 9, stage = 'qualification': repeats row 8 exactly; only the first "
        "copy is loaded (skipped)"
    )
    [group] = [str(g) for g in r.problem_groups if g.code == "duplicate"]
    assert group.strip() == (
        "1 × events.csv, stage: duplicate (skipped); first: row 9, repeats row 8 exactly; "
        "only the first copy is loaded"
    )
    assert r.observed_until == pd.Timestamp("2024-02-01 16:30")
    assert store.meta("observed_until") == "2024-02-01T16:30:00"
    # D1's amount moves on its 01-15 row: a change then, so earlier it was 1,000.
    assert rows(
        store, "SELECT deal_id, field, old_value, new_value, changed_at FROM deal_changes"
    ) == [("D1", "amount", "1000.0", "1200.0", pd.Timestamp("2024-01-15").to_pydatetime())]
    log = fw.open(tmp_path / "p")
    past = log.as_of("2024-01-14").deals
    assert past.filter(past.deal_id == "D1").amount.to_pandas().tolist() == [1000.0]
    log.store.close()
    # The quarantine folder has the original rows with their reason.
    assert r.quarantine_path is not None
    with (r.quarantine_path / "events.csv").open(encoding="utf-8") as fh:
        quarantined = list(csv.DictReader(fh))
    assert [q["deal_id"] for q in quarantined] == ["D5", "D6"]
    assert "negative" in quarantined[0]["reason"]
    assert "not a date and time" in quarantined[1]["reason"]
    store.close()


def test_a_fixed_quarantine_file_imports_without_its_row_and_reason(tmp_path: Path) -> None:
    # The quarantine file is the source's columns behind `row` and `reason`; with
    # `attributes: rest` those two had become attributes of every re-imported deal.
    (tmp_path / "s.csv").write_text(
        "id,stage,created,region\nA,lead,2024-01-02,North\nB,lead,2024-13-45,South\n"
    )
    (tmp_path / "m.yaml").write_text(
        "shape: snapshot\ncolumns: {deal_id: id, stage: stage, created_at: created}\n"
        "attributes: rest\n"
    )
    store, process = new_project(tmp_path / "p")
    first = import_table(store, process, tmp_path / "s.csv", tmp_path / "m.yaml", options=OPTS)
    assert first.n_quarantined == 1 and first.quarantine_path is not None
    held = first.quarantine_path / "s.csv"
    text = held.read_text(encoding="utf-8")
    # One reason: the unreadable date is not also called missing.
    assert text.splitlines() == [
        "row,reason,id,stage,created,region",
        "3,created: not a date and time,B,lead,2024-13-45,South",
    ]
    fixed = tmp_path / "s-fixed.csv"
    fixed.write_text(text.replace("2024-13-45", "2024-01-03"), encoding="utf-8")
    again = import_table(store, process, fixed, tmp_path / "m.yaml", options=OPTS)
    assert again.n_quarantined == 0
    assert rows(store, "SELECT deal_id, attributes FROM deals ORDER BY deal_id") == [
        ("A", '{"region":"North"}'),
        ("B", '{"region":"South"}'),
    ]
    assert "s-fixed.csv: a quarantine file: its row and reason columns are left out" in (
        again.notes
    )
    store.close()


def test_reimport_loads_nothing_twice(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    first = import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    before = dump(store)
    again = import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    assert dump(store) == before
    assert all(c.loaded == 0 and c.updated == 0 for c in again.counts.values())
    assert again.counts["stage_events"].duplicates == 13 + 1
    assert again.previous_imports == (first.import_id,)
    imports = list_imports(store)
    assert list(imports["import_id"]) == [again.import_id, first.import_id]
    assert list(imports["loaded"]) == [0, 4 + 13 + 1]  # deals, stage entries, a change
    store.close()


def test_overlapping_export_adds_only_new_events(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    lines = (T / "events.csv").read_text().splitlines()
    # The first export stops before D3's move back to qualification and D1's close.
    early = [ln for ln in lines if "2024-02-01" not in ln and "01/02/2024" not in ln]
    (src / "early.csv").write_text("\n".join(early) + "\n")
    store, process = new_project(tmp_path / "p")
    import_table(store, process, src / "early.csv", T / "events.yaml", options=OPTS)
    assert rows(store, "SELECT outcome FROM deals WHERE deal_id = 'D1'") == [(None,)]
    r = import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    # New: D1 won, D3 back to qualification, D4's two entries (all dated 02-01).
    assert r.counts["stage_events"].loaded == 4
    assert r.counts["deals"].loaded == 1  # D4
    assert r.counts["deals"].updated == 1  # D1 is now won
    assert rows(store, "SELECT outcome, version FROM deals WHERE deal_id = 'D1'") == [("won", 2)]
    fresh, _ = new_project(tmp_path / "q")
    import_table(fresh, process, T / "events.csv", T / "events.yaml", options=OPTS)
    assert dump(store)["stage_events"] == dump(fresh)["stage_events"]
    store.close()
    fresh.close()


def test_shuffled_input_gives_the_same_store(tmp_path: Path) -> None:
    frame = pd.read_csv(T / "events.csv", dtype=str, keep_default_na=False)
    # D4's two entries share a timestamp; an explicit order column keeps them apart.
    frame["order"] = range(len(frame))
    mapping = (T / "events.yaml").read_text() + "  order: order\n"
    (tmp_path / "m.yaml").write_text(mapping)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.sample(frac=1.0, random_state=11).to_csv(tmp_path / "b.csv", index=False)
    dumps = []
    for name in ("a", "b"):
        store, process = new_project(tmp_path / name)
        import_table(store, process, tmp_path / f"{name}.csv", tmp_path / "m.yaml", options=OPTS)
        dumps.append(dump(store))
        store.close()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["stage_events"]) == 13


def test_unmapped_stage_names_stop_the_import(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text(
        "deal_id,stage,entered\nX1,Prospecting,2024-01-01\nX1,Firmas,2024-01-02\n"
        "X2,Firmas,2024-01-03\nX2,Propuesta enviada,2024-01-04\n"
    )
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError) as err:
        import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    message = str(err.value)
    assert "'Firmas' (2 rows" in message and "'Propuesta enviada' (1 rows" in message
    assert "--suggest-mapping" in message
    assert rows(store, "SELECT count(*) FROM stage_events") == [(0,)]
    fragment = tmp_path / "fragment.yaml"
    opts = replace(OPTS, suggest_mapping=fragment)
    r = import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=opts)
    assert not r.loaded
    text = fragment.read_text()
    # "Propuesta enviada" is close to the alias "Propuesta" of proposal.
    assert "- id: proposal" in text and "Propuesta enviada" in text
    assert "- id: TODO" in text and "Firmas" in text
    assert rows(store, "SELECT count(*) FROM imports") == [(0,)]
    store.close()


def test_on_error_fail_loads_nothing(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    opts = replace(OPTS, on_error="fail")
    with pytest.raises(SourceImportError) as err:
        import_table(store, process, T / "events.csv", T / "events.yaml", options=opts)
    assert "events.csv row 17, amount = '-5.0': is negative" in str(err.value)
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
    assert not (tmp_path / "p" / "quarantine").exists()
    store.close()


def test_a_failure_mid_load_leaves_the_store_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, process = new_project(tmp_path / "p")
    import_table(store, process, T / "snapshot.csv", T / "snapshot.yaml", options=_fx(tmp_path))
    before = dump(store)
    meta = store.meta("observed_until")
    from funnelwise.ingest import load as load_module

    real = load_module._insert_events

    def crash(*args: object, **kwargs: object) -> tuple[int, int]:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    monkeypatch.setattr(load_module, "_insert_events", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    assert dump(store) == before
    assert store.meta("observed_until") == meta
    assert rows(store, "SELECT count(*) FROM imports") == [(1,)]
    assert not any(p.name.startswith(".pending") for p in (tmp_path / "p" / "quarantine").iterdir())
    store.close()


def _fx(tmp_path: Path) -> ImportOptions:
    fx = tmp_path / "fx.csv"
    fx.write_text("currency,date,rate\nEUR,2024-01-01,1.10\nEUR,2024-03-05,1.20\n")
    return replace(OPTS, fx=fx)


def test_snapshot_creates_only_known_events(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError, match=r"no exchange rate to USD for EUR \(1 deal\)"):
        import_table(store, process, T / "snapshot.csv", T / "snapshot.yaml", options=OPTS)
    r = import_table(store, process, T / "snapshot.csv", T / "snapshot.yaml", options=_fx(tmp_path))
    assert history(store, "S1") == [("lead", "2024-03-01 00:00")]  # created -> current stage
    assert history(store, "S2") == [("needs-assessment", "2024-03-10 00:00")]
    assert history(store, "S3") == [
        ("needs-assessment", "2024-03-05 00:00"),
        ("won", "2024-04-01 00:00"),
    ]
    assert history(store, "S4") == [("lost", "2024-03-20 00:00")]
    # S5 has no creation date: it is dated at its first stage entry.
    assert history(store, "S5") == [("needs-assessment", "2024-03-12 00:00")]
    assert rows(
        store,
        "SELECT deal_id, outcome, amount, currency, amount_base, region, attributes "
        "FROM deals ORDER BY 1",
    ) == [
        ("S1", None, None, None, None, "north", '{"segment":"smb"}'),  # no amount, no currency
        # Open, so converted on its creation day (03-02): 1.10, the rate before 03-05.
        ("S2", None, 800.0, "EUR", pytest.approx(880.0), "south", '{"segment":"ent"}'),
        ("S3", "won", 1500.0, "USD", 1500.0, "north", '{"segment":"smb"}'),
        ("S4", "lost", 0.0, "USD", 0.0, "south", None),
        ("S5", None, 100.0, "USD", 100.0, "north", '{"segment":"smb"}'),
    ]
    assert rows(store, "SELECT created_at FROM deals WHERE deal_id = 'S5'") == [
        (pd.Timestamp("2024-03-12").to_pydatetime(),)
    ]
    assert r.counts["fx_rates"].loaded == 2
    assert [g.code for g in r.problem_groups] == ["dated by history"]
    store.close()


def test_excel_and_parquet_read_like_csv(tmp_path: Path) -> None:
    frame = pd.read_csv(T / "events.csv", dtype=str, keep_default_na=False)
    frame.to_excel(tmp_path / "events.xlsx", index=False)
    frame.to_parquet(tmp_path / "events.parquet", index=False)
    shutil.copy(T / "events.yaml", tmp_path / "events.yaml")
    dumps = []
    for name in ("events.csv", "events.xlsx", "events.parquet"):
        folder = T if name.endswith(".csv") else tmp_path
        store, process = new_project(tmp_path / name.replace(".", "_"))
        r = import_table(store, process, folder / name, T / "events.yaml", options=OPTS)
        assert r.n_quarantined == 2
        dumps.append(dump(store))
        store.close()
    assert dumps[0] == dumps[1] == dumps[2]


def test_mapping_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "shape: event_log\ncolumns:\n  deal_id: deal_id\n  stage: stage\n  when: entered\n"
        "colour: blue\n"
    )
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError) as err:
        import_table(store, process, T / "events.csv", bad, options=OPTS)
    text = str(err.value)
    assert f"{bad}:5: columns.when: 'when' is not a field of a event_log" in text
    assert f"{bad}:6: colour: unknown key" in text
    assert "maps no column to 'entered_at'" in text
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        "shape: event_log\ncolumns:\n  deal_id: deal_id\n  stage: stage\n  entered_at: entered_on\n"
    )
    with pytest.raises(
        SourceImportError,
        match=r"missing.yaml:5: column 'entered_on' is not in "
        r"events.csv \(did you mean 'entered'\?\)",
    ):
        import_table(store, process, T / "events.csv", missing, options=OPTS)
    # A key left empty reads as null, as in YAML: one problem on its line.
    empty = tmp_path / "empty.yaml"
    empty.write_text(
        "shape: event_log\ncolumns:\n  deal_id: deal_id\n  stage: stage\n"
        "  entered_at: entered\n  amount:\n"
    )
    with pytest.raises(SourceImportError) as err:
        import_table(store, process, T / "events.csv", empty, options=OPTS)
    assert str(err.value).splitlines() == [
        "1 problem(s) in the mapping file:",
        f"  - {empty}:6: columns.amount: is empty; give a value, or leave the key out",
    ]
    assert store.count("stage_events") == 0
    store.close()


def test_dates_offsets_future_and_dayfirst(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text(
        "deal_id,stage,entered\n"
        "A,Prospecting,2024-03-01T10:00:00+02:00\n"  # 08:00 UTC
        "A,Qualify,03/04/2024\n"  # ambiguous: --dayfirst makes it 3 April
        "B,Prospecting,2024-06-01T00:00:00Z\n"
        "B,Qualify,2031-01-01\n"  # after "now": quarantined
    )
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(
        store,
        process,
        tmp_path / "e.csv",
        tmp_path / "m.yaml",
        options=replace(OPTS, dayfirst=True),
    )
    assert history(store, "A") == [
        ("lead", "2024-03-01 08:00"),
        ("qualification", "2024-04-03 00:00"),
    ]
    assert history(store, "B") == [("lead", "2024-06-01 00:00")]
    future = [p for p in r.problems if p.quarantined]
    assert [(p.row, p.column) for p in future] == [(5, "entered")]
    assert "in the future" in future[0].reason
    store.close()


def test_placeholder_dates_before_1970_are_quarantined(tmp_path: Path) -> None:
    # Exports write 1900-01-01 (or 01/01/1900, 0001-01-01) for "no date": loaded, the
    # deal would be 124 years old and every history window would start in 1900.
    (tmp_path / "e.csv").write_text(
        "deal_id,stage,entered\n"
        "A,Prospecting,2024-03-01\n"
        "A,Qualify,1900-01-01\n"
        "B,Prospecting,01/01/1900\n"
        "C,Prospecting,0001-01-01\n"
        "D,Prospecting,1970-01-01\n"
    )
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    old = [p for p in r.problems if p.quarantined]
    assert sorted((p.row, p.column) for p in old) == [
        (3, "entered"),
        (4, "entered"),
        (5, "entered"),
    ]
    assert all("before 1970: a placeholder for no date" in p.reason for p in old)
    assert history(store, "A") == [("lead", "2024-03-01 00:00")]
    assert history(store, "D") == [("lead", "1970-01-01 00:00")]
    assert store.count("deals") == 2
    store.close()


def test_two_digit_years_are_never_year_zero(tmp_path: Path) -> None:
    # %d.%m.%Y reads "01.05.00" as year 0; the two-digit form must win, in any order.
    # (Dates with dots that read both ways are read day first.)
    (tmp_path / "e.csv").write_text(
        "deal_id,stage,entered\nA,Prospecting,01.02.2000\nA,Qualify,01.05.00\n"
    )
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    assert history(store, "A") == [
        ("lead", "2000-02-01 00:00"),
        ("qualification", "2000-05-01 00:00"),
    ]
    assert not r.problems
    store.close()


def _entered_notes(tmp_path: Path, *values: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Import one deal entering one stage per value (rows 2, 3, ...); the import's
    notes and the deal's history."""
    stages = ["lead", "qualification", "needs-assessment", "proposal", "negotiation"]
    lines = [f"A,{stage},{value}" for stage, value in zip(stages, values, strict=False)]
    tmp_path.mkdir()
    (tmp_path / "e.csv").write_text("deal_id,stage,entered\n" + "\n".join(lines) + "\n")
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    found = history(store, "A")
    store.close()
    return list(r.notes), found


def test_dates_in_another_form_than_the_column_are_noted(tmp_path: Path) -> None:
    notes, found = _entered_notes(
        tmp_path / "a", "2023-03-01", "2023-03-14", "15/03/2023", "2023-03-20", "03/04/2023"
    )
    assert [d for _, d in found] == [
        "2023-03-01 00:00",
        "2023-03-14 00:00",
        "2023-03-15 00:00",
        "2023-03-20 00:00",
        "2023-04-03 00:00",
    ]
    assert notes == [
        # 03/04/2023 is not read day first silently: the note says why.
        "e.csv: column 'entered': 1 of its dates such as 03/04, which read both ways, read "
        "day first (03/04 as 3 April), as 1 such as 25/04 read no other way",
        "e.csv: column 'entered': 2 of its 5 dates are in another form than the column's "
        "main one (ISO 8601, such as 2023-03-01); the first on row 4: 15/03/2023, "
        "read as 2023-03-15",
    ]
    # Month first where the odd ones say so; and the main form need not be ISO.
    notes, found = _entered_notes(
        tmp_path / "b", "03/01/2023 10:00", "03/14/2023", "2023-03-20", "04/03/2023"
    )
    assert found[2:] == [
        ("needs-assessment", "2023-03-20 00:00"),
        ("proposal", "2023-04-03 00:00"),
    ]
    assert notes == [
        "e.csv: column 'entered': 2 of its dates such as 03/04, which read both ways, read "
        "month first (03/04 as March 4), as 1 such as 04/25 read no other way",
        "e.csv: column 'entered': 1 of its 4 dates is in another form than the column's "
        "main one (MM/DD/YYYY, such as 03/01/2023 10:00); the first on row 4: 2023-03-20, "
        "read as 2023-03-20",
    ]
    # One form throughout, with or without a time of day: nothing to note.
    notes, _ = _entered_notes(tmp_path / "c", "2023-03-01", "2023-03-14 10:30")
    assert notes == []
    notes, _ = _entered_notes(tmp_path / "d", "25/03/2023", "26/03/2023 10:30")
    assert notes == []
    # Only dates that read both ways, written with dots: day first, as such dates are
    # written (they had been read month first, 03.04 as March 4).
    notes, found = _entered_notes(tmp_path / "e", "03.02.2023", "05.03.2023")
    assert [d for _, d in found] == ["2023-02-03 00:00", "2023-03-05 00:00"]
    assert notes == [
        "e.csv: column 'entered': 2 of its dates such as 03.04.2024, which read both ways, "
        "read day first (03.04 as 3 April), as dates written with dots are"
    ]
    # With slashes nothing decides: month first, and the note says how to change it.
    notes, found = _entered_notes(tmp_path / "f", "03/02/2023", "05/03/2023")
    assert [d for _, d in found] == ["2023-03-02 00:00", "2023-05-03 00:00"]
    assert "read as month first (pass --dayfirst for day first)" in notes[0]


def test_a_column_read_in_two_roles_is_noted_once(tmp_path: Path) -> None:
    # CRM Sales Opportunities' engage_date is both the creation date and the entry to
    # Engaging: its "read both ways" note had been printed twice.
    (tmp_path / "s.csv").write_text(
        "id,stage,engaged\nA,needs-assessment,03/04/2023\nB,needs-assessment,04/25/2023\n"
    )
    (tmp_path / "m.yaml").write_text(
        "shape: snapshot\ncolumns: {deal_id: id, stage: stage, created_at: engaged}\n"
        "stage_dates: {needs-assessment: engaged}\n"
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "s.csv", tmp_path / "m.yaml", options=OPTS)
    store.close()
    assert [n for n in r.notes if "read both ways" in n] == [
        "s.csv: column 'engaged': 1 of its dates such as 03/04, which read both ways, read "
        "month first (03/04 as March 4), as 1 such as 04/25 read no other way"
    ]


def test_time_zone_of_naive_times(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("deal_id,stage,entered\nA,Prospecting,2024-07-01 10:00\n")
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ntimezone: Europe/Madrid\n"
        "columns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    store, process = new_project(tmp_path / "p")
    import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    assert history(store, "A") == [("lead", "2024-07-01 08:00")]  # CEST is UTC+2
    store.close()


def test_observed_until_never_moves_back(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    import_table(store, process, T / "events.csv", T / "events.yaml", options=OPTS)
    (tmp_path / "old.csv").write_text("deal_id,stage,entered\nZ,Prospecting,2023-05-01\n")
    (tmp_path / "m.yaml").write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
    )
    r = import_table(store, process, tmp_path / "old.csv", tmp_path / "m.yaml", options=OPTS)
    assert r.observed_until == pd.Timestamp("2024-02-01 16:30")
    assert store.meta("observed_until") == "2024-02-01T16:30:00"
    store.close()


def _snapshot_rows(tmp_path: Path, *lines: str) -> tuple[Store, ImportResult]:
    """Rows in the columns of the snapshot fixture, imported with its mapping into a
    new project; the open store and the import's result."""
    header = "id,name,stage,created,engaged,closed,value,currency,region,segment"
    (tmp_path / "s.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    return store, import_table(
        store, process, tmp_path / "s.csv", T / "snapshot.yaml", options=OPTS
    )


def test_snapshots_imported_in_turn_keep_the_values_they_replace(tmp_path: Path) -> None:
    # Export A (newest date 03-10): O1 worth 1,000, W1 open worth 700. Export B (newest
    # 04-10): O1 worth 1,500, W1 won on 04-02 worth 900. B's new values become changes
    # dated at B (O1) or at the close (W1, closed after A), so the log as of any date
    # between the exports still sees A's values.
    header = "id,name,stage,created,engaged,closed,value,currency,region,segment"
    a = [
        "O1,Open,Prospecting,2024-03-01,,,1000,USD,north,smb",
        "W1,Won,Engaging,2024-03-03,2024-03-05,,700,USD,north,smb",
        "X1,Later,Prospecting,2024-03-10,,,50,USD,north,smb",
    ]
    b = [
        "O1,Open,Prospecting,2024-03-01,,,1500,USD,north,smb",
        "W1,Won,Won,2024-03-03,2024-03-05,2024-04-02,900,USD,north,smb",
        "Y1,Latest,Prospecting,2024-04-10,,,80,USD,north,smb",
    ]
    for name, lines in (("a.csv", a), ("b.csv", b)):
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    imp = lambda name: import_table(  # noqa: E731
        store, process, tmp_path / name, T / "snapshot.yaml", options=OPTS
    )
    imp("a.csv")
    counts = imp("b.csv").counts
    assert (counts["deals"].updated, counts["deal_changes"].loaded) == (2, 2)
    changes = "SELECT deal_id, field, old_value, new_value, changed_at FROM deal_changes"
    stamp = lambda day: pd.Timestamp(day).to_pydatetime()  # noqa: E731
    assert rows(store, changes + " ORDER BY 1") == [
        ("O1", "amount", "1000.0", "1500.0", stamp("2024-04-10")),
        ("W1", "amount", "700.0", "900.0", stamp("2024-04-02")),
    ]
    log = fw.open(tmp_path / "p")
    amounts = lambda t: dict(  # noqa: E731
        log.as_of(t).deals.select("deal_id", "amount").to_pandas().itertuples(index=False)
    )
    assert amounts("2024-04-01") == {"O1": 1000.0, "W1": 700.0, "X1": 50.0}
    assert amounts("2024-04-10") == {"O1": 1500.0, "W1": 900.0, "X1": 50.0, "Y1": 80.0}
    log.store.close()
    # Export A again, imported late: its rows are no newer than the stored ones and it
    # was taken before what the store has seen, so nothing moves back.
    again = imp("a.csv")
    assert again.counts["deals"].updated == 0
    assert rows(
        store, "SELECT deal_id, amount FROM deals WHERE deal_id IN ('O1', 'W1') ORDER BY 1"
    ) == [("O1", 1500.0), ("W1", 900.0)]
    assert len(rows(store, changes)) == 2
    store.close()


def test_exports_of_the_same_day_a_new_currency_and_empty_values(tmp_path: Path) -> None:
    # Three exports whose newest date is 03-10. A: O1 1,000; C1 1,000 USD; N1 700;
    # W1 open at 700. B: O1 1,500. C: O1 2,000; C1 900 EUR (rate 1.1); N1's value left
    # empty; W1 won on 03-10 at 900.
    header = "id,name,stage,created,engaged,closed,value,currency,region,segment"
    a = [
        "O1,Open,Prospecting,2024-03-01,,,1000,USD,north,smb",
        "C1,Cur,Prospecting,2024-03-01,,,1000,USD,north,smb",
        "N1,Null,Prospecting,2024-03-01,,,700,USD,north,smb",
        "W1,Won,Engaging,2024-03-03,2024-03-05,,700,USD,north,smb",
        "X1,Later,Prospecting,2024-03-10,,,50,USD,north,smb",
    ]
    b = [a[0].replace("1000", "1500"), *a[1:]]
    c = [
        a[0].replace("1000", "2000"),
        "C1,Cur,Prospecting,2024-03-01,,,900,EUR,north,smb",
        "N1,Null,Prospecting,2024-03-01,,,,USD,north,smb",
        "W1,Won,Won,2024-03-03,2024-03-05,2024-03-10,900,USD,north,smb",
        a[4],
    ]
    (tmp_path / "fx.csv").write_text("currency,date,rate\nEUR,2024-01-01,1.1\n")
    opts = replace(OPTS, fx=tmp_path / "fx.csv")
    store, process = new_project(tmp_path / "p")
    for name, lines in (("a.csv", a), ("b.csv", b), ("c.csv", c)):
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        import_table(store, process, tmp_path / name, T / "snapshot.yaml", options=opts)
    got = rows(store, "SELECT deal_id, old_value, new_value, changed_at FROM deal_changes")
    on_10 = pd.Timestamp("2024-03-10").to_pydatetime()
    # Same day, one change carried on (A to C, not two changes at one time); C1's 1,000
    # USD read in EUR at the new rate (base 1,000 kept); N1's empty value changes nothing;
    # W1 changed by its close.
    assert [(d, t) for d, _, _, t in sorted(got)] == [("C1", on_10), ("O1", on_10), ("W1", on_10)]
    values = [float(v) for _, o, n, _ in sorted(got) for v in (o, n)]
    assert values == pytest.approx([1000 * 900 / 990, 900.0, 1000.0, 2000.0, 700.0, 900.0])
    assert rows(store, "SELECT amount FROM deals WHERE deal_id = 'N1'") == [(700.0,)]
    store.close()
    log = fw.open(tmp_path / "p")
    cols = ("deal_id", "amount_base", "outcome")
    before, on = (
        log.as_of(t).deals.select(*cols).order_by("deal_id").to_pandas()
        for t in ("2024-03-09", "2024-03-10")
    )
    assert before.amount_base.tolist() == pytest.approx([1000.0, 700.0, 1000.0, 700.0])
    assert on.amount_base.tolist() == pytest.approx([990.0, 700.0, 2000.0, 900.0, 50.0])
    assert on.outcome.tolist()[3] == "won"
    log.store.close()


def test_a_later_export_fills_in_and_keeps_what_it_leaves_empty(tmp_path: Path) -> None:
    # A: E1 without an amount, tier gold; L1 lost for "price". B (later): E1 worth 500,
    # its segment left empty and tier silver; L1 still lost, its reason left empty.
    (tmp_path / "m.yaml").write_text(
        "shape: snapshot\ncolumns:\n  deal_id: id\n  stage: stage\n  created_at: created\n"
        "  closed_at: closed\n  amount: value\n  loss_reason: reason\n"
        "attributes: [segment, tier]\ncurrency: USD\n"
    )
    header = "id,stage,created,closed,value,reason,segment,tier"
    a = ["E1,Prospecting,2024-03-01,,,,smb,gold", "L1,Lost,2024-03-01,2024-03-05,0,price,,"]
    b = ["E1,Prospecting,2024-03-01,,500,,,silver", "L1,Lost,2024-03-01,2024-03-05,0,,,"]
    b.append("Y1,Prospecting,2024-04-10,,80,,,")
    store, process = new_project(tmp_path / "p")
    for name, lines in (("a.csv", a), ("b.csv", b)):
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        import_table(store, process, tmp_path / name, tmp_path / "m.yaml", options=OPTS)
    deals = "SELECT deal_id, attributes, loss_reason FROM deals WHERE deal_id IN ('E1', 'L1')"
    assert rows(store, deals + " ORDER BY 1") == [
        ("E1", '{"segment":"smb","tier":"silver"}', None),
        ("L1", None, "price"),
    ]
    # The amount was not known before B: the log as of an earlier date has none.
    changes = "SELECT deal_id, old_value, new_value, changed_at FROM deal_changes"
    assert rows(store, changes) == [("E1", None, "500.0", pd.Timestamp("2024-04-10"))]
    # Two changes stored at one time (as a field history can give them), then an export
    # at that time with the first value again: the later one is carried back, and the
    # log reads the value the newest import gave, at that time as before it.
    store.raw.execute(
        "INSERT INTO deal_changes VALUES ('E1', 'amount', '500.0', '600.0', "
        "'2024-04-20', NULL, '20000101T000000-table-a'), ('E1', 'amount', '600.0', "
        "'700.0', '2024-04-20', NULL, '20000101T000000-table-a')"
    )
    store.raw.execute("UPDATE deals SET amount = 700, amount_base = 700 WHERE deal_id = 'E1'")
    # C also has L1 lost again, on a later date and without a reason: no old reason.
    c = [b[0], "L1,Lost,2024-03-01,2024-04-15,0,,,", "Y2,Prospecting,2024-04-20,,90,,,"]
    (tmp_path / "c.csv").write_text("\n".join([header, *c]) + "\n", encoding="utf-8")
    r = import_table(store, process, tmp_path / "c.csv", tmp_path / "m.yaml", options=OPTS)
    assert (r.counts["deal_changes"].loaded, r.counts["deal_changes"].updated) == (0, 1)
    assert rows(store, "SELECT loss_reason FROM deals WHERE deal_id = 'L1'") == [(None,)]
    store.close()
    log = fw.open(tmp_path / "p")
    amount = lambda t: log.as_of(t).deals.filter(lambda d: d.deal_id == "E1").amount.execute()  # noqa: E731
    assert [amount(t).iloc[0] for t in ("2024-04-19", "2024-04-20")] == [500.0, 500.0]
    assert pd.isna(amount("2024-04-09").iloc[0])
    log.store.close()


def test_re_imports_compare_attributes_by_content_and_order_ties_by_import(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.yaml").write_text(
        "shape: snapshot\ncolumns:\n  deal_id: id\n  stage: stage\n  created_at: created\n"
        "  amount: value\nattributes: [segment, tier]\ncurrency: USD\n"
    )
    header = "id,stage,created,value,segment,tier"
    a = ["E1,Prospecting,2024-03-01,100,smb,gold"]
    b = ["E1,Prospecting,2024-03-01,100,smb,"]
    store, process = new_project(tmp_path / "p")
    updated = []
    for name, lines in (("a.csv", a), ("b.csv", b), ("a.csv", a), ("b.csv", b)):
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        r = import_table(store, process, tmp_path / name, tmp_path / "m.yaml", options=OPTS)
        updated.append(r.counts["deals"].updated)
    # B leaves tier empty: nothing changes, however the merge writes the text.
    assert updated == [0, 0, 0, 0]
    assert rows(store, "SELECT version FROM deals") == [(1,)]
    # Two changes at one time from two imports: the one that ran later is read, whatever
    # its id; a change from no import counts as the earliest.
    store.raw.execute(
        "INSERT INTO imports (import_id, source, started_at) VALUES "
        "('i-z', 'table', '2024-06-01 10:00:00.000001'), "
        "('i-a', 'table', '2024-06-01 10:00:00.000002')"
    )
    store.raw.execute(
        "INSERT INTO deal_changes VALUES "
        "('E1', 'amount', '100.0', '150.0', '2024-03-05', NULL, 'i-z'), "
        "('E1', 'amount', '150.0', '200.0', '2024-03-05', NULL, 'i-a'), "
        "('E1', 'amount', '90.0', '100.0', '2024-03-05', NULL, 'synth')"
    )
    store.close()
    log = fw.open(tmp_path / "p")
    at = lambda t: log.as_of(t).deals.amount.execute().iloc[0]  # noqa: E731
    assert (at("2024-03-04"), at("2024-03-05")) == (90.0, 200.0)
    log.store.close()


def test_a_store_without_per_table_times_judges_by_the_table_itself(tmp_path: Path) -> None:
    # A store loaded before each table kept its latest export time: a leads export
    # dated June had moved the store's observed_until past a deals export of April.
    store, process = new_project(tmp_path / "p")
    header = "id,name,stage,created,engaged,closed,value,currency,region,segment"
    for name, lines in (
        ("a.csv", ["O1,Open,Prospecting,2024-03-01,,,1000,USD,north,smb"]),
        (
            "b.csv",
            [
                "O1,Open,Prospecting,2024-03-01,,,2000,USD,north,smb",
                "Y1,Later,Prospecting,2024-04-01,,,80,USD,north,smb",
            ],
        ),
    ):
        (tmp_path / name).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    import_table(store, process, tmp_path / "a.csv", T / "snapshot.yaml", options=OPTS)
    store.raw.execute("DELETE FROM meta WHERE key LIKE 'observed_until:%'")
    store.set_meta("observed_until", "2024-06-01T00:00:00")
    r = import_table(store, process, tmp_path / "b.csv", T / "snapshot.yaml", options=OPTS)
    assert r.counts["deals"].updated == 1
    assert rows(store, "SELECT amount FROM deals WHERE deal_id = 'O1'") == [(2000.0,)]
    assert store.meta("observed_until:deals") == "2024-04-01T00:00:00"
    store.close()


def test_a_leads_export_is_judged_by_the_leads_it_follows(tmp_path: Path) -> None:
    # A deals export with a later date in between does not make the second leads export
    # "older than the store": L1's new owner and source are taken.
    (tmp_path / "leads.yaml").write_text(
        "shape: leads\ncolumns:\n  lead_id: id\n  created_at: created\n"
        "  owner_id: owner\n  source: source\n"
    )
    (tmp_path / "l1.csv").write_text("id,created,owner,source\nL1,2024-03-01,ana,web\n")
    (tmp_path / "l2.csv").write_text("id,created,owner,source\nL1,2024-03-01,bob,partner\n")
    (tmp_path / "d.csv").write_text(
        "id,name,stage,created,engaged,closed,value,currency,region,segment\n"
        "Y1,Latest,Prospecting,2024-04-10,,,80,USD,north,smb\n"
    )
    store, process = new_project(tmp_path / "p")
    import_table(store, process, tmp_path / "l1.csv", tmp_path / "leads.yaml", options=OPTS)
    import_table(store, process, tmp_path / "d.csv", T / "snapshot.yaml", options=OPTS)
    r = import_table(store, process, tmp_path / "l2.csv", tmp_path / "leads.yaml", options=OPTS)
    assert r.counts["leads"].updated == 1
    assert rows(store, "SELECT owner_id, source FROM leads") == [("bob", "partner")]
    store.close()


def test_a_quarantined_future_date_does_not_date_the_snapshot(tmp_path: Path) -> None:
    # N1 has no date at all: it is dated at the snapshot, the export's newest date.
    # F1's creation date is a typo in 2030, after the import: F1 is quarantined, and
    # must not move the snapshot (and every undated deal, and the log's end) there.
    store, r = _snapshot_rows(
        tmp_path,
        "N1,New,Prospecting,,,,,USD,north,smb",
        "W1,Won,Won,2024-03-03,2024-03-05,2024-04-01,1500,USD,north,smb",
        "F1,Typo,Engaging,2030-10-20,,,100,USD,south,smb",
        "C1,Far,Lost,2024-03-04,,2099-03-09,0,USD,south,smb",
    )
    assert r.observed_until == pd.Timestamp("2024-04-01")
    assert rows(store, "SELECT deal_id, created_at FROM deals ORDER BY 1") == [
        ("N1", pd.Timestamp("2024-04-01").to_pydatetime()),
        ("W1", pd.Timestamp("2024-03-03").to_pydatetime()),
    ]
    # File lines 4 and 5 (the header is line 1), named by their source columns.
    quarantined = {(p.row, p.column) for p in r.problems if p.quarantined}
    assert {(4, "created"), (5, "closed")} <= quarantined
    store.close()


def test_a_snapshot_close_date_is_taken_at_its_word(tmp_path: Path) -> None:
    # W2 is won with no close date: set aside, not closed at its last stage entry.
    # W3 closed (03-01) before it was engaged (03-05): loaded, closed at the entry,
    # with a note saying so.
    store, r = _snapshot_rows(
        tmp_path,
        "W1,Ok,Won,2024-03-03,2024-03-05,2024-04-01,1500,USD,north,smb",
        "W2,Blank,Won,2024-03-03,2024-03-05,,900,USD,north,smb",
        "W3,Early,Won,2024-02-20,2024-03-05,2024-03-01,700,USD,north,smb",
    )
    assert rows(store, "SELECT deal_id, closed_at FROM deals ORDER BY 1") == [
        ("W1", pd.Timestamp("2024-04-01").to_pydatetime()),
        ("W3", pd.Timestamp("2024-03-05").to_pydatetime()),
    ]
    set_aside = [(p.row, p.quarantined) for p in r.problems if "no close date" in p.reason]
    assert set_aside == [(3, True)]
    (note,) = [p for p in r.problems if "last stage entry" in p.reason]
    assert (note.row, note.column, note.quarantined) == (4, "closed", False)
    store.close()


def test_decimal_marks_are_decided_by_the_column_and_the_file(tmp_path: Path) -> None:
    # Whole euros as a German sheet writes them: 6.100 is 6.1 or 6100 by the mark.
    whole = [
        "A,a,Prospecting,2024-03-01,,,6.100,USD,n,s",
        "B,b,Prospecting,2024-03-01,,,850,USD,n,s",
    ]
    amounts = "SELECT deal_id, amount FROM deals ORDER BY 1"
    for case in ("none", "option", "column", "listed", "mixed"):
        (tmp_path / case).mkdir()
    # Nothing decides: a decimal point, and a note that names the column and the option.
    store, r = _snapshot_rows(tmp_path / "none", *whole)
    assert rows(store, amounts) == [("A", 6.1), ("B", 850.0)]
    (note,) = [n for n in r.notes if "6.100" in n]
    assert (
        "column 'value' has numbers such as 6.100 or 6,100 (1 of them)" in note
        and "--decimal-comma" in note
    )
    store.close()
    # The option decides.
    store, process = new_project(tmp_path / "option" / "p")
    (tmp_path / "option" / "s.csv").write_text(
        (tmp_path / "none" / "s.csv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    r = import_table(
        store,
        process,
        tmp_path / "option" / "s.csv",
        T / "snapshot.yaml",
        options=replace(OPTS, decimal_comma=True),
    )
    assert rows(store, amounts) == [("A", 6100.0), ("B", 850.0)]
    assert not [n for n in r.notes if "6.100" in n]
    store.close()
    # A value of the column decides (1.250,50 reads only with a decimal comma); grouping
    # with the narrow no-break space a French sheet uses is read too.
    store, r = _snapshot_rows(
        tmp_path / "column",
        *whole,
        'C,c,Prospecting,2024-03-01,,,"1.250,50",USD,n,s',
        'D,d,Prospecting,2024-03-01,,,"6\u202f100,00",USD,n,s',
    )
    assert rows(store, amounts) == [("A", 6100.0), ("B", 850.0), ("C", 1250.5), ("D", 6100.0)]
    assert not r.problems
    # The choice is said: a value that reads both ways was decided by the others.
    assert [n for n in r.notes if "6.100" in n] == [
        "s.csv: column 'value': 1 numbers such as 6.100 read with a decimal comma "
        "(6.100 as 6100), as 2 of its values read no other way"
    ]
    store.close()
    # Another number column of the file decides (one export, one locale).
    mapping = tmp_path / "listed.yaml"
    mapping.write_text(
        (T / "snapshot.yaml")
        .read_text()
        .replace("  amount: value\n", "  amount: value\n  listed_amount: segment\n")
        .replace("attributes: [segment]\n", "amount_known_at: close\n"),
        encoding="utf-8",
    )
    lines = [
        "id,name,stage,created,engaged,closed,value,currency,region,segment",
        'A,a,Won,2024-03-01,,2024-03-02,6.100,USD,n,"6.200,5"',
        "B,b,Prospecting,2024-03-01,,,850,USD,n,",
    ]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store, process = new_project(tmp_path / "listed" / "p")
    r = import_table(store, process, tmp_path / "l.csv", mapping, options=OPTS)
    assert rows(store, amounts) == [("A", 6100.0), ("B", 850.0)]
    assert "as the file's other number columns show it" in " ".join(r.notes), r.notes
    assert rows(store, "SELECT deal_id, old_value, new_value FROM deal_changes") == [
        ("A", "6200.5", "6100.0")
    ]
    store.close()
    # --decimal-comma beats another column's points (a list price of 99.50, say).
    (tmp_path / "l.csv").write_text(
        "\n".join([lines[0], lines[1].replace('"6.200,5"', "99.50"), lines[2]]) + "\n",
        encoding="utf-8",
    )
    store, process = new_project(tmp_path / "listed" / "q")
    import_table(
        store, process, tmp_path / "l.csv", mapping, options=replace(OPTS, decimal_comma=True)
    )
    assert rows(store, amounts) == [("A", 6100.0), ("B", 850.0)]
    store.close()
    # Both marks in one column: each value read by what decides it, and a note.
    store, r = _snapshot_rows(
        tmp_path / "mixed",
        'E,e,Prospecting,2024-03-01,,,"1,250.5",USD,n,s',
        'F,f,Prospecting,2024-03-01,,,"12,5",USD,n,s',
        'G,g,Prospecting,2024-03-01,,,"0,75",USD,n,s',
    )
    assert rows(store, amounts) == [("E", 1250.5), ("F", 12.5), ("G", 0.75)]
    assert [n for n in r.notes if "mixes decimal commas and points (2 values" in n]
    store.close()


def test_nan_and_infinite_amounts_are_not_numbers(tmp_path: Path) -> None:
    # A pandas or spreadsheet export may write a missing amount as nan, an overflow as
    # inf: loaded as they read, one of them makes every sum of the column NaN.
    store, r = _snapshot_rows(
        tmp_path,
        "A,a,Prospecting,2024-03-01,,,nan,USD,n,s",
        "B,b,Prospecting,2024-03-01,,,Infinity,USD,n,s",
        "C,c,Prospecting,2024-03-01,,,1e400,USD,n,s",
        "D,d,Prospecting,2024-03-01,,,250,USD,n,s",
    )
    assert rows(store, "SELECT deal_id, amount FROM deals ORDER BY 1") == [
        ("A", None),
        ("B", None),
        ("C", None),
        ("D", 250.0),
    ]
    assert rows(store, "SELECT sum(amount_base) FROM deals") == [(250.0,)]
    assert [(p.row, p.column, p.value, p.reason, p.quarantined) for p in r.problems] == [
        (2, "value", "nan", "not a number", False),
        (3, "value", "Infinity", "not a number", False),
        (4, "value", "1e400", "not a number", False),
    ]
    store.close()


def test_a_windows_1252_export_with_euro_amounts_reads_as_written(tmp_path: Path) -> None:
    # Excel's "CSV" on a German Windows: cp1252, semicolons, € after the amount. A
    # detector free to guess anything took it for mac_iceland: € read as Ä, ö as ˆ.
    lines = [
        "deal_id;stage;entered;owner;amount",
        "D1;Prospecting;2024-01-01;Jörg;1.234,50 €",
        "D2;Prospecting;2024-01-05;Jörg;99 €",
    ]
    path = tmp_path / "e.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    assert detect_encoding(path) == "cp1252"
    euro = template_text().replace("currency: USD", "currency: EUR")
    store, process = new_project(tmp_path / "p", euro)
    r = import_table(store, process, path, T / "events.yaml", options=OPTS)
    assert r.problems == ()
    # The € also says which currency the amounts are in (they had loaded as any other).
    assert rows(store, "SELECT deal_id, owner_id, amount, currency FROM deals ORDER BY 1") == [
        ("D1", "Jörg", 1234.5, "EUR"),
        ("D2", "Jörg", 99.0, "EUR"),
    ]
    # The euro sign alone decides no less (it was taken for BOM-less UTF-16).
    path.write_bytes("x\n€ 5\n".encode("cp1252"))
    assert detect_encoding(path) == "cp1252"
    store.close()


def _event_mapping(path: Path, **columns: str) -> None:
    """An event-log mapping of deal_id, stage and entered, plus `columns`."""
    more = "".join(f", {k}: {v}" for k, v in columns.items())
    path.write_text(
        "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered"
        f"{more}}}\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("codec", "owner", "stage"),
    [
        ("cp1251", "Иван Петров", "Переговоры"),  # Cyrillic: read as 1252, "Èâàí Ïåòðîâ"
        ("cp1253", "Γιώργος Παπαδόπουλος", "Προσφορά"),  # Greek
        ("cp1252", "Hélène Dupré", "Négociation"),  # still 1252, which the detector calls 1250
    ],
)
def test_a_windows_export_of_another_script_reads_as_written(
    tmp_path: Path, codec: str, owner: str, stage: str
) -> None:
    # The stage's name in the file's language sits in a column left unmapped.
    text = f"deal_id,stage,entered,owner,step\nD1,Prospecting,2024-01-01,{owner},{stage}\n"
    text += f"D2,Prospecting,2024-01-02,{owner.split()[0]},{stage}\n"
    path = tmp_path / "e.csv"
    path.write_bytes(text.encode(codec))
    assert detect_encoding(path) == codec
    _event_mapping(tmp_path / "m.yaml", owner_id="owner")
    store, process = new_project(tmp_path / "p")
    import_table(store, process, path, tmp_path / "m.yaml", options=OPTS)
    assert rows(store, "SELECT owner_id FROM deals ORDER BY deal_id") == [
        (owner,),
        (owner.split()[0],),
    ]
    store.close()


def test_the_currency_an_amount_names_is_its_currency(tmp_path: Path) -> None:
    # Number reading strips codes and signs: '300 €' and 'EUR 300' had loaded as 300 in
    # the process currency (USD), silently.
    lines = [
        "deal_id,stage,entered,amount",
        "D1,Prospecting,2024-01-01,1200 USD",
        "D2,Prospecting,2024-01-01,EUR 300",
        "D3,Prospecting,2024-01-01,300 €",
        "D4,Prospecting,2024-01-01,£300",
        "D5,Prospecting,2024-01-01,$50",  # a bare $ names several: the process's
        "D6,Prospecting,2024-01-01,US$ 10",
    ]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _event_mapping(tmp_path / "m.yaml", amount="amount")
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError, match=r"for EUR \(2 deals\), GBP \(1 deal\);"):
        import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]  # nothing half-written
    (tmp_path / "fx.csv").write_text(
        "currency,date,rate\nEUR,2024-01-01,1.1\nGBP,2024-01-01,1.25\n"
    )
    opts = replace(OPTS, fx=tmp_path / "fx.csv")
    import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=opts)
    assert rows(store, "SELECT deal_id, amount, currency, amount_base FROM deals ORDER BY 1") == [
        ("D1", 1200.0, "USD", 1200.0),
        ("D2", 300.0, "EUR", pytest.approx(330.0)),
        ("D3", 300.0, "EUR", pytest.approx(330.0)),
        ("D4", 300.0, "GBP", 375.0),
        ("D5", 50.0, "USD", 50.0),
        ("D6", 10.0, "USD", 10.0),
    ]
    store.close()
    # A currency column, when mapped, says it instead.
    (tmp_path / "c.csv").write_text(
        "deal_id,stage,entered,amount,cur\nD1,Prospecting,2024-01-01,300 €,USD\n",
        encoding="utf-8",
    )
    _event_mapping(tmp_path / "c.yaml", amount="amount", currency="cur")
    store, process = new_project(tmp_path / "q")
    import_table(store, process, tmp_path / "c.csv", tmp_path / "c.yaml", options=OPTS)
    assert rows(store, "SELECT amount, currency FROM deals") == [(300.0, "USD")]
    store.close()


def test_a_last_record_with_a_field_too_many_is_set_aside(tmp_path: Path) -> None:
    # An unquoted 1,200.50 on the last line only: the dialect detection took that line
    # for the header and read no row, and the import said the mapping's columns were
    # not in the file ("columns of e.csv: D3, Prospecting, 2024-01-03, $1, 200.50").
    (tmp_path / "e.csv").write_text(
        "deal_id,stage,entered,amount\nD1,Prospecting,2024-01-01,1200\n"
        "D2,Prospecting,2024-01-02,300\nD3,Prospecting,2024-01-03,$1,200.50\n",
        encoding="utf-8",
    )
    _event_mapping(tmp_path / "m.yaml", amount="amount")
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "e.csv", tmp_path / "m.yaml", options=OPTS)
    assert rows(store, "SELECT deal_id, amount FROM deals ORDER BY 1") == [
        ("D1", 1200.0),
        ("D2", 300.0),
    ]
    assert [(p.row, p.column, p.quarantined) for p in r.problems] == [(4, "(record)", True)]
    store.close()


def test_a_header_that_repeats_a_name_is_noted(tmp_path: Path) -> None:
    # Two columns called amount (a report with a converted and an original amount, say)
    # and one called Amount: the engine renames the later ones, so the mapping's amount
    # is the first and a real amount_1 column is read as amount_1_1. It was silent.
    data = tmp_path / "e.csv"
    data.write_text(
        "deal_id,stage,entered,amount,Amount,amount_1,amount\nD1,Prospecting,2024-01-01,5,6,7,8\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "shape: event_log\n"
        "columns: {deal_id: deal_id, stage: stage, entered_at: entered, amount: amount}\n",
        encoding="utf-8",
    )
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    assert rows(store, "SELECT amount FROM deals") == [(5.0,)]
    assert r.notes == (
        "e.csv: the header repeats a name (letter case aside), so columns are read under "
        "other names: 'Amount' (column 5) as 'Amount_1', 'amount_1' (column 6) as "
        "'amount_1_1', 'amount' (column 7) as 'amount_2'; a name given twice means its "
        "first column",
    )
    store.close()


def test_empty_sheet_rows_are_skipped_with_a_note(tmp_path: Path) -> None:
    # A sheet with two empty rows between records (trailing ones the reader never sees):
    # each was quarantined with three "required value is missing" problems.
    frame = pd.DataFrame(
        [
            ["D1", "Prospecting", "2024-01-01", "ana", "100"],
            [None, None, None, None, None],
            [None, None, None, None, None],
            ["D1", "Qualify", "2024-01-02", "ana", None],
        ],
        columns=["deal_id", "stage", "entered", "owner", "amount"],
    )
    frame.to_excel(tmp_path / "e.xlsx", index=False)
    store, process = new_project(tmp_path / "p")
    r = import_table(
        store,
        process,
        tmp_path / "e.xlsx",
        T / "events.yaml",
        options=replace(OPTS, on_error="fail"),
    )
    assert r.problems == ()
    assert r.notes == ("e.xlsx: 2 empty rows skipped, the first on row 3",)
    assert history(store, "D1") == [
        ("lead", "2024-01-01 00:00"),
        ("qualification", "2024-01-02 00:00"),
    ]
    store.close()


def test_amounts_with_any_currency_symbol_read(tmp_path: Path) -> None:
    # Formatted amounts as a spreadsheet saved as CSV writes them: only $, €, £ and ¥
    # were stripped, so these were "not a number" and loaded empty.
    store, r = _snapshot_rows(
        tmp_path,
        'A,a,Prospecting,2024-03-01,,,"R$ 1.234,56",USD,n,s',
        'B,b,Prospecting,2024-03-01,,,"₹1,234.00",USD,n,s',
        'C,c,Prospecting,2024-03-01,,,"1 234,50 ₽",USD,n,s',
        'D,d,Prospecting,2024-03-01,,,"US$1,000.50",USD,n,s',
        "E,e,Prospecting,2024-03-01,,,₩50000,USD,n,s",
    )
    assert r.problems == ()
    assert rows(store, "SELECT deal_id, amount FROM deals ORDER BY 1") == [
        ("A", 1234.56),
        ("B", 1234.0),
        ("C", 1234.5),
        ("D", 1000.5),
        ("E", 50000.0),
    ]
    store.close()


def test_dates_that_read_both_ways_follow_the_file_s_other_date_columns(
    tmp_path: Path,
) -> None:
    # Every created date reads both ways, the close date 25/01/2024 only day first: one
    # export, one locale. The created dates were read month first, so A closed before
    # it was created (quarantined) and B was created on 2 March instead of 3 February.
    store, r = _snapshot_rows(
        tmp_path,
        "A,a,Won,05/01/2024,,25/01/2024,10,USD,n,s",
        "B,b,Prospecting,03/02/2024,,,10,USD,n,s",
    )
    assert r.problems == ()
    assert rows(store, "SELECT deal_id, created_at, closed_at FROM deals ORDER BY 1") == [
        (
            "A",
            pd.Timestamp("2024-01-05").to_pydatetime(),
            pd.Timestamp("2024-01-25").to_pydatetime(),
        ),
        ("B", pd.Timestamp("2024-02-03").to_pydatetime(), None),
    ]
    assert (
        "s.csv: column 'created': 2 of its dates such as 03/04, which read both ways, read "
        "day first (03/04 as 3 April), as the file's other date columns show it"
    ) in r.notes
    store.close()


def test_a_sheet_header_that_repeats_a_name_is_noted(tmp_path: Path) -> None:
    # pandas renames a repeated name amount.1 and the engine Amount (amount in another
    # case) Amount_1: the later columns went into the attributes under names the sheet
    # does not have, without a word.
    frame = pd.DataFrame(
        [["D1", "Prospecting", "2024-01-05", "ana", "5", "6", "7"]],
        columns=["deal_id", "stage", "entered", "owner", "amount", "Amount", "amount"],
    )
    frame.to_excel(tmp_path / "e.xlsx", index=False)
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, tmp_path / "e.xlsx", T / "events.yaml", options=OPTS)
    assert rows(store, "SELECT amount FROM deals") == [(5.0,)]
    assert r.notes == (
        "e.xlsx: the header repeats a name (letter case aside), so columns are read under "
        "other names: 'Amount' (column 6) as 'Amount_1', 'amount' (column 7) as 'amount.1'; "
        "a name given twice means its first column",
    )
    store.close()
