"""Censoring-aware stage hazards and the win-time distributions they imply.

The model is semi-Markov over the open stages of the process. A visit to a
stage ends by moving to another open stage, by a win, or by a loss (lost or
no decision); until then it is censored. Per stage and time-in-stage bin
(`TIS_EDGES`) the hazard of each destination is a constant rate per day,
estimated as events / exposure from the visit histogram that
`pull_history` pulls (exposure counts the days every visit, censored or
not, spent in the bin: open deals are censored, never lost, never dropped).

Covariates scale the hazards of a visit by one pair of factors per level:
one for *forward* exits (a win or a move to a later stage), one for the
others (losses, moves back). The factors are fitted by backfitting a
multiplicative Poisson model against the pooled rates, shrunk towards 1
(`SHRINK` expected events of prior weight). Visit covariates (deal age and
close-date pushes at the visit's entry) apply to the visit a deal is in;
deal covariates (deal size band, segment) apply to every visit of the
deal, the ones to come included.

The size band's factor may differ by stage (`STAGE_COVARIATES`): big deals
can do as well as small ones at one stage and worse at another, and one
factor shared by all stages then overestimates the stages where they do
worse. Each stage's factor is the shared one times a deviation shrunk
towards 1 by empirical Bayes: deviations are taken as gamma-distributed
around 1 with a variance τ² measured from the data (the spread of observed
over expected exits per stage and level beyond Poisson noise, see
`deviation_prior`), so a stage and band with few deals keeps the shared
factor and a well-measured difference stands.

Parameter uncertainty comes from a Poisson bootstrap of the histogram
(each visit weighted by a Poisson(1) draw, which on counts of identical
visits is a Poisson draw of the count); every array below has a leading
replicate axis.

Days: a deal open at the as-of instant `t` exits on day k (1-based) when
its time in stage crosses [τ + k − 1, τ + k); a deal entering a stage on a
day is taken to enter at mid-day, so it can leave on the same day (offset 0,
time in stage [0, ½)) or on offset m ([m − ½, m + ½)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.signal import fftconvolve

from funnelwise.errors import InputError
from funnelwise.forecast.history import TIS_EDGES, History

EDGES = np.asarray(TIS_EDGES, dtype=float)
NB = len(EDGES)
WIDTHS = np.append(np.diff(EDGES), np.inf)  # the last bin is open-ended
SHRINK = 10.0  # prior weight (expected events) pulling covariate factors towards 1
VISIT_COVARIATES = ("age_bin", "push_bin")
DEAL_COVARIATES = ("amount_bin", "segment")
COVARIATES = VISIT_COVARIATES + DEAL_COVARIATES
# Covariates whose factors may differ by stage (shrunk towards the shared factor).
STAGE_COVARIATES = ("amount_bin",)


@dataclass(frozen=True)
class Design:
    """The open stages as a state space. Destinations are the S open stages, then
    `won` (index S) and `lost` (S + 1; lost or no decision)."""

    stages: pd.DataFrame  # pipeline_id, stage_id, position, state
    forward: np.ndarray  # (S, D) bool: destination is a win or a later stage

    @property
    def n_states(self) -> int:
        """Number of open stages S."""
        return len(self.stages)

    @property
    def won(self) -> int:
        """Destination index of a win."""
        return self.n_states

    @property
    def lost(self) -> int:
        """Destination index of a loss."""
        return self.n_states + 1

    @property
    def n_dest(self) -> int:
        """Number of destinations D = S + 2."""
        return self.n_states + 2

    @classmethod
    def from_history(cls, history: History) -> Design:
        """The design of the history's process (all its pipelines)."""
        stages = history.open_stages
        s = len(stages)
        pos = stages.position.to_numpy()
        pipe = stages.pipeline_id.to_numpy()
        forward = np.zeros((s, s + 2), dtype=bool)
        forward[:, :s] = (pos[None, :] > pos[:, None]) & (pipe[None, :] == pipe[:, None])
        forward[:, s] = True
        return cls(stages, forward)

    def state_of(self, pipeline: pd.Series, stage: pd.Series) -> np.ndarray:
        """State index of (pipeline, stage) pairs; -1 for stages that are not open stages."""
        key = pd.MultiIndex.from_frame(self.stages[["pipeline_id", "stage_id"]])
        idx = key.get_indexer(pd.MultiIndex.from_arrays([pipeline, stage]))
        return np.asarray(idx, dtype=np.int64)

    def dest_of(self, pipeline: pd.Series, dest: pd.Series) -> np.ndarray:
        """Destination index of visit ends (open stage id, 'won', 'lost'); -1 if censored."""
        out = self.state_of(pipeline, dest)
        d = dest.to_numpy(dtype=object)
        out = np.where(d == "won", self.won, out)
        # Ends in stages outside the process count as losses: the deal left the funnel.
        out = np.where((out < 0) & pd.notna(d), self.lost, out)
        return np.where(pd.isna(d), -1, out)


@dataclass(frozen=True)
class Covariates:
    """Levels of each covariate: labels, and a code per visit-histogram row."""

    names: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    codes: np.ndarray  # (n_cov, rows)

    def encode(self, name: str, values: pd.Series) -> np.ndarray:
        """Codes of new values of one covariate (unseen levels get -1: factor 1)."""
        i = self.names.index(name)
        cat = pd.Categorical(values.astype(str), categories=list(self.labels[i]))
        return np.asarray(cat.codes, dtype=np.int64)


@dataclass(frozen=True)
class Visits:
    """The visit histogram as arrays: one row per group of identical visits."""

    state: np.ndarray
    dest: np.ndarray  # -1: censored
    tbin: np.ndarray
    count: np.ndarray
    sum_days: np.ndarray
    month: np.ndarray  # entry month, 0 for `first_month`
    covariates: Covariates
    first_month: pd.Timestamp
    week: np.ndarray | None = None  # entry week, 0 for `first_week` (weekly frames only)
    first_week: pd.Timestamp | None = None

    @classmethod
    def from_history(
        cls,
        history: History,
        design: Design,
        *,
        covariates: tuple[str, ...] = COVARIATES,
        weekly: bool = False,
    ) -> Visits:
        """Arrays from `history.visits` (from `history.weekly_visits` with `weekly`, which
        adds the entry week), keeping visits of the design's open stages."""
        v = history.visits
        if weekly:
            if history.weekly_visits is None:
                raise InputError("this history was pulled without weekly visits")
            v = history.weekly_visits
        state = design.state_of(v.pipeline_id, v.stage_id)
        keep = state >= 0
        v = v[keep].reset_index(drop=True)
        unknown = set(covariates) - set(COVARIATES)
        if unknown:
            raise InputError(
                f"unknown covariates {sorted(unknown)}; covariates: {', '.join(COVARIATES)}"
            )
        names = tuple(c for c in COVARIATES if c in covariates)
        labels, codes = [], []
        for name in names:
            values = v[name].astype(str)
            cats = sorted(values.unique().tolist())
            labels.append(tuple(cats))
            codes.append(pd.Categorical(values, categories=cats).codes)
        months = pd.to_datetime(v.month)
        first = months.min() if len(months) else pd.Timestamp(0)
        month_index = (months.dt.year - first.year) * 12 + (months.dt.month - first.month)
        week_index, first_week = None, None
        if weekly:
            weeks = pd.to_datetime(v.week)
            first_week = weeks.min() if len(weeks) else pd.Timestamp(0)
            week_index = ((weeks - first_week) // pd.Timedelta(days=7)).to_numpy(dtype=np.int64)
        return cls(
            state=state[keep],
            dest=design.dest_of(v.pipeline_id, v.dest),
            tbin=v.tis_bin.to_numpy(dtype=np.int64),
            count=v.n.to_numpy(dtype=float),
            sum_days=v.sum_days.to_numpy(dtype=float),
            month=month_index.to_numpy(dtype=np.int64),
            covariates=Covariates(
                names,
                tuple(labels),
                np.asarray(codes, dtype=np.int64).reshape(len(names), len(v)),
            ),
            first_month=first,
            week=week_index,
            first_week=first_week,
        )

    def week_of(self, at: pd.Timestamp) -> int:
        """Index of the week (from Monday) holding `at` (0 for `first_week`)."""
        if self.first_week is None:
            raise InputError("these visits carry no entry week")
        return int((at.normalize() - self.first_week) // pd.Timedelta(days=7))

    def month_of(self, at: pd.Timestamp) -> int:
        """Index of the calendar month holding `at` (0 for `first_month`)."""
        return (at.year - self.first_month.year) * 12 + (at.month - self.first_month.month)

    def __len__(self) -> int:
        return len(self.state)

    @property
    def mean_days(self) -> np.ndarray:
        """Mean days in stage of the visits of each row."""
        return np.divide(
            self.sum_days, self.count, out=np.zeros(len(self.count)), where=self.count > 0
        )


def _grouping(index: np.ndarray, size: int) -> sparse.csr_matrix:
    """A (size × rows) 0/1 matrix: multiplied by row weights it sums them by index.
    Rows with index < 0 are left out."""
    keep = index >= 0
    rows = np.flatnonzero(keep)
    return sparse.csr_matrix((np.ones(len(rows)), (index[keep], rows)), shape=(size, len(index)))


def _scatter(index: np.ndarray, size: int, weights: np.ndarray) -> np.ndarray:
    """Sums of weights (rows, B) by index: (B, size). Rows with index < 0 are ignored."""
    return np.asarray((_grouping(index, size) @ weights).T)


def cumulative_at_edges(rates: np.ndarray) -> np.ndarray:
    """Cumulative hazard at each bin's lower edge: rates (..., NB, D) -> (..., NB, D)."""
    lam = np.zeros_like(rates)
    lam[..., 1:, :] = np.cumsum(rates[..., :-1, :] * WIDTHS[:-1, None], axis=-2)
    return lam


@dataclass(frozen=True)
class Hazards:
    """Fitted hazards for B bootstrap replicates (replicate 0 may be the plain fit).

    `rates` (B, S, NB, D): pooled rate per day of each destination by stage and
    time-in-stage bin; `factors[name]` (B, S, levels, 2): multipliers of the
    forward and the other hazards per stage and covariate level (the same for
    every stage unless the covariate is in `STAGE_COVARIATES`); `prior_weight[name]`
    (2,): the empirical-Bayes prior weight (expected exits, 1 / τ²; inf: no stage
    deviations) of each stage covariate's deviations, forward and other;
    `exposure` (S, NB) and `events` (S, NB, D) of the plain fit.
    """

    design: Design
    covariates: Covariates
    rates: np.ndarray
    factors: dict[str, np.ndarray]
    exposure: np.ndarray
    events: np.ndarray
    prior_weight: dict[str, np.ndarray]

    @property
    def n_replicates(self) -> int:
        """Number of bootstrap replicates B."""
        return int(self.rates.shape[0])


def _rates(
    visits: Visits, design: Design, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exposure (B, S, NB), events (B, S, NB, D) and rates from row weights w (rows, B)."""
    s, d = design.n_states, design.n_dest
    b = w.shape[1]
    cell = visits.state * NB + visits.tbin
    ratio = visits.mean_days
    count = _scatter(cell, s * NB, w).reshape(b, s, NB)
    days = _scatter(cell, s * NB, w * ratio[:, None]).reshape(b, s, NB)
    # Visits that ended in a later bin spent the whole width of this one.
    later = np.cumsum(count[..., ::-1], axis=-1)[..., ::-1] - count
    exposure = later * np.where(np.isfinite(WIDTHS), WIDTHS, 0.0) + days - count * EDGES
    exposure = np.maximum(exposure, 0.0)
    ev_index = np.where(visits.dest >= 0, cell * d + visits.dest, -1)
    events = _scatter(ev_index, s * NB * d, w).reshape(b, s, NB, d)
    rates = np.divide(
        events, exposure[..., None], out=np.zeros_like(events), where=exposure[..., None] > 0
    )
    # Bins nobody reached borrow the rates of the last bin with exposure.
    seen = exposure > 0
    last = np.maximum.accumulate(np.where(seen, np.arange(NB), -1), axis=-1)
    filled = np.take_along_axis(rates, np.maximum(last, 0)[..., None], axis=-2)
    rates = np.where((last >= 0)[..., None], filled, 0.0)
    return exposure, events, rates


def deviation_prior(observed: np.ndarray, expected: np.ndarray) -> float:
    """Empirical-Bayes prior weight k = 1 / τ² (expected exits) of per-cell deviations.

    Cells (a stage and a level) see O ~ Poisson(E δ), δ ~ Gamma(mean 1, variance
    τ²): then E[(O − E)²] = E + τ² E², so τ² = Σ [(O − E)² − E] / Σ E² (moments,
    floored at 0), and the posterior mean of δ is (O + k) / (E + k). Returns inf
    when the cells spread no more than Poisson noise (every deviation stays 1).
    """
    e = expected[expected > 0]
    o = observed[expected > 0]
    denominator = float((e**2).sum())
    if denominator <= 0:
        return float("inf")
    tau2 = float(((o - e) ** 2 - e).sum()) / denominator
    return 1.0 / tau2 if tau2 > 0 else float("inf")


def _factors(
    visits: Visits,
    design: Design,
    rates: np.ndarray,
    w: np.ndarray,
    by_stage: tuple[str, ...],
    iterations: int = 5,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Backfit multiplicative factors (B, S, levels, 2) of forward and other hazards per
    stage and covariate level (the covariates `by_stage` may differ by stage), and the
    prior weights of the stage deviations (see `Hazards`)."""
    fwd = design.forward[visits.state]  # (rows, D)
    rows = np.arange(len(visits))
    s_n, b_n = design.n_states, w.shape[1]
    # Expected forward and other exits of one visit of each row under the pooled rates:
    # the cumulative hazard is linear within a bin, so sum destinations on the grid first.
    lam = cumulative_at_edges(rates)  # (B, S, NB, D)
    mask = design.forward[None, :, None, :]
    spent = (visits.mean_days - EDGES[visits.tbin])[:, None]
    s, b = visits.state, visits.tbin
    expected = [
        ((lam * m).sum(-1)[:, s, b].T + (rates * m).sum(-1)[:, s, b].T * spent) * w
        for m in (mask, ~mask)
    ]
    ended = visits.dest >= 0
    is_fwd = fwd[rows, np.maximum(visits.dest, 0)] & ended
    observed = [is_fwd[:, None] * w, (ended & ~is_fwd)[:, None] * w]
    cov = visits.covariates
    # Terms of the model: one shared factor per covariate level, then one deviation per
    # stage and level of each stage covariate (code state × levels + level).
    terms: list[tuple[str, np.ndarray, int, bool]] = [
        (name, cov.codes[i], len(cov.labels[i]), False) for i, name in enumerate(cov.names)
    ]
    terms += [
        (name, visits.state * len(cov.labels[i]) + cov.codes[i], s_n * len(cov.labels[i]), True)
        for i, name in enumerate(cov.names)
        if name in by_stage
    ]
    values = [np.ones((b_n, size, 2)) for _, _, size, _ in terms]
    groups = [_grouping(code, size) for _, code, size, _ in terms]
    observed_by = [[np.asarray((g @ o).T) for o in observed] for g in groups]
    prior = {name: np.full(2, np.inf) for name, _, _, dev in terms if dev}

    def backfit(active: list[int], fixed: list[int]) -> None:
        """Update the terms `active` in turn, the terms `fixed` held as they are."""
        for _ in range(iterations):
            for kind in (0, 1):
                # Every row's product of factors; each term divides its own out.
                product = np.ones_like(w)
                for j in active + fixed:
                    product *= values[j][:, terms[j][1], kind].T
                for j in active:
                    name, code, _, dev = terms[j]
                    own = values[j][:, code, kind].T
                    e = np.asarray((groups[j] @ (expected[kind] * product / own)).T)
                    k = prior[name][kind] if dev else SHRINK
                    # An infinite prior weight: no deviation from the shared factor.
                    new = np.ones_like(e) if np.isinf(k) else (observed_by[j][kind] + k) / (e + k)
                    product *= new[:, code].T / own
                    values[j][:, :, kind] = new

    shared = [j for j, t in enumerate(terms) if not t[3]]
    backfit(shared, [])
    deviations = [j for j, t in enumerate(terms) if t[3]]
    if deviations:
        # The prior of each stage covariate's deviations from the plain fit's cells under
        # the shared factors (replicate 0); then the deviations are fitted on top of the
        # shared factors, which stay as fitted: where no stage deviates, the model is
        # the shared one exactly.
        for j in deviations:
            name = terms[j][0]
            for kind in (0, 1):
                product = np.ones(len(visits))
                for i in shared:
                    product *= values[i][0, terms[i][1], kind]
                e = groups[j] @ (expected[kind][:, 0] * product)
                prior[name][kind] = deviation_prior(observed_by[j][kind][0], e)
        if not any(np.isfinite(prior[terms[j][0]]).any() for j in deviations):
            # No stage deviates beyond chance: the shared fit stands as it is.
            deviations = []
        else:
            backfit(deviations, shared)
    factors = {}
    for j in shared:
        name = terms[j][0]
        factors[name] = np.repeat(values[j][:, None], s_n, axis=1)  # (B, S, L, 2)
    for j in deviations:
        name = terms[j][0]
        factors[name] = factors[name] * values[j].reshape(b_n, s_n, -1, 2)
    return factors, prior


def fit_hazards(
    visits: Visits,
    design: Design,
    *,
    replicates: int,
    rng: np.random.Generator | None,
    by_stage: tuple[str, ...] = STAGE_COVARIATES,
) -> Hazards:
    """Fit hazards on the plain histogram (replicate 0) and `replicates - 1` Poisson
    bootstrap resamples of it (none without an rng); the factors of the covariates
    `by_stage` may differ by stage (none: one factor per level for every stage)."""
    w = np.repeat(visits.count[:, None], max(1, replicates), axis=1)
    if rng is not None and replicates > 1:
        w[:, 1:] = rng.poisson(w[:, 1:])
    exposure, events, rates = _rates(visits, design, w)
    factors, prior = _factors(visits, design, rates, w, by_stage)
    return Hazards(
        design=design,
        covariates=visits.covariates,
        rates=rates,
        factors=factors,
        exposure=exposure[0],
        events=events[0],
        prior_weight=prior,
    )


def drift_sigma(observed: np.ndarray, expected: np.ndarray, span: int = 1) -> tuple[float, int]:
    """Spread of a rate's changes from one span of periods to the next, beyond chance,
    as a log sd.

    observed (counts) and expected (counts under one constant rate) per consecutive
    period (month); rolling windows of `span` periods are compared with the window
    just before them: a forecast over `span` periods meets the shocks of that time
    scale (calendar effects inside a quarter cancel over a quarter). With r = O / E
    per window, a shared shock changes r between neighbours by more than Poisson
    noise (variance r / E each): σ² = Σ w [(Δr)² − noise] / (2 Σ w), w the inverse
    noise, floored at 0. Differences rather than deviations from the mean, so a
    steady trend or a one-off level shift counts once. Returns (σ, windows compared).
    """
    span = max(1, int(span))
    if len(observed) < 2 * span + 1:
        return 0.0, 0
    kernel = np.ones(span)
    o = np.convolve(observed, kernel, mode="valid")
    e = np.convolve(expected, kernel, mode="valid")
    prev_o, prev_e, o, e = o[:-span], e[:-span], o[span:], e[span:]
    keep = (e >= 1.0) & (prev_e >= 1.0)
    if keep.sum() < 2:
        return 0.0, int(keep.sum())
    r, prev_r = o[keep] / e[keep], prev_o[keep] / prev_e[keep]
    noise = np.maximum(r, 1.0 / e[keep]) / e[keep]
    prev_noise = np.maximum(prev_r, 1.0 / prev_e[keep]) / prev_e[keep]
    w = 1.0 / (noise + prev_noise)
    excess = ((r - prev_r) ** 2 - (noise + prev_noise)) * w
    return float(np.sqrt(max(0.0, excess.sum() / (2 * w.sum())))), int(keep.sum())


def monthly_wins(
    visits: Visits, hazards: Hazards, *, from_month: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Wins observed and wins the hazards expect, per entry month of the visits
    (consecutive months from `from_month`, oldest first): the input of `drift_sigma`
    for the win rate.

    The expectation carries each visit's own covariate factors (forward hazards): a
    month whose deals were older, pushed more or smaller wins less by design, not
    by a shared shock, and must not widen the interval.
    """
    return period_wins(visits, hazards, visits.month, start=from_month)


def period_wins(
    visits: Visits, hazards: Hazards, period: np.ndarray, *, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Wins observed and expected (see `monthly_wins`) per entry period, `period` the
    period index of each visit row (months, or weeks of a weekly histogram),
    consecutive from `start`."""
    d = hazards.design
    rates = hazards.rates[0]
    lam = cumulative_at_edges(rates)
    lo = EDGES[visits.tbin]
    cum_won = lam[visits.state, visits.tbin, d.won] + rates[visits.state, visits.tbin, d.won] * (
        visits.mean_days - lo
    )
    cov = visits.covariates
    for i, name in enumerate(cov.names):
        cum_won = cum_won * hazards.factors[name][0, visits.state, cov.codes[i], 0]
    n = int(period.max()) + 1 if len(visits) else 0
    e = np.bincount(period, weights=cum_won * visits.count, minlength=n)
    o = np.bincount(period, weights=(visits.dest == d.won) * visits.count, minlength=n)
    return o[start:], e[start:]


# -- from hazards to win-time distributions --------------------------------------------


def increments(rates: np.ndarray, state: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Cumulative-hazard increments (n, P, D) of each destination over the P steps
    bounded by the time-in-stage instants points (n, P+1); rates (R, NB, D) hold the
    rates of R states (the S stages of one replicate, or several stacked), state (n,)
    indexes them."""
    lam = cumulative_at_edges(rates)
    b = np.clip(np.searchsorted(EDGES, points, side="right") - 1, 0, NB - 1)
    s = state[:, None]
    cum = lam[s, b] + rates[s, b] * (points - EDGES[b])[..., None]  # (n, P+1, D)
    return np.diff(cum, axis=1)


def exit_probs(
    rates: np.ndarray,
    state: np.ndarray,
    points: np.ndarray,
    forward: np.ndarray,
    theta: np.ndarray | None = None,
) -> np.ndarray:
    """Probability of leaving to each destination in each step of a visit.

    See `increments` for rates, state and points; forward (n, D) marks each visit's
    forward destinations; theta (n, 2) multiplies the forward and the other hazards.
    Returns (n, P, D): P(still in the stage at the step's start and leaving to d
    during the step).
    """
    inc = increments(rates, state, points)
    if theta is not None:
        scale = np.where(forward, theta[:, :1], theta[:, 1:])  # (n, D)
        inc = inc * scale[:, None, :]
    total = inc.sum(-1)
    stay = np.exp(-total)
    alive = np.cumprod(np.concatenate([np.ones((len(state), 1)), stay[:, :-1]], axis=1), axis=1)
    share = np.divide(inc, total[..., None], out=np.zeros_like(inc), where=total[..., None] > 0)
    return (alive * (1.0 - stay))[..., None] * share


def fresh_points(n_days: int) -> np.ndarray:
    """Time-in-stage bounds of offsets 0..n_days for a visit entered at mid-day."""
    return np.concatenate([[0.0], np.arange(n_days + 1) + 0.5])


def fresh_win_cdf(rates: np.ndarray, design: Design, n_days: int, theta: np.ndarray) -> np.ndarray:
    """CG (G, S, n_days + 1): P(won within offsets 0..e | entered stage s at mid-day of
    offset 0), following every later stage, for G deal kinds with hazards rates[g]
    (S, NB, D) scaled on every visit to stage s by theta[g, s] = (forward, other)
    (theta (G, S, 2), or (G, 2) for the same factors at every stage)."""
    g_n, s_n = rates.shape[0], design.n_states
    points = np.broadcast_to(fresh_points(n_days), (g_n * s_n, n_days + 2))
    f = exit_probs(
        rates.reshape(g_n * s_n, NB, -1),
        np.arange(g_n * s_n),
        points,
        np.tile(design.forward, (g_n, 1)),
        np.broadcast_to(theta.reshape(g_n, -1, 2), (g_n, s_n, 2)).reshape(-1, 2),
    )
    f = f.reshape(g_n, s_n, n_days + 1, -1).transpose(0, 2, 1, 3)  # (G, H+1, S, D)
    # Same-day moves chain within the day: G(d) = (I − F0)⁻¹ (won(d) + Σ_m≥1 F_m G(d − m)).
    g = renewal(f[..., :s_n], f[..., design.won])
    return np.cumsum(g, axis=1).transpose(0, 2, 1)


RENEWAL_LEAF = 32  # days solved one by one; longer spans split in halves


def renewal(moves: np.ndarray, won: np.ndarray) -> np.ndarray:
    """g (G, H+1, S) solving g(d) = (I − F0)⁻¹ (won(d) + Σ_{1≤m≤d} F_m g(d − m)) for
    moves F (G, H+1, S, S) and won (G, H+1, S): the chance of being won on day d after
    entering each stage.

    Day by day this costs H² matrix products, minutes for a ten-year horizon. Instead
    the days are split in halves: the first half is solved, its effect on the second
    is added by one FFT convolution, then the second half is solved the same way
    (H log² H work, exact up to rounding)."""
    _, h_n, s_n = won.shape
    solve = np.linalg.inv(np.eye(s_n)[None] - moves[:, 0])  # (G, S, S)
    rhs = won.copy()
    g = np.zeros_like(won)
    spectra: dict[int, np.ndarray] = {}  # FFTs of F_0..F_{n−1}, per span length n (spans of
    # one depth share a length)

    def span(lo: int, hi: int) -> None:
        if hi - lo <= RENEWAL_LEAF:
            for d in range(lo, hi):
                if d > lo:
                    m = d - np.arange(lo, d)  # lags of the days already solved in this span
                    rhs[:, d] += np.einsum("gmij,gmj->gi", moves[:, m], g[:, lo:d])
                g[:, d] = np.einsum("gij,gj->gi", solve, rhs[:, d])
            return
        mid = (lo + hi) // 2
        span(lo, mid)
        n = hi - lo
        size = 2 * n  # no wrap-around: the full convolution is shorter than 2n
        f_hat = spectra.get(n)
        if f_hat is None:
            f_hat = np.fft.rfft(moves[:, :n], n=size, axis=1)
            if n < h_n:  # the whole span is solved once: its spectrum is not kept
                spectra[n] = f_hat
        x = np.fft.rfft(g[:, lo:mid], n=size, axis=1)  # (G, F, S)
        conv = np.fft.irfft(np.matmul(f_hat, x[..., None])[..., 0], n=size, axis=1)
        rhs[:, mid:hi] += conv[:, mid - lo : n]
        span(mid, hi)

    span(0, h_n)
    return g


def _follow(cg: np.ndarray, offsets: np.ndarray, ends: np.ndarray, design: Design) -> np.ndarray:
    """M (G, P, D, K): P(won by end k | leaving to d at step offset p) for G deal kinds
    with fresh-entry win CDFs cg (G, S, H+1)."""
    s_n = design.n_states
    lag = ends[None, :] - offsets[:, None]  # (P, K)
    ok = lag >= 0
    mat = np.zeros((len(cg), len(offsets), design.n_dest, len(ends)))
    mat[:, :, design.won, :] = ok
    follow = cg[:, :, np.maximum(lag, 0)].transpose(0, 2, 1, 3)  # (G, P, S, K)
    mat[:, :, :s_n, :] = np.where(ok[None, :, None, :], follow, 0.0)
    return mat


def new_win_cdf(q: np.ndarray, cg: np.ndarray, design: Design) -> np.ndarray:
    """P(won within e days of entering, e = 0..H−1) (n, H) for visits with exit
    probabilities q (n, H+1, D) on days 0..H after their entry, given the fresh-entry
    win CDFs cg (S, H+1).

    A visit left to d on day p is won by day e with P(won within e − p days | entered
    d): a convolution over days, done by FFT (a matrix of every exit day against every
    end day would take H² memory, gigabytes for a ten-year horizon)."""
    s_n, h_n = design.n_states, q.shape[1] - 1
    dest = [*range(s_n), design.won]
    kernel = np.ones((h_n + 1, len(dest)))  # a win is won at every later end
    kernel[:, :s_n] = cg.T
    conv = fftconvolve(q[..., dest], kernel[None], axes=1)[:, :h_n]
    return np.clip(conv.sum(-1), 0.0, 1.0)


CLASS_CHUNK_BYTES = 1 << 28  # classes' exit chances are weighed this many bytes at a time


def open_win_cdf(
    rates: np.ndarray,
    design: Design,
    pair_state: np.ndarray,
    pair_tau: np.ndarray,
    cg: np.ndarray,
    ends: np.ndarray,
    cls_pair: np.ndarray,
    cls_kind: np.ndarray,
    cls_theta: np.ndarray,
) -> np.ndarray:
    """P(won by each end day) (n_c, K) of open deals of one replicate.

    A class of deals shares a (stage, time in stage) pair (pair_state, pair_tau),
    a deal kind (cg[kind]: its fresh-entry win CDFs (G, S, H+1)) and factors
    cls_theta (n_c, 2). The hazard increments are computed once per pair; only the
    forward and the other totals depend on the factors. Each class's chance of
    leaving to each destination on each day is then weighed against its kind's
    chance of a win by each end after leaving there: one matrix product per kind,
    over chunks of classes of bounded memory.
    """
    n_days = cg.shape[-1] - 1
    points = pair_tau[:, None] + np.arange(n_days + 1)[None, :]
    inc = increments(rates, pair_state, points)  # (pairs, H, D)
    fwd = design.forward[pair_state]  # (pairs, D)
    follow = _follow(cg, np.arange(1, n_days + 1), ends, design)  # (G, H, D, K)
    tf, to = cls_theta[:, :1], cls_theta[:, 1:]
    f_tot = (inc * fwd[:, None, :]).sum(-1)  # (pairs, H)
    total = tf * f_tot[cls_pair] + to * (inc.sum(-1) - f_tot)[cls_pair]  # (n_c, H)
    stay = np.exp(-total)
    alive = np.cumprod(np.concatenate([np.ones((len(total), 1)), stay[:, :-1]], axis=1), axis=1)
    # P(leave in step k) / total hazard of step k: each destination's share is inc / total.
    a = alive * np.divide(-np.expm1(-total), total, out=np.zeros_like(total), where=total > 0)
    x_f, x_o = a * tf, a * to
    d_n, k_n = follow.shape[2], follow.shape[3]
    out = np.zeros((len(cls_pair), k_n))
    chunk = max(1, CLASS_CHUNK_BYTES // (8 * n_days * d_n))
    for g in np.unique(cls_kind):
        rows = np.flatnonzero(cls_kind == g)
        table = follow[g].reshape(n_days * d_n, k_n)
        for lo in range(0, len(rows), chunk):
            r = rows[lo : lo + chunk]
            p = cls_pair[r]
            exits = inc[p] * np.where(fwd[p][:, None, :], x_f[r][..., None], x_o[r][..., None])
            out[r] = exits.reshape(len(r), -1) @ table
    return out
