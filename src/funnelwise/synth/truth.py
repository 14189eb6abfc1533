"""The truth behind a synthetic data set: its parameters and exact derived quantities.

Absorption probabilities come from the absorbing chain's fundamental matrix,
not from simulation. "Pooled" quantities are what an analysis that ignores
segments estimates from the data: each segment weighted by its share of
deals times its expected visits to the stage.

Regime "before" is the process before the planted change (or always, when
there is none); "after" is the process for visits entered on or after the
change date.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import gammainc, gammaincinv

from funnelwise.store import Store
from funnelwise.synth.chain import (
    ChainTables,
    absorption,
    gamma_scales,
    initial_distribution,
    place_moves,
    segment_codes,
    simulate_paths,
    transition_matrices,
)
from funnelwise.synth.params import (
    N_OPEN,
    OUTCOMES,
    STAGES,
    WEEKDAYS,
    SynthParams,
)
from funnelwise.synth.population import normalised

Regime = Literal["before", "after"]
_REGIMES: dict[str, int] = {"before": 0, "after": 1}


def _regime(regime: Regime) -> int:
    if regime not in _REGIMES:
        raise ValueError(f"regime must be one of {list(_REGIMES)} (got {regime!r})")
    return _REGIMES[regime]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


def segment_mix(params: SynthParams, skill_given_region: np.ndarray) -> np.ndarray:
    """P(segment): independent source, product and region; skill given the region's reps."""
    src, prod, reg, skl = segment_codes(params)
    return (
        normalised(params.source_mix)[src]
        * normalised(params.product_mix)[prod]
        * normalised(params.region_mix)[reg]
        * skill_given_region[reg, skl]
    )


@dataclass(frozen=True, eq=False)  # holds arrays: compare `to_dict()` outputs instead
class Truth:
    """True parameters and exact derived quantities of one synthetic data set.

    Build with `Truth.build(...)` (the generator does). Arrays are read-only.
    `to_dict()` is JSON-ready; `true_cumulative_incidence()` simulates the
    uncensored process for what has no closed form.
    """

    params: SynthParams
    start: pd.Timestamp
    observed_until: pd.Timestamp
    deals: int
    seed: int
    change_date: pd.Timestamp | None
    skill_given_region: np.ndarray  # [region, skill]
    rep_skills: tuple[tuple[str, str], ...] = field(default=())  # (user_id, skill)

    @classmethod
    def build(
        cls,
        params: SynthParams,
        *,
        start: pd.Timestamp,
        window: int,
        deals: int,
        seed: int,
        change_date: pd.Timestamp | None,
        skill_given_region: np.ndarray,
        rep_skills: tuple[tuple[str, str], ...] = (),
    ) -> Truth:
        """The truth of a data set generated with these settings."""
        return cls(
            params=params,
            start=start,
            observed_until=start + pd.Timedelta(days=window),
            deals=deals,
            seed=seed,
            change_date=change_date,
            skill_given_region=_frozen(skill_given_region),
            rep_skills=rep_skills,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Truth:
        """The truth back from `to_dict()` output (for example meta `synth_truth` of a store)."""
        params = SynthParams.from_dict(data["params"])
        given = data["skill_given_region"]
        change = data.get("change")
        return cls.build(
            params,
            start=pd.Timestamp(data["start"]),
            window=int(data["window_days"]),
            deals=int(data["deals"]),
            seed=int(data["seed"]),
            change_date=pd.Timestamp(change["date"]) if change else None,
            skill_given_region=np.array(
                [[given[r][k] for k in params.skills] for r in params.regions], dtype=float
            ),
            rep_skills=tuple(data["rep_skills"].items()),
        )

    # -- the chain ----------------------------------------------------------------
    @property
    def window_days(self) -> int:
        """Length of the observation window in days."""
        return int((self.observed_until - self.start) / pd.Timedelta(days=1))

    @cached_property
    def matrices(self) -> np.ndarray:
        """P[segment, regime, stage, state] (states: the open stages, won, lost, no-decision)."""
        return _frozen(transition_matrices(self.params))

    @cached_property
    def base_matrix(self) -> np.ndarray:
        """P[stage, state] of a segment whose shifts are all zero (`move_probs` as given)."""
        return _frozen(place_moves(np.asarray(self.params.move_probs, dtype=float)))

    @cached_property
    def segment_mix(self) -> np.ndarray:
        """P(segment), in the order of `segments()`."""
        return _frozen(segment_mix(self.params, self.skill_given_region))

    @cached_property
    def initial(self) -> np.ndarray:
        """init[segment, stage]: the stage a deal is created in."""
        return _frozen(initial_distribution(self.params))

    @cached_property
    def _absorption(self) -> tuple[np.ndarray, np.ndarray]:
        b, n = absorption(self.matrices)
        return _frozen(b), _frozen(n)

    @property
    def absorption_by_segment_stage(self) -> np.ndarray:
        """B[segment, regime, stage, outcome]: P(outcome | entering the stage)."""
        return self._absorption[0]

    @property
    def visits_by_segment(self) -> np.ndarray:
        """N[segment, regime, from stage, to stage]: expected entries (fundamental matrix)."""
        return self._absorption[1]

    def absorption_by_segment(self, regime: Regime = "before") -> np.ndarray:
        """P(outcome)[segment, outcome] for a deal at creation."""
        r = _regime(regime)
        return np.einsum("si,sik->sk", self.initial, self.absorption_by_segment_stage[:, r])

    def absorption_overall(self, regime: Regime = "before") -> np.ndarray:
        """P(won, lost, no decision) of a new deal, mix-weighted over segments (exact)."""
        return self.segment_mix @ self.absorption_by_segment(regime)

    def expected_visits(self, regime: Regime = "before") -> np.ndarray:
        """Expected entries into each open stage per deal, mix-weighted, by stage."""
        r = _regime(regime)
        per_segment = np.einsum("si,sij->sj", self.initial, self.visits_by_segment[:, r])
        return self.segment_mix @ per_segment

    def expected_events_per_deal(self, regime: Regime = "before") -> float:
        """Expected stage events of an uncensored deal: open-stage entries plus the outcome."""
        return float(self.expected_visits(regime).sum() + 1.0)

    def _visit_weights(self, regime: Regime) -> np.ndarray:
        """w[segment, stage] ∝ deals of the segment × their expected visits to the stage."""
        r = _regime(regime)
        per_segment = np.einsum("si,sij->sj", self.initial, self.visits_by_segment[:, r])
        return self.segment_mix[:, None] * per_segment

    def pooled_matrix(self, regime: Regime = "before") -> np.ndarray:
        """P[stage, state] pooled over segments: what counting transitions in the data estimates."""
        w = self._visit_weights(regime)
        p = self.matrices[:, _regime(regime)]
        return np.einsum("sj,sjk->jk", w, p) / w.sum(axis=0)[:, None]

    def absorption_by_stage(self, regime: Regime = "before") -> np.ndarray:
        """P(outcome | entering stage)[stage, outcome], pooled over the visits to the stage."""
        w = self._visit_weights(regime)
        b = self.absorption_by_segment_stage[:, _regime(regime)]
        return np.einsum("sj,sjk->jk", w, b) / w.sum(axis=0)[:, None]

    # -- durations ----------------------------------------------------------------
    @cached_property
    def gamma_scale(self) -> np.ndarray:
        """scale[product, regime, stage] in days of the gamma time in stage."""
        return _frozen(gamma_scales(self.params))

    def median_days(self, regime: Regime = "before") -> np.ndarray:
        """Median days in stage [product, stage] (gamma: scale × gammaincinv(shape, 1/2))."""
        shape = np.asarray(self.params.duration_shape)
        return self.gamma_scale[:, _regime(regime)] * gammaincinv(shape, 0.5)[None, :]

    def pooled_median_days(self, regime: Regime = "before") -> np.ndarray:
        """Median days per stage over all visits: the median of the product mixture,
        each product weighted by its expected visits to the stage."""
        r = _regime(regime)
        prod = segment_codes(self.params)[1]
        w = np.zeros((len(self.params.products), N_OPEN))
        np.add.at(w, prod, self._visit_weights(regime))
        w /= w.sum(axis=0)
        shape = np.asarray(self.params.duration_shape)
        scale = self.gamma_scale[:, r]
        out = np.empty(N_OPEN)
        for i in range(N_OPEN):  # six one-dimensional root finds

            def cdf_gap(x: float, i: int = i) -> float:
                return float((w[:, i] * gammainc(shape[i], x / scale[:, i])).sum() - 0.5)

            out[i] = brentq(cdf_gap, 1e-9, 1e4, xtol=1e-10)
        return out

    def expected_days_in_stage(self, regime: Regime = "before") -> np.ndarray:
        """Mean total days a new deal spends in each stage over all its visits, mix-weighted
        (expected visits × mean gamma time, shape × scale, per segment)."""
        r = _regime(regime)
        prod = segment_codes(self.params)[1]
        mean_hold = np.asarray(self.params.duration_shape) * self.gamma_scale[prod, r]
        per_segment = np.einsum("si,sij->sj", self.initial, self.visits_by_segment[:, r])
        return self.segment_mix @ (per_segment * mean_hold)

    def expected_cycle_days(self, regime: Regime = "before") -> float:
        """Mean days from creation to outcome of an uncensored new deal."""
        return float(self.expected_days_in_stage(regime).sum())

    # -- arrivals -----------------------------------------------------------------
    def deals_per_day_by_weekday(self) -> np.ndarray:
        """Expected deals created per calendar day, Monday first."""
        w = np.asarray(self.params.weekday_weights, dtype=float)
        weekday = (self.start.weekday() + np.arange(self.window_days)) % 7
        return self.deals * w / w[weekday].sum()

    # -- the planted change --------------------------------------------------------
    def change_effect(self) -> dict[str, Any] | None:
        """The planted change, its date and its true effects (None when there is none)."""
        c = self.params.change
        if c is None or self.change_date is None:
            return None
        i = STAGES.index(c.stage)
        j = STAGES.index(c.faster_stage)
        w = self._visit_weights("before")[:, i]
        w = w / w.sum()
        advance_before = float(w @ self.matrices[:, 0, i, i + 1])
        advance_after = float(w @ self.matrices[:, 1, i, i + 1])
        won_before = float(w @ self.absorption_by_segment_stage[:, 0, i, 0])
        won_after = float(w @ self.absorption_by_segment_stage[:, 1, i, 0])
        return {
            "date": self.change_date.isoformat(),
            "stage": c.stage,
            "advance_logit": c.advance_logit,
            "advance_prob_before": advance_before,
            "advance_prob_after": advance_after,
            "advance_prob_rise": advance_after - advance_before,
            "won_from_stage_before": won_before,
            "won_from_stage_after": won_after,
            "faster_stage": c.faster_stage,
            "duration_factor": c.duration_factor,
            "median_days_before": float(self.pooled_median_days("before")[j]),
            "median_days_after": float(self.pooled_median_days("after")[j]),
        }

    # -- Monte Carlo ------------------------------------------------------------------
    def simulate_outcomes(
        self, n: int = 200_000, seed: int = 0, regime: Regime = "before"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Uncensored deals drawn from the mix: (segment, outcome code 0..2, days to close)."""
        rng = np.random.default_rng(seed)
        seg = rng.choice(self.segment_mix.size, n, p=self.segment_mix / self.segment_mix.sum())
        start_stage = (rng.random(n) < self.initial[seg, 1]).astype(np.int64)
        paths = simulate_paths(
            ChainTables.from_params(self.params),
            segment=seg,
            product=segment_codes(self.params)[1][seg],
            start_stage=start_stage,
            start_day=np.zeros(n),
            change_day=math.inf if _regime(regime) == 0 else -math.inf,
            rng=rng,
        )
        return seg, paths.final.astype(np.int64) - N_OPEN, paths.end

    def true_cumulative_incidence(
        self,
        days: np.ndarray | list[float],
        n: int = 200_000,
        seed: int = 0,
        regime: Regime = "before",
    ) -> pd.DataFrame:
        """P(won / lost / no_decision by d days after creation) for each d in `days`.

        Simulates n uncensored deals with the true parameters (Monte Carlo
        standard error at most 0.5 / sqrt(n)); columns days, won, lost,
        no_decision. As d grows the columns reach `absorption_overall(regime)`.
        Data generated with a planted change follow regime "before" only for
        deals that finish before the change date; generate with
        `SynthParams(change=None)` to compare estimates over the whole window.
        """
        d = np.asarray(days, dtype=float)
        _, outcome, end = self.simulate_outcomes(n, seed, regime)
        out = {"days": d}
        for k, name in enumerate(OUTCOMES):
            times = np.sort(end[outcome == k])
            out[name] = np.searchsorted(times, d, side="right") / n
        return pd.DataFrame(out)

    # -- serialisation -------------------------------------------------------------
    def segments(self) -> pd.DataFrame:
        """One row per segment: its factors and share of deals."""
        p = self.params
        src, prod, reg, skl = segment_codes(p)
        return pd.DataFrame(
            {
                "source": np.asarray(p.sources)[src],
                "product": np.asarray(p.products)[prod],
                "region": np.asarray(p.regions)[reg],
                "skill": np.asarray(p.skills)[skl],
                "weight": self.segment_mix,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything above as plain JSON values (lists, floats, strings)."""
        seg = self.segments()
        by_seg = self.absorption_by_segment("before")
        by_seg_after = self.absorption_by_segment("after")
        segments = [
            {
                **row,
                "absorption_before": dict(zip(OUTCOMES, by_seg[s].tolist(), strict=True)),
                "absorption_after": dict(zip(OUTCOMES, by_seg_after[s].tolist(), strict=True)),
                "matrix_before": self.matrices[s, 0].tolist(),
                "matrix_after": self.matrices[s, 1].tolist(),
            }
            for s, row in enumerate(seg.to_dict("records"))
        ]
        shape = list(self.params.duration_shape)
        return {
            "start": self.start.isoformat(),
            "observed_until": self.observed_until.isoformat(),
            "window_days": self.window_days,
            "deals": self.deals,
            "seed": self.seed,
            "stages": list(STAGES),
            "states": [*STAGES, "won", "lost", "no-decision"],
            "outcomes": list(OUTCOMES),
            "params": self.params.to_dict(),
            "base_matrix": self.base_matrix.tolist(),
            "pooled_matrix": {r: self.pooled_matrix(r).tolist() for r in ("before", "after")},
            "absorption": {
                r: dict(zip(OUTCOMES, self.absorption_overall(r).tolist(), strict=True))
                for r in ("before", "after")
            },
            "absorption_by_stage": {
                r: {
                    s: dict(zip(OUTCOMES, row, strict=True))
                    for s, row in zip(STAGES, self.absorption_by_stage(r).tolist(), strict=True)
                }
                for r in ("before", "after")
            },
            "expected_events_per_deal": self.expected_events_per_deal(),
            "expected_visits": dict(zip(STAGES, self.expected_visits().tolist(), strict=True)),
            "durations": {
                "family": "gamma",
                "unit": "days",
                "shape": dict(zip(STAGES, shape, strict=True)),
                "scale": {
                    product: {
                        r: dict(zip(STAGES, self.gamma_scale[k, _REGIMES[r]].tolist(), strict=True))
                        for r in ("before", "after")
                    }
                    for k, product in enumerate(self.params.products)
                },
                "median_days": {
                    product: dict(zip(STAGES, self.median_days()[k].tolist(), strict=True))
                    for k, product in enumerate(self.params.products)
                },
                "pooled_median_days": dict(
                    zip(STAGES, self.pooled_median_days().tolist(), strict=True)
                ),
                "expected_days_in_stage_per_deal": dict(
                    zip(STAGES, self.expected_days_in_stage().tolist(), strict=True)
                ),
                "expected_cycle_days": self.expected_cycle_days(),
            },
            "arrivals": {
                "weekday_weights": dict(zip(WEEKDAYS, self.params.weekday_weights, strict=True)),
                "deals_per_day": dict(
                    zip(WEEKDAYS, self.deals_per_day_by_weekday().tolist(), strict=True)
                ),
            },
            "skill_given_region": {
                region: dict(zip(self.params.skills, row, strict=True))
                for region, row in zip(
                    self.params.regions, self.skill_given_region.tolist(), strict=True
                )
            },
            "rep_skills": dict(self.rep_skills),
            "segments": segments,
            "change": self.change_effect(),
        }


def stored_truth(store: Store) -> Truth | None:
    """The truth a synthetic project recorded in its store (meta `synth_truth`), or None."""
    data = store.meta_json("synth_truth")
    return None if data is None else Truth.from_dict(data)
