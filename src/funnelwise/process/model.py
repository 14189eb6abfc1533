"""The sales process model: pipelines, ordered stages and outcomes.

A process is designed from the buyer's journey outward: every stage names the
buyer's step, what the buyer needs to learn, the content that helps, the exit
criteria a deal must meet before it moves on, and a target time in the stage.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelwise.errors import UnknownPipelineError

OutcomeKind = Literal["won", "lost", "no_decision"]
StageKind = Literal["open", "won", "lost", "no_decision"]
OUTCOME_KINDS: tuple[OutcomeKind, ...] = ("won", "lost", "no_decision")

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


def normalize_name(text: str) -> str:
    """Fold a stage name for matching: case-, accent- and spacing-insensitive."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().replace("_", " ").replace("-", " ").split())


class _Strict(BaseModel):
    # No infinite or NaN numbers: a target of .inf days would pass `gt=0` and mean
    # that no deal is ever over target.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ExitCriteria(_Strict):
    """What must be true before a deal leaves the stage."""

    fields: tuple[str, ...] = ()
    checklist: tuple[str, ...] = ()


class Stage(_Strict):
    """One open stage of a pipeline, in the buyer's terms."""

    id: str = Field(pattern=_ID_PATTERN)
    name: str = ""
    aliases: tuple[str, ...] = ()
    buyer_step: str | None = None
    learn: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    exit_criteria: ExitCriteria = ExitCriteria()
    # Days a visit should take; timing and bottlenecks hold each visit to it.
    target_days: float | None = Field(default=None, gt=0)
    probability: float | None = Field(default=None, ge=0, le=1)

    @property
    def label(self) -> str:
        """Display name: the name if given, else the id."""
        return self.name or self.id


class Outcome(_Strict):
    """A terminal stage: won, lost or no decision."""

    id: str = Field(pattern=_ID_PATTERN)
    name: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Display name: the name if given, else the id."""
        return self.name or self.id


class Outcomes(_Strict):
    """The three ways a deal ends. Won and lost are required."""

    won: Outcome
    lost: Outcome
    no_decision: Outcome = Outcome(id="no-decision", name="No decision")


class Pipeline(_Strict):
    """An ordered list of stages for one channel or offering."""

    id: str = Field(pattern=_ID_PATTERN)
    name: str = ""
    stages: tuple[Stage, ...] = Field(min_length=1)
    outcomes: Outcomes

    @property
    def label(self) -> str:
        """Display name: the name if given, else the id."""
        return self.name or self.id

    @property
    def stage_ids(self) -> tuple[str, ...]:
        """Open stage ids in process order."""
        return tuple(s.id for s in self.stages)

    def outcome_id(self, kind: OutcomeKind) -> str:
        """The stage id used for an outcome kind."""
        outcome: Outcome = getattr(self.outcomes, kind)
        return outcome.id

    def stage_table(self) -> list[dict[str, object]]:
        """One row per stage (open stages then outcomes) with position and kind."""
        rows: list[dict[str, object]] = []
        for pos, s in enumerate(self.stages):
            rows.append(
                {
                    "pipeline_id": self.id,
                    "stage_id": s.id,
                    "name": s.label,
                    "position": pos,
                    "kind": "open",
                    "target_days": s.target_days,
                    "probability": s.probability,
                }
            )
        n = len(self.stages)
        for k, kind in enumerate(OUTCOME_KINDS):
            o: Outcome = getattr(self.outcomes, kind)
            rows.append(
                {
                    "pipeline_id": self.id,
                    "stage_id": o.id,
                    "name": o.label,
                    "position": n + k,
                    "kind": kind,
                    "target_days": None,
                    "probability": 1.0 if kind == "won" else 0.0,
                }
            )
        return rows

    def alias_map(self) -> dict[str, str]:
        """Normalised name -> stage id, over ids, names and aliases of every stage."""
        mapping: dict[str, str] = {}
        named: list[tuple[str, str, tuple[str, ...]]] = [
            (s.id, s.name, s.aliases) for s in self.stages
        ]
        for kind in OUTCOME_KINDS:
            o: Outcome = getattr(self.outcomes, kind)
            named.append((o.id, o.name, o.aliases))
        for sid, name, aliases in named:
            for text in (sid, name, *aliases):
                if text:
                    mapping.setdefault(normalize_name(text), sid)
        return mapping


class Process(_Strict):
    """A whole sales process: name, base currency and one or more pipelines."""

    name: str
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    pipelines: tuple[Pipeline, ...] = Field(min_length=1)

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @property
    def default_pipeline(self) -> Pipeline:
        """The first pipeline, used when a source names none."""
        return self.pipelines[0]

    def pipeline(self, pipeline_id: str) -> Pipeline:
        """The pipeline with this id; raises UnknownPipelineError (an InputError and a
        KeyError) naming the valid ids."""
        for p in self.pipelines:
            if p.id == pipeline_id:
                return p
        valid = ", ".join(p.id for p in self.pipelines)
        raise UnknownPipelineError(f"no pipeline {pipeline_id!r}; valid pipelines: {valid}")

    def stage_rows(self) -> list[dict[str, object]]:
        """The canonical `stages` table rows for every pipeline."""
        return [row for p in self.pipelines for row in p.stage_table()]

    def pipeline_rows(self) -> list[dict[str, object]]:
        """The canonical `pipelines` table rows."""
        return [
            {"pipeline_id": p.id, "name": p.label, "position": i}
            for i, p in enumerate(self.pipelines)
        ]
