"""Tables, cells and CSV as the CLI prints them (`funnelwise.cli.render`)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from funnelwise.analytics.result import CUT_MIN, WRAP_AFTER, cell_text, fit_widths
from funnelwise.cli import render
from funnelwise.cli.render import OutputFormat, print_frame

IMPORT_ID = "20261207T025951-table-6f427f"


def _printed(frame: pd.DataFrame, width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """What print_frame shows on a terminal `width` columns wide."""
    out = Console(width=width, file=io.StringIO())
    monkeypatch.setattr(render, "console", out)
    print_frame(frame, OutputFormat.table, title="imports")
    text: str = out.file.getvalue()  # type: ignore[attr-defined]
    return text


def test_numbers_and_ids_stay_whole_on_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame(
        {
            "import_id": [IMPORT_ID],
            "source": ["table"],
            "loaded": [1234567],
            "note": ["the stage names were matched through the aliases of the process"],
        }
    )
    text = _printed(frame, 80, monkeypatch)
    assert IMPORT_ID in text and "1,234,567" in text
    # The sentence wraps at spaces instead of being squeezed out.
    assert "aliases" in text and "process" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_zero_prints_as_a_whole_number(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"segment": ["web"], "expected": [2576.4], "p10": [0.0], "p50": [3.25]})
    text = _printed(frame, 80, monkeypatch)
    assert "0.000" not in text and " 0 " in text and "2,576" in text and "3.25" in text


def test_lists_read_as_text_in_tables_and_csv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cell_text(["197219", "197437"]) == "197219, 197437"
    assert cell_text([]) == "–"
    frame = pd.DataFrame({"check": ["a", "b"], "examples": [["197219", "197437"], []]})
    assert "['" not in _printed(frame, 80, monkeypatch)
    print_frame(frame, OutputFormat.csv)
    assert capsys.readouterr().out.splitlines() == ["check,examples", 'a,"197219, 197437"', "b,"]


def test_an_empty_table_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _printed(pd.DataFrame({"import_id": [], "loaded": []}), 80, monkeypatch)
    assert text.splitlines() == ["imports", "(no rows)"]


def test_fit_widths_shrinks_headers_and_sentences_before_cutting_numbers() -> None:
    # Headers of 12 over cells of 3, a sentence of 60, a 20-character id and a number.
    headers, longest = [12, 12, 4, 2, 6], [3, 3, 60, 20, 11]
    numeric = [True, True, False, False, True]
    assert fit_widths(headers, longest, numeric, 200) == [12, 12, 60, 20, 11]
    tight = fit_widths(headers, longest, numeric, 80)
    assert sum(tight) <= 80 and tight[2] >= WRAP_AFTER and tight[3:] == [20, 11]
    # Headers fold to CUT_MIN, the sentence narrows to 12, then the id is cut, not the number.
    assert fit_widths(headers, longest, numeric, 45) == [6, 6, 12, 10, 11]
    # Past every floor the widths stay there (the terminal crops) instead of vanishing.
    assert fit_widths(headers, longest, numeric, 10) == [CUT_MIN, CUT_MIN, 12, CUT_MIN, CUT_MIN]


def test_intervals_and_names_wrap_at_spaces_before_anything_is_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Six interval columns and a two-word name: too wide for 90 columns on one line.
    cells = {f"rate_{i}": ["89.8% [87–92]", "100.0% [100–100]"] for i in range(6)}
    frame = pd.DataFrame({"name": ["Needs assessment", "Lead"], **cells})
    text = _printed(frame, 90, monkeypatch)
    assert "…" not in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 90
    # Each estimate and its interval stay whole, on lines of their own.
    assert sum(line.count("[100–100]") for line in lines) == 6
    assert sum(line.count("100.0%") for line in lines) == 6
    assert any("Needs" in line and "assessment" not in line for line in lines)


def test_a_table_that_must_cut_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({f"value_{i}": [245_812_345.0] for i in range(12)})
    text = _printed(frame, 80, monkeypatch)
    assert "245,812,345" not in text and "│ 245" in text
    assert "… marks cells cut to fit 80 columns" in " ".join(text.split())
    wide = _printed(frame, 250, monkeypatch)
    assert "245,812,345" in wide and "marks cells cut" not in wide


def test_folded_headers_break_after_underscores(monkeypatch: pytest.MonkeyPatch) -> None:
    # 33 columns leave 26 characters of text: 20 for the id, 6 for the header.
    frame = pd.DataFrame({"still_in_stage": [49], "deal_id": ["x" * 20]})
    lines = _printed(frame, 33, monkeypatch).splitlines()
    header = [line.split("┃")[1].strip() for line in lines if line.startswith("┃")]
    assert [h for h in header if h] == ["still_", "in_", "stage"]


def test_an_empty_frame_with_dates_prints_as_csv_without_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `funnelwise imports -f csv` on a project that has had no import yet.
    frame = pd.DataFrame(
        {"import_id": pd.Series([], dtype=str), "started_at": pd.Series([], dtype="datetime64[us]")}
    )
    print_frame(frame, OutputFormat.csv)
    assert capsys.readouterr().out.splitlines() == ["import_id,started_at"]


def test_instants_print_to_the_second_and_dates_alone() -> None:
    assert cell_text(pd.Timestamp("2026-12-07 18:40:43.573536")) == "2026-12-07 18:40:43"
    assert cell_text(pd.Timestamp("2024-12-30")) == "2024-12-30"
    assert cell_text(pd.NaT) == "–"


def test_a_shared_column_is_said_once_under_its_table() -> None:
    from typing import ClassVar

    from funnelwise.analytics.result import Result

    class Scored(Result):
        shared: ClassVar[tuple[str, ...]] = ("rows", "base_rate")
        percent: ClassVar[frozenset[str]] = frozenset({"base_rate"})

    same = pd.DataFrame(
        {"scorer": ["a", "b"], "rows": [4366, 4366], "base_rate": [0.375, 0.375], "auc": [0.7, 0.6]}
    )
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(Scored({"metrics": same}))
    text = console.export_text()
    assert "every row: rows 4,366; base_rate 37.5%" in " ".join(text.split())
    assert "4,366 │" not in text and "base_rate ┃" not in text
    # Where the rows differ, the column stays in the table.
    differ = same.assign(rows=[4366, 4000])
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(Scored({"metrics": differ}))
    text = console.export_text()
    assert "4,000 │" in text and "every row: base_rate 37.5%" in " ".join(text.split())
