"""Malformed CSV records (a wrong field count, an unclosed or stray quote): set aside
with their line under --on-error quarantine, named when the import fails."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions, import_table
from ingest_util import NOW, history, new_project, rows

MAPPING = "shape: event_log\ncolumns: {deal_id: deal_id, stage: stage, entered_at: entered}\n"
OPTS = ImportOptions(now=NOW)

# Row numbers as a spreadsheet shows them: the header is row 1; the quoted line
# break makes row 3 two lines long.
GOOD_AND_BAD = (
    "deal_id,stage,entered\n"
    "D1,Prospecting,2024-01-01\n"  # row 2
    'D1,"Qua\nlify",2024-01-02\n'  # row 3: a quoted line break, unknown stage name
    "D2,Prospecting\n"  # row 4: a field short
    "D2,Qualify,2024-01-03,extra\n"  # row 5: a field too many
    "D3,Prospecting,2024-01-04\n"  # row 6
    'D3,"Qualify"x,2024-01-05\n'  # row 7: text after a closing quote
    "D3,Qualify,2024-01-06\n"  # row 8
)


def _files(tmp_path: Path, text: str) -> tuple[Path, Path]:
    data, mapping = tmp_path / "events.csv", tmp_path / "map.yaml"
    data.write_text(text, encoding="utf-8")
    mapping.write_text(MAPPING, encoding="utf-8")
    return data, mapping


def test_malformed_records_are_quarantined_and_the_rest_loads(tmp_path: Path) -> None:
    data, mapping = _files(tmp_path, GOOD_AND_BAD.replace('"Qua\nlify"', '"Qualify"'))
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    bad = sorted((p.row, p.column) for p in r.problems if p.quarantined)
    assert bad == [(4, "(record)"), (5, "(record)"), (7, "(record)")]
    assert all("cannot be read as a CSV record" in p.reason for p in r.problems)
    assert r.n_quarantined == 3
    assert history(store, "D1") == [
        ("lead", "2024-01-01 00:00"),
        ("qualification", "2024-01-02 00:00"),
    ]
    assert history(store, "D3") == [
        ("lead", "2024-01-04 00:00"),
        ("qualification", "2024-01-06 00:00"),
    ]
    assert rows(store, "SELECT count(*) FROM deals") == [(2,)]  # D2 had only bad rows
    assert r.quarantine_path is not None
    with (r.quarantine_path / "problems.csv").open(encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    assert [(p["file"], p["row"]) for p in listed] == [
        ("events.csv", "4"),
        ("events.csv", "5"),
        ("events.csv", "7"),
    ]
    assert listed[0]["value"] == "D2,Prospecting"
    with (r.quarantine_path / "events.csv").open(encoding="utf-8") as fh:
        assert [q["row"] for q in csv.DictReader(fh)] == ["4", "5", "7"]
    store.close()


def test_rows_after_a_quoted_line_break_keep_their_numbers(tmp_path: Path) -> None:
    # Row 3 spans two lines; its date cannot be read. The records after it keep the
    # numbers a spreadsheet shows.
    text = GOOD_AND_BAD.replace('"Qua\nlify",2024-01-02', 'Qualify,"2024-01-02\nlater"')
    data, mapping = _files(tmp_path, text)
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    bad = sorted((p.row, p.column) for p in r.problems if p.quarantined)
    assert bad == [(3, "entered"), (4, "(record)"), (5, "(record)"), (7, "(record)")]
    assert history(store, "D1") == [("lead", "2024-01-01 00:00")]
    store.close()


def test_on_error_fail_names_the_record_and_loads_nothing(tmp_path: Path) -> None:
    data, mapping = _files(tmp_path, GOOD_AND_BAD.replace('"Qua\nlify"', '"Qualify"'))
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError) as err:
        import_table(store, process, data, mapping, options=replace(OPTS, on_error="fail"))
    text = str(err.value)
    assert "3 row problem(s); nothing was loaded" in text
    assert "events.csv row 4, (record) = 'D2,Prospecting'" in text
    assert "row 5" in text and "row 7" in text
    assert rows(store, "SELECT count(*) FROM stage_events") == [(0,)]
    store.close()


def test_an_unclosed_quote_is_quarantined_and_the_lines_after_it_load(tmp_path: Path) -> None:
    # An unclosed quote would run on to the next quote (or the end of the file): the
    # records start again on the next line.
    text = (
        "deal_id,stage,entered\n"
        "D1,Prospecting,2024-01-01\n"  # row 2
        'D1,"Qualify,2024-01-02\n'  # row 3: unclosed
        "D2,Prospecting,2024-01-03\n"  # row 4
        'D2,"Qualify,2024-01-04\n'  # row 5: unclosed
        "D2,Qualify,2024-01-05\n"  # row 6
        "D3,Prospecting\n"  # row 7: a field short
        "D3,Prospecting,2024-01-07\n"  # row 8
        'D4,"Qualify,2024-01-08\n'  # row 9: unclosed up to the end of the file
    )
    data, mapping = _files(tmp_path, text)
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    assert [(p.row, p.value, p.quarantined) for p in r.problems] == [
        (3, 'D1,"Qualify,2024-01-02', True),
        (5, 'D2,"Qualify,2024-01-04', True),
        (7, "D3,Prospecting", True),
        (9, 'D4,"Qualify,2024-01-08', True),
    ]
    assert "unterminated quote" in r.problems[0].reason
    assert history(store, "D1") == [("lead", "2024-01-01 00:00")]
    assert history(store, "D2") == [
        ("lead", "2024-01-03 00:00"),
        ("qualification", "2024-01-05 00:00"),
    ]
    assert history(store, "D3") == [("lead", "2024-01-07 00:00")]
    store.close()


def test_records_of_empty_fields_are_skipped_with_a_note(tmp_path: Path) -> None:
    # A spreadsheet saved as CSV writes ",," for each formatted but empty row, here
    # between records and at the end. Each was quarantined with three "required value
    # is missing" problems, and --on-error fail loaded nothing for them.
    text = (
        "deal_id,stage,entered\n"
        "D1,Prospecting,2024-01-01\n"  # row 2
        ",,\n"  # row 3
        "D1,Qualify,2024-01-02\n"  # row 4
        "D2,Prospecting,\n"  # row 5: a missing date, quarantined
        ",,\n,,\n"  # rows 6 and 7
    )
    data, mapping = _files(tmp_path, text)
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    assert [(p.row, p.column) for p in r.problems] == [(5, "entered")]
    assert "events.csv: 3 empty records (delimiters only) skipped, the first on row 3" in r.notes
    assert history(store, "D1") == [
        ("lead", "2024-01-01 00:00"),
        ("qualification", "2024-01-02 00:00"),
    ]
    store.close()
    data.write_text(text.replace("D2,Prospecting,\n", ""), encoding="utf-8")
    store, process = new_project(tmp_path / "q")
    r = import_table(store, process, data, mapping, options=replace(OPTS, on_error="fail"))
    assert rows(store, "SELECT count(*) FROM stage_events") == [(2,)]
    store.close()


def test_a_record_of_several_megabytes_is_read(tmp_path: Path) -> None:
    # A notes cell holding a pasted mail thread of 3 MB, with line breaks and accents:
    # the record was set aside as "Maximum line size of 2000000 bytes exceeded".
    thread = "Re: propuesta — ver adjunto, línea larga\n" * 75_000
    data = tmp_path / "events.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["deal_id", "stage", "entered", "notes"])
        out.writerow(["D1", "Prospecting", "2024-01-01", thread])
        out.writerow(["D1", "Qualify", "2024-01-02", ""])
    assert data.stat().st_size > 3_000_000
    mapping = tmp_path / "map.yaml"
    mapping.write_text(MAPPING + "attributes: rest\n", encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    assert r.problems == ()
    assert history(store, "D1") == [
        ("lead", "2024-01-01 00:00"),
        ("qualification", "2024-01-02 00:00"),
    ]
    assert rows(store, "SELECT length(attributes->>'notes') FROM deals") == [(len(thread),)]
    store.close()


def test_a_short_record_under_a_header_that_repeats_a_name_is_set_aside(
    tmp_path: Path,
) -> None:
    # A header naming 'note' twice stopped the lenient read: one short record made the
    # whole file "cannot read as CSV ...; check the delimiter and quoting".
    text = (
        "deal_id,stage,entered,note,note\n"
        "D1,Prospecting,2024-01-01,a,b\n"
        "D2,Prospecting\n"  # row 3: fields short
        "D1,Qualify,2024-01-02,c,d\n"
    )
    data, mapping = _files(tmp_path, text)
    store, process = new_project(tmp_path / "p")
    r = import_table(store, process, data, mapping, options=OPTS)
    assert [(p.row, p.column, p.quarantined) for p in r.problems] == [(3, "(record)", True)]
    assert any("'note' (column 5) as 'note_1'" in n for n in r.notes)
    assert history(store, "D1") == [
        ("lead", "2024-01-01 00:00"),
        ("qualification", "2024-01-02 00:00"),
    ]
    store.close()
