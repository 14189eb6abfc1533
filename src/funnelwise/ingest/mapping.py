"""Source stage and pipeline names -> process ids, through the process aliases.

Names are matched case-, accent- and spacing-insensitively (`Pipeline.alias_map`).
Names that match nothing stop the import with each name and how many rows use
it; `suggestion_yaml` writes the process.yaml fragment to fill in, with a guess
for each name where one is close.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
import yaml

from funnelwise.errors import SourceImportError, UnknownPipelineError
from funnelwise.process import OUTCOME_KINDS, Pipeline, Process, normalize_name

# Words a status column uses for a deal still open.
OPEN_WORDS = frozenset({"open", "active", "in progress", "ongoing", "abierta", "ouvert", "offen"})
# Outcome words understood in any pipeline, besides the outcome stages' own names.
_OUTCOME_WORDS = {
    "won": "won",
    "win": "won",
    "closed won": "won",
    "lost": "lost",
    "loss": "lost",
    "closed lost": "lost",
    "no decision": "no_decision",
    "nodecision": "no_decision",
    "closed no decision": "no_decision",
    "abandoned": "no_decision",
    "cancelled": "no_decision",
    "canceled": "no_decision",
}


@dataclass(frozen=True)
class Unmapped:
    """A source name that matches no stage of the pipeline, with its row count."""

    pipeline_id: str
    name: str
    rows: int


def _pipeline_keys(process: Process) -> dict[str, str]:
    keys: dict[str, str] = {}
    for p in process.pipelines:
        for text in (p.id, p.name):
            if text:
                keys.setdefault(normalize_name(text), p.id)
    return keys


def map_pipelines(
    process: Process, names: Sequence[tuple[str | None, int]], fixed: str | None
) -> dict[str | None, str]:
    """Source pipeline name -> pipeline id (None -> the fixed or default pipeline).

    Raises SourceImportError naming every unknown pipeline and its row count.
    """
    if fixed is not None:
        try:
            process.pipeline(fixed)
        except UnknownPipelineError as exc:
            raise SourceImportError(str(exc)) from None
    default = fixed or process.default_pipeline.id
    keys = _pipeline_keys(process)
    out: dict[str | None, str] = {None: default}
    unknown: list[tuple[str, int]] = []
    for name, rows in names:
        if name is None:
            continue
        pid = keys.get(normalize_name(name))
        if pid is None:
            unknown.append((name, rows))
        else:
            out[name] = pid
    if unknown:
        listed = ", ".join(f"{n!r} ({r} rows)" for n, r in unknown)
        valid = ", ".join(p.id for p in process.pipelines)
        raise SourceImportError(
            f"pipelines not in process.yaml: {listed}; process pipelines: {valid}. "
            "Add each as a pipeline (its id or name must match), or import with a fixed "
            "pipeline"
        )
    return out


def map_stages(
    process: Process, names: Iterable[tuple[str, str, int]]
) -> tuple[list[tuple[str, str, str, str, int]], list[Unmapped]]:
    """Map (pipeline_id, source name, rows) triples.

    Returns rows (pipeline_id, name, stage_id, kind, position) for the names that
    map, and the names that do not.
    """
    kinds: dict[tuple[str, str], tuple[str, int]] = {}
    maps: dict[str, dict[str, str]] = {}
    for p in process.pipelines:
        maps[p.id] = p.alias_map()
        for row in p.stage_table():
            kinds[(p.id, str(row["stage_id"]))] = (str(row["kind"]), int(str(row["position"])))
    mapped: list[tuple[str, str, str, str, int]] = []
    unmapped: list[Unmapped] = []
    for pid, name, rows in names:
        sid = maps[pid].get(normalize_name(name))
        if sid is None:
            unmapped.append(Unmapped(pid, name, rows))
            continue
        kind, position = kinds[(pid, sid)]
        mapped.append((pid, name, sid, kind, position))
    return mapped, unmapped


def map_outcomes(
    process: Process, names: Iterable[tuple[str, str, int]]
) -> tuple[list[tuple[str, str, str | None]], list[Unmapped]]:
    """Map status values such as won / lost / open to (pipeline_id, value, outcome kind)."""
    mapped: list[tuple[str, str, str | None]] = []
    unmapped: list[Unmapped] = []
    for pid, name, rows in names:
        pipeline = process.pipeline(pid)
        key = normalize_name(name)
        if key in OPEN_WORDS:
            mapped.append((pid, name, None))
            continue
        kind = _OUTCOME_WORDS.get(key) or _outcome_kind(pipeline, key)
        if kind is None:
            unmapped.append(Unmapped(pid, name, rows))
        else:
            mapped.append((pid, name, kind))
    return mapped, unmapped


def _outcome_kind(pipeline: Pipeline, key: str) -> str | None:
    sid = pipeline.alias_map().get(key)
    for kind in OUTCOME_KINDS:
        if sid is not None and pipeline.outcome_id(kind) == sid:
            return kind
    return None


def stage_map_table(rows: Sequence[tuple[str, str, str, str, int]]) -> pa.Table:
    """The mapping rows as an Arrow table (pipeline_id, stage, stage_id, kind, position)."""
    cols: list[tuple[object, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 5
    return pa.table(
        {
            "pipeline_id": pa.array(cols[0], pa.string()),
            "stage": pa.array(cols[1], pa.string()),
            "stage_id": pa.array(cols[2], pa.string()),
            "kind": pa.array(cols[3], pa.string()),
            "position": pa.array(cols[4], pa.int32()),
        }
    )


def _guess(pipeline: Pipeline, name: str) -> str | None:
    options = pipeline.alias_map()
    close = difflib.get_close_matches(normalize_name(name), list(options), n=1, cutoff=0.6)
    return options[close[0]] if close else None


def suggestion_yaml(process: Process, unmapped: Sequence[Unmapped], *, source: str) -> str:
    """A process.yaml fragment listing each unmapped name as an alias to place."""
    lines = [
        f"# Stage names in {source} that match no stage of process.yaml.",
        "# Move each alias to the stage it means (guesses are marked), then merge these",
        "# aliases into process.yaml and import again.",
    ]
    if not unmapped:
        lines.append("# Every stage name matches a stage: nothing to add.")
        return "\n".join(lines) + "\n"
    pipelines: list[dict[str, object]] = []
    for p in process.pipelines:
        names = [u for u in unmapped if u.pipeline_id == p.id]
        if not names:
            continue
        by_stage: dict[str, list[str]] = {}
        for u in sorted(names, key=lambda u: -u.rows):
            by_stage.setdefault(_guess(p, u.name) or "TODO", []).append(u.name)
        stages = [{"id": sid, "aliases": aliases} for sid, aliases in by_stage.items()]
        pipelines.append({"id": p.id, "stages": stages})
    body = yaml.safe_dump({"pipelines": pipelines}, sort_keys=False, allow_unicode=True)
    counts = [f"#   {u.name!r}: {u.rows} rows (pipeline {u.pipeline_id})" for u in unmapped]
    return "\n".join([*lines, "# Rows per name:", *counts, body])


def unmapped_error(unmapped: Sequence[Unmapped], *, source: str, what: str = "stage") -> str:
    """The message that stops an import on unmapped names."""
    top = sorted(unmapped, key=lambda u: -u.rows)
    listed = "; ".join(f"{u.name!r} ({u.rows} rows, pipeline {u.pipeline_id})" for u in top[:20])
    more = f"; and {len(top) - 20} more" if len(top) > 20 else ""
    return (
        f"{len(top)} {what} name(s) in {source} match no stage of process.yaml: {listed}{more}. "
        "Add each as an alias of a stage in process.yaml, or run the import again with "
        "--suggest-mapping FILE to get a fragment to fill in"
    )
