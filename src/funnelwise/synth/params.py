"""The true parameters of the synthetic CRM: what the generator draws from.

Everything here is a plain frozen value, so a `SynthParams` can be written to
JSON next to the data it produced and compared with what the analyses
estimate. The defaults describe a mid-sized B2B sales team on the bundled
process (lead → qualification → needs assessment → proposal → negotiation →
closing; won / lost / no decision).

Segments are the cross product of source × product × region × owner skill.
From each open stage a deal makes one of five moves — advance one stage,
skip one stage, go back one stage, lost, no decision — with the base
probabilities of `move_probs`, shifted on the log-odds scale by the
segment's factors (a positive shift makes progress more likely). Advancing
from `closing`, or skipping from `negotiation`, is a win.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PIPELINE_ID = "new-business"
STAGES: tuple[str, ...] = (
    "lead",
    "qualification",
    "needs-assessment",
    "proposal",
    "negotiation",
    "closing",
)
OUTCOME_STAGES: tuple[str, ...] = ("won", "lost", "no-decision")
OUTCOMES: tuple[str, ...] = ("won", "lost", "no_decision")  # deals.outcome values
MOVES: tuple[str, ...] = ("advance", "skip", "back", "lost", "no_decision")
N_OPEN = len(STAGES)
N_STATES = N_OPEN + len(OUTCOME_STAGES)  # open stages, then won, lost, no-decision
WON, LOST, NO_DECISION = N_OPEN, N_OPEN + 1, N_OPEN + 2
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class PlantedChange:
    """A process change that takes effect on a date, for before/after experiments.

    A deal that enters `stage` at or after the change date advances with its
    log-odds raised by `advance_logit` (the mix-weighted rise in probability is
    reported in the truth); a visit to `faster_stage` entered at or after the
    date lasts `duration_factor` times as long (a scale change of its gamma
    distribution). The date is `date` if given, else `at_fraction` of the way
    through the observation window (rounded down to a day).
    """

    stage: str = "proposal"
    advance_logit: float = 0.6
    faster_stage: str = "negotiation"
    duration_factor: float = 0.75
    at_fraction: float = 0.6
    date: str | None = None

    def __post_init__(self) -> None:
        for name in ("stage", "faster_stage"):
            value = getattr(self, name)
            if value not in STAGES:
                raise ValueError(f"PlantedChange.{name}: {value!r} is not one of {STAGES}")
        if not self.duration_factor > 0.0:
            raise ValueError(
                f"PlantedChange.duration_factor must be > 0 (got {self.duration_factor})"
            )
        if not 0.0 <= self.at_fraction <= 1.0:
            raise ValueError(
                f"PlantedChange.at_fraction must be in [0, 1] (got {self.at_fraction})"
            )


@dataclass(frozen=True)
class SynthParams:
    """The true parameters of a synthetic data set. All days are calendar days.

    Probabilities in `*_mix` tuples are normalised before use; `*_shift`
    tuples are log-odds shifts on progress moves (advance and skip), aligned
    with the names they follow.
    """

    # -- segments ----------------------------------------------------------------
    sources: tuple[str, ...] = ("web", "referral", "partner", "outbound", "event")
    source_mix: tuple[float, ...] = (0.35, 0.15, 0.15, 0.20, 0.15)
    source_shift: tuple[float, ...] = (0.0, 0.35, 0.2, -0.3, -0.1)
    # Share of a source's deals created directly in qualification (not lead).
    source_start_qualified: tuple[float, ...] = (0.05, 0.35, 0.30, 0.0, 0.10)
    products: tuple[str, ...] = ("starter", "pro", "enterprise")
    product_mix: tuple[float, ...] = (0.4, 0.4, 0.2)
    product_shift: tuple[float, ...] = (0.15, 0.0, -0.15)
    # Log-weight shift of the no-decision move: big deals stall more often.
    product_no_decision_shift: tuple[float, ...] = (-0.2, 0.0, 0.4)
    # Multiplier of every stage's duration scale.
    product_time_scale: tuple[float, ...] = (0.7, 1.0, 1.5)
    regions: tuple[str, ...] = ("na", "emea", "apac", "latam")
    region_mix: tuple[float, ...] = (0.45, 0.30, 0.15, 0.10)
    region_shift: tuple[float, ...] = (0.0, -0.05, -0.15, -0.1)
    skills: tuple[str, ...] = ("low", "mid", "high")
    skill_mix: tuple[float, ...] = (0.25, 0.5, 0.25)  # share of reps in each region
    skill_shift: tuple[float, ...] = (-0.35, 0.0, 0.35)

    # -- the chain: per open stage, P(advance, skip, back, lost, no decision) ---------
    move_probs: tuple[tuple[float, ...], ...] = (
        (0.89, 0.03, 0.00, 0.05, 0.03),  # lead (nothing to go back to)
        (0.56, 0.03, 0.32, 0.06, 0.03),  # qualification
        (0.42, 0.04, 0.50, 0.02, 0.02),  # needs-assessment
        (0.34, 0.03, 0.57, 0.03, 0.03),  # proposal
        (0.38, 0.04, 0.50, 0.05, 0.03),  # negotiation (skip = won)
        (0.62, 0.00, 0.30, 0.05, 0.03),  # closing (advance = won)
    )
    # Gamma time in stage: shape, and median days for the `pro` product.
    duration_shape: tuple[float, ...] = (1.5, 2.0, 2.0, 2.5, 2.0, 3.0)
    duration_median_days: tuple[float, ...] = (4.0, 8.0, 10.0, 8.0, 9.0, 4.0)

    # -- arrivals ----------------------------------------------------------------
    weekday_weights: tuple[float, ...] = (1.0, 1.1, 1.1, 1.0, 0.8, 0.12, 0.08)  # Mon..Sun
    min_deals_per_week: float = 25.0  # small data sets shrink the window, not the rate
    max_window_days: int = 728  # 104 weeks
    window_days: int | None = None  # overrides the sizing rule above
    workday_start_hour: float = 8.0  # deals are created in office hours (naive UTC)
    workday_hours: float = 10.0

    # -- leads -------------------------------------------------------------------
    lead_conversion: tuple[float, ...] = (0.5, 0.8, 0.7, 0.35, 0.5)  # by source
    lead_to_deal_median_days: float = 3.0
    lead_disqualified_share: float = 0.85  # of leads never converted; the rest stay open
    lead_disqualify_median_days: float = 10.0

    # -- money -------------------------------------------------------------------
    amount_median_usd: tuple[float, ...] = (8_000.0, 30_000.0, 120_000.0)  # by product
    amount_sigma: tuple[float, ...] = (0.5, 0.6, 0.7)  # log-scale
    # An entry into these stages changes the amount with this probability, by
    # a lognormal factor exp(N(mu, sigma)).
    amount_change_stages: tuple[str, ...] = ("proposal", "negotiation")
    amount_change_prob: tuple[float, ...] = (0.5, 0.6)
    amount_change_mu: tuple[float, ...] = (0.05, -0.08)
    amount_change_sigma: tuple[float, ...] = (0.2, 0.1)
    planned_cycle_days: tuple[float, ...] = (40.0, 60.0, 90.0)  # first expected close, by product
    push_days: tuple[int, int] = (14, 45)  # a slipped close date moves by U{lo..hi} days
    campaign_cost_per_lead: tuple[float, ...] = (60.0, 0.0, 0.0, 120.0, 250.0)  # by source

    # -- exit criteria (the process's checklist items) ----------------------------------
    # When a deal first leaves a stage forward, each of the stage's checklist
    # items is recorded as done with this probability (skips are sloppier).
    checklist_done_advance: float = 0.92
    checklist_done_skip: float = 0.5

    # -- activities ----------------------------------------------------------------
    activities_per_day: float = 0.03  # per open deal, plus one at creation
    activity_kinds: tuple[str, ...] = ("email", "call", "meeting", "task")
    activity_kind_mix: tuple[float, ...] = (0.5, 0.3, 0.15, 0.05)
    # By final outcome (won, lost, no decision): share of inbound activities and
    # share waiting on the customer; the rest are outbound.
    inbound_share: tuple[float, ...] = (0.45, 0.30, 0.15)
    waiting_share: tuple[float, ...] = (0.05, 0.08, 0.25)

    # -- organisation ---------------------------------------------------------------
    deals_per_rep_per_year: float = 120.0
    reps_per_team: int = 8
    accounts_per_deal: float = 0.6

    change: PlantedChange | None = field(default_factory=PlantedChange)

    def __post_init__(self) -> None:
        pairs = [
            ("sources", "source_mix"),
            ("sources", "source_shift"),
            ("sources", "source_start_qualified"),
            ("sources", "lead_conversion"),
            ("sources", "campaign_cost_per_lead"),
            ("products", "product_mix"),
            ("products", "product_shift"),
            ("products", "product_no_decision_shift"),
            ("products", "product_time_scale"),
            ("products", "amount_median_usd"),
            ("products", "amount_sigma"),
            ("products", "planned_cycle_days"),
            ("regions", "region_mix"),
            ("regions", "region_shift"),
            ("skills", "skill_mix"),
            ("skills", "skill_shift"),
            ("amount_change_stages", "amount_change_prob"),
            ("amount_change_stages", "amount_change_mu"),
            ("amount_change_stages", "amount_change_sigma"),
            ("activity_kinds", "activity_kind_mix"),
        ]
        for names, values in pairs:
            n, m = len(getattr(self, names)), len(getattr(self, values))
            if n != m:
                raise ValueError(f"SynthParams.{values} has {m} values; {names} has {n}")
        for name in ("duration_shape", "duration_median_days", "move_probs"):
            if len(getattr(self, name)) != N_OPEN:
                raise ValueError(f"SynthParams.{name} needs one entry per stage {STAGES}")
        for i, row in enumerate(self.move_probs):
            if len(row) != len(MOVES) or min(row) < 0 or not math.isclose(sum(row), 1.0):
                raise ValueError(
                    f"SynthParams.move_probs[{i}] ({STAGES[i]}) must be {len(MOVES)} "
                    f"probabilities {MOVES} summing to 1 (got {row})"
                )
        if self.move_probs[0][2] != 0.0:
            raise ValueError("SynthParams.move_probs[0]: the first stage cannot move back")
        if self.move_probs[-1][1] != 0.0:
            raise ValueError("SynthParams.move_probs[-1]: the last stage cannot skip")
        if len(self.weekday_weights) != 7:
            raise ValueError("SynthParams.weekday_weights needs 7 values, Monday first")

    @property
    def n_segments(self) -> int:
        """Number of segments (source × product × region × skill)."""
        return len(self.sources) * len(self.products) * len(self.regions) * len(self.skills)

    def window(self, deals: int) -> int:
        """Days of the observation window for `deals` deals: long enough that arrivals per
        week stay at a team's pace, capped at `max_window_days`."""
        if self.window_days is not None:
            return int(self.window_days)
        weeks = deals / self.min_deals_per_week
        return int(min(self.max_window_days, max(28, math.ceil(weeks * 7))))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready plain values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthParams:
        """Parameters back from `to_dict()` output (lists become tuples)."""

        def frozen(value: Any) -> Any:
            return tuple(frozen(v) for v in value) if isinstance(value, list) else value

        fields = {k: frozen(v) for k, v in data.items() if k != "change"}
        change = data.get("change")
        return cls(**fields, change=PlantedChange(**change) if change else None)
