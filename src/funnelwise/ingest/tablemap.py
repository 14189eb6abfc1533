"""The mapping file of a table import: which source column is which canonical field.

A mapping file is YAML, checked strictly (unknown keys are errors, reported
with file and line). Three shapes:

- `event_log`: one row per stage entry (`deal_id`, `stage`, `entered_at`;
  deal fields such as `amount` or `owner_id` may repeat on every row, the
  deal's last non-empty value counts, and an amount, expected close date or
  owner that moves from one row to the next is a change at its row's time);
- `snapshot`: one row per deal with its current `stage` and dates; stage
  events are created only for what is known: `stage_dates` columns (the date a
  deal entered a stage), the current stage, and the outcome at `closed_at`;
- `leads`: one row per lead (`lead_id`, `created_at`, conversion fields).

`joins` add columns from other files (relative to the source file) by key,
for example the won date of a lead from a second export.

    shape: snapshot
    columns: {deal_id: opportunity_id, stage: deal_stage, created_at: engage_date,
              closed_at: close_date, amount: close_value, owner_id: sales_agent}
    stage_dates: {needs-assessment: engage_date}
    created_at_missing: snapshot   # deals without a creation date: dated at the export

An amount's currency is the `currency` column's when one is mapped; else the one
the amount itself names (`EUR 300`, `300 €`, `R$ 1.200`), else the mapping's
`currency:`, else the process's. Amounts in another currency than the process's
are converted with the `--fx` rates; without a rate the import stops and names
the currencies.

`amount_known_at: close` (snapshot only) says the amount column holds the value
booked at the close (an export's final close value): a closed deal's amount is
then recorded as an amount change at its close, so the log as of an earlier
date does not show it. Before the close the amount is `listed_amount` when the
mapping gives one (a list price, for example from a joined products file), else
unknown; an open deal without a booked value carries its listed amount.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from funnelwise.errors import Problem, ProcessError, SourceImportError
from funnelwise.process.loader import (
    Loc,
    _construct,
    _fmt,
    _line_for,
    _pydantic_problems,
    yaml_problem,
)
from funnelwise.store.schema import TABLES

Shape = Literal["event_log", "snapshot", "leads"]

# Deal columns a source may give; the rest are derived (outcome, amount_base, ...).
_DERIVED = {"deal_id", "pipeline_id", "closed_at", "outcome", "amount_base", "attributes"}
DEAL_FIELDS = (
    *(c.name for c in TABLES["deals"] if c.name not in _DERIVED | {"version", "origin"}),
    "pipeline",
)
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # shape: (required fields, optional fields)
    "event_log": (("deal_id", "stage", "entered_at"), ("actor_id", "order", *DEAL_FIELDS)),
    "snapshot": (("deal_id", "stage"), ("closed_at", "outcome", "listed_amount", *DEAL_FIELDS)),
    "leads": (
        ("lead_id", "created_at"),
        (
            "source",
            "campaign_id",
            "owner_id",
            "converted_deal_id",
            "converted_at",
            "disqualified_at",
        ),
    ),
}
KINDS = {
    "entered_at": "timestamp",
    "created_at": "timestamp",
    "closed_at": "timestamp",
    "converted_at": "timestamp",
    "disqualified_at": "timestamp",
    "expected_close_date": "date",
    "amount": "number",
    "listed_amount": "number",
    "order": "number",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Join(_Strict):
    """Columns from another file, matched on a key (left join: rows without a match stay)."""

    file: str
    on: str  # column of the main file
    right_on: str | None = None  # column of the joined file (default: same name as `on`)
    columns: dict[str, str] = {}  # canonical field -> column of the joined file
    attributes: tuple[str, ...] = ()
    # loose: keys match ignoring case, spaces and punctuation ('GTXPro' = 'GTX Pro')
    match: Literal["exact", "loose"] = "exact"


class TableMapping(_Strict):
    """How a CSV, Parquet or Excel table maps to canonical fields."""

    shape: Shape
    columns: dict[str, str]
    stage_dates: dict[str, str] = {}
    attributes: tuple[str, ...] | Literal["rest"] = ()
    pipeline: str | None = None
    currency: str | None = None
    dayfirst: bool | None = None
    date_format: str | None = None
    timezone: str | None = None
    created_at_missing: Literal["quarantine", "snapshot"] = "quarantine"
    # close: the amount column is the value booked at the close (see the module docstring)
    amount_known_at: Literal["creation", "close"] = "creation"
    snapshot_at: dt.datetime | None = None
    joins: tuple[Join, ...] = ()
    sheet: str | None = None
    delimiter: str | None = None
    encoding: str | None = None


def _semantic(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    shape = data.get("shape")
    if shape not in FIELDS:
        return out
    required, optional = FIELDS[shape]
    allowed = (*required, *optional)
    mapped: dict[str, Any] = {}
    if isinstance(data.get("columns"), dict):
        mapped.update(data["columns"])
    for j, join in enumerate(data.get("joins") or []):
        if isinstance(join, dict) and isinstance(join.get("columns"), dict):
            for key in join["columns"]:
                if key not in allowed:
                    out.append((("joins", j, "columns", key), _unknown_field(key, shape, allowed)))
            mapped.update(join["columns"])
    for key in data.get("columns") or {}:
        if key not in allowed:
            out.append((("columns", key), _unknown_field(key, shape, allowed)))
    for key in required:
        if key not in mapped and not (key == "stage" and "outcome" in mapped):
            out.append((("columns",), f"maps no column to {key!r}, which a {shape} needs"))
    if data.get("stage_dates") and shape != "snapshot":
        out.append((("stage_dates",), "stage_dates apply to the snapshot shape only"))
    if data.get("amount_known_at") == "close":
        if shape != "snapshot":
            out.append((("amount_known_at",), "amount_known_at applies to the snapshot shape only"))
        elif "amount" not in mapped:
            out.append((("amount_known_at",), "amount_known_at: close needs an amount column"))
    elif "listed_amount" in mapped:
        out.append((("columns", "listed_amount"), "listed_amount needs amount_known_at: close"))
    return out


def _unknown_field(key: str, shape: str, allowed: tuple[str, ...]) -> str:
    return f"{key!r} is not a field of a {shape}; fields: {', '.join(allowed)}"


def parse_mapping(text: str, file: str = "mapping.yaml") -> tuple[TableMapping, dict[Loc, int]]:
    """Validate mapping YAML; returns the mapping and the line of each key path.

    Raises SourceImportError listing every problem with its line.
    """

    def fail(problems: list[Problem]) -> SourceImportError:
        head = f"{len(problems)} problem(s) in the mapping file:"
        return SourceImportError("\n".join([head, *(f"  - {p}" for p in problems)]))

    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise fail([yaml_problem(exc, file, text)]) from exc
    if node is None:
        raise fail([Problem("", "the file is empty", file, 1)])
    lines: dict[Loc, int] = {}
    try:
        data = _construct(node, (), lines, file)
    except ProcessError as exc:  # a key given twice, a value YAML cannot build
        raise fail(exc.problems) from None
    if not isinstance(data, dict):
        raise fail([Problem("", "expected a mapping at the top level", file, 1)])
    problems = [
        Problem(_fmt(loc), msg, file, _line_for(loc, lines)) for loc, msg in _semantic(data)
    ]
    try:
        mapping = TableMapping.model_validate(data)
    except ValidationError as err:
        hint = "see `funnelwise init` for the schema"
        found = [
            replace(p, message=p.message.replace(hint, "see the mapping files in examples/"))
            for p in _pydantic_problems(err, lines, file, TableMapping)
        ]
        problems = found + problems
    if problems:
        raise fail(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return mapping, lines


def load_mapping(path: str | Path) -> tuple[TableMapping, dict[Loc, int]]:
    """Read and validate a mapping file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceImportError(f"{p}: mapping file not found") from None
    return parse_mapping(text, str(p))


def where(file: str, lines: dict[Loc, int], loc: Loc) -> str:
    """`mapping.yaml:12` for a key path of the mapping file."""
    line = _line_for(loc, lines)
    return f"{file}:{line}" if line else file
