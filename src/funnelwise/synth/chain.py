"""The stage chain: per-segment transition matrices, exact absorption, path simulation.

States are the six open stages followed by the three outcome stages (won,
lost, no decision), which absorb. A chain has two regimes: 0 before the
planted change, 1 for visits entered at or after it. The same tables drive
the generator and the truth's Monte Carlo, so both draw from one model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaincinv

from funnelwise.synth.params import MOVES, N_OPEN, N_STATES, STAGES, SynthParams

_ADVANCE, _SKIP, _BACK, _LOST, _NO_DECISION = range(len(MOVES))


def segment_axes(params: SynthParams) -> tuple[int, int, int, int]:
    """Sizes of the segment axes: sources, products, regions, skills."""
    return (len(params.sources), len(params.products), len(params.regions), len(params.skills))


def segment_index(
    source: np.ndarray,
    product: np.ndarray,
    region: np.ndarray,
    skill: np.ndarray,
    params: SynthParams,
) -> np.ndarray:
    """Flat segment number of each deal from its factor codes."""
    return np.ravel_multi_index((source, product, region, skill), segment_axes(params))


def segment_codes(params: SynthParams) -> tuple[np.ndarray, ...]:
    """Per segment: its source, product, region and skill codes."""
    return np.unravel_index(np.arange(params.n_segments), segment_axes(params))


def transition_matrices(params: SynthParams) -> np.ndarray:
    """P[segment, regime, stage, state]: one-step probabilities from each open stage.

    Base move probabilities are turned into log-weights; the segment's
    progress shift is added to advance and skip, its product's shift to no
    decision, and in regime 1 the planted change's shift to advance from the
    changed stage. Moves are then renormalised (a softmax over allowed moves).
    """
    src, prod, reg, skl = segment_codes(params)
    progress = (
        np.asarray(params.source_shift)[src]
        + np.asarray(params.product_shift)[prod]
        + np.asarray(params.region_shift)[reg]
        + np.asarray(params.skill_shift)[skl]
    )
    nd_shift = np.asarray(params.product_no_decision_shift)[prod]
    base = np.asarray(params.move_probs, dtype=float)  # (stage, move)
    with np.errstate(divide="ignore"):
        logw = np.log(base)
    n_seg = params.n_segments
    lw = np.broadcast_to(logw, (n_seg, 2, N_OPEN, len(MOVES))).copy()
    lw[..., _ADVANCE] += progress[:, None, None]
    lw[..., _SKIP] += progress[:, None, None]
    lw[..., _NO_DECISION] += nd_shift[:, None, None]
    if params.change is not None:
        lw[:, 1, STAGES.index(params.change.stage), _ADVANCE] += params.change.advance_logit
    w = np.exp(lw - lw.max(axis=-1, keepdims=True))
    return place_moves(w / w.sum(axis=-1, keepdims=True))


def place_moves(moves: np.ndarray) -> np.ndarray:
    """Turn move probabilities [..., stage, move] into state probabilities [..., stage, state]."""
    p = np.zeros((*moves.shape[:-1], N_STATES))
    stage = np.arange(N_OPEN)
    for move, target in (
        (_ADVANCE, stage + 1),  # from the last stage this is won
        (_SKIP, np.minimum(stage + 2, N_OPEN)),  # from negotiation this is won
        (_BACK, np.maximum(stage - 1, 0)),
        (_LOST, np.full(N_OPEN, N_OPEN + 1)),
        (_NO_DECISION, np.full(N_OPEN, N_OPEN + 2)),
    ):
        p[..., stage, target] += moves[..., stage, move]
    return p


def initial_distribution(params: SynthParams) -> np.ndarray:
    """init[segment, stage]: where a deal of the segment is created (lead or qualification)."""
    src = segment_codes(params)[0]
    q = np.asarray(params.source_start_qualified)[src]
    init = np.zeros((params.n_segments, N_OPEN))
    init[:, 0] = 1.0 - q
    init[:, 1] = q
    return init


def absorption(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact absorbing-chain quantities for matrices p[..., stage, state].

    Returns (B, N): B[..., i, k] = P(ending in outcome k | now entering open
    stage i), N[..., i, j] = expected number of entries into stage j from an
    entry into i (the fundamental matrix (I - Q)^-1, which counts i itself).
    """
    q = p[..., :N_OPEN, :N_OPEN]
    r = p[..., :N_OPEN, N_OPEN:]
    eye = np.broadcast_to(np.eye(N_OPEN), q.shape)
    n = np.linalg.inv(eye - q)
    return n @ r, n


def gamma_scales(params: SynthParams) -> np.ndarray:
    """scale[product, regime, stage] of the gamma time in stage, in days."""
    shape = np.asarray(params.duration_shape)
    median_pro = np.asarray(params.duration_median_days)
    base = median_pro / gammaincinv(shape, 0.5)  # median = scale * gammaincinv(shape, 1/2)
    scale = np.asarray(params.product_time_scale)[:, None, None] * base[None, None, :]
    scale = np.repeat(scale, 2, axis=1)
    if params.change is not None:
        scale[:, 1, STAGES.index(params.change.faster_stage)] *= params.change.duration_factor
    return scale


@dataclass(frozen=True)
class ChainTables:
    """What the simulator needs: cumulative transition rows and gamma parameters."""

    cum: np.ndarray  # [segment, regime, stage, state], last column exactly 1
    shape: np.ndarray  # [stage]
    scale: np.ndarray  # [product, regime, stage]

    @classmethod
    def from_params(cls, params: SynthParams) -> ChainTables:
        """Build the tables of `params`."""
        cum = np.cumsum(transition_matrices(params), axis=-1)
        cum /= cum[..., -1:]
        return cls(cum, np.asarray(params.duration_shape, dtype=float), gamma_scales(params))


@dataclass(frozen=True)
class Paths:
    """Simulated stage paths, grouped by deal, each deal's events in order.

    `deal`, `stage`, `t` (days) and `seq` have one entry per event; `offsets`
    has n+1 entries (deal i's events are offsets[i]:offsets[i+1]); `final`
    is each deal's absorbing state and `end` the day it got there.
    """

    deal: np.ndarray
    stage: np.ndarray
    t: np.ndarray
    seq: np.ndarray
    offsets: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """Each deal's last state (an outcome state: the paths are uncensored)."""
        return self.stage[self.offsets[1:] - 1]

    @property
    def end(self) -> np.ndarray:
        """Each deal's absorption time, in days."""
        return self.t[self.offsets[1:] - 1]


def simulate_paths(
    tables: ChainTables,
    *,
    segment: np.ndarray,
    product: np.ndarray,
    start_stage: np.ndarray,
    start_day: np.ndarray,
    change_day: float,
    rng: np.random.Generator,
    report: Callable[[int, int], None] | None = None,
) -> Paths:
    """Walk every deal through the chain until absorbed, one transition at a time.

    A visit entered at or after `change_day` uses regime 1 (pass +inf for
    "never", -inf for "always"). The loop runs once per step of the longest
    path, over the deals still open, so its cost is the number of events.
    """
    n = segment.shape[0]
    idx = np.arange(n)
    st = start_stage.astype(np.int64)
    t = start_day.astype(float)
    steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(idx, st, t)]
    counts = np.ones(n, dtype=np.int64)
    while idx.size:
        regime = (t >= change_day).astype(np.int64)
        hold = rng.gamma(tables.shape[st], tables.scale[product[idx], regime, st])
        u = 1.0 - rng.random(idx.size)  # in (0, 1], so a zero-probability state is never hit
        cum = tables.cum[segment[idx], regime, st]
        st = (cum < u[:, None]).sum(axis=1)
        t = t + hold
        counts[idx] += 1
        steps.append((idx, st, t))
        alive = st < N_OPEN
        idx, st, t = idx[alive], st[alive], t[alive]
        if report is not None:
            report(n - idx.size, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    out_stage = np.empty(total, dtype=np.int8)
    out_t = np.empty(total, dtype=float)
    for k, (i, s, tt) in enumerate(steps):
        pos = offsets[i] + k  # the k-th event of each deal still walking at step k
        out_stage[pos] = s
        out_t[pos] = tt
    deal = np.repeat(np.arange(n), counts)
    seq = np.arange(total) - np.repeat(offsets[:-1], counts)
    return Paths(deal, out_stage, out_t, seq, offsets)
