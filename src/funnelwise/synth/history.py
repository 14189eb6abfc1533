"""What happens to a deal besides its stage path: amount drift, slipping close
dates, activities, and why it was lost.

Everything is drawn from the full, uncensored paths; the generator cuts it at
the end of observation afterwards, like the stage events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from funnelwise.synth.chain import Paths
from funnelwise.synth.params import LOST, N_OPEN, NO_DECISION, STAGES, WON, SynthParams
from funnelwise.synth.population import normalised

LOSS_REASONS: tuple[str, ...] = (
    "no budget",
    "not a fit",
    "no response",
    "competitor",
    "price",
    "timing",
    "legal",
    "status quo",  # no decision
    "went dark",  # no decision
)
# P(reason | lost from stage), one row per open stage, over the first seven reasons.
_LOST_FROM = np.array(
    [
        (0.30, 0.35, 0.30, 0.00, 0.00, 0.05, 0.00),
        (0.30, 0.30, 0.15, 0.10, 0.05, 0.10, 0.00),
        (0.10, 0.20, 0.10, 0.30, 0.15, 0.15, 0.00),
        (0.05, 0.05, 0.05, 0.35, 0.35, 0.10, 0.05),
        (0.05, 0.00, 0.05, 0.30, 0.40, 0.05, 0.15),
        (0.05, 0.00, 0.05, 0.20, 0.35, 0.05, 0.30),
    ]
)
_NO_DECISION_SPLIT = (0.6, 0.4)  # status quo, went dark

ACTIVITY_DIRECTIONS: tuple[str, ...] = ("outbound", "inbound", "waiting_on_customer")
_CALL, _MEETING = 1, 2  # codes in the default activity_kinds; others have no duration


def draw_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of a probability matrix (rows need not be normalised)."""
    cum = np.cumsum(probs, axis=1)
    u = (1.0 - rng.random(probs.shape[0])) * cum[:, -1]
    return (cum < u[:, None]).sum(axis=1)


@dataclass(frozen=True)
class FieldHistory:
    """A tracked deal field: each deal's first value and its changes, sorted by (deal, at).

    `old` of a deal's first change is its first value, and every later `old`
    is the previous `new`, so replaying the changes in order ends at the
    current value.
    """

    initial: np.ndarray  # per deal
    deal: np.ndarray  # per change
    at: np.ndarray  # days since the window start
    old: np.ndarray
    new: np.ndarray

    def cut(self, until: float) -> tuple[FieldHistory, np.ndarray]:
        """The changes made by `until` and each deal's value at that instant."""
        keep = self.at <= until
        kept = FieldHistory(
            self.initial, self.deal[keep], self.at[keep], self.old[keep], self.new[keep]
        )
        current = self.initial.copy()
        if kept.deal.size:
            last = np.r_[kept.deal[1:] != kept.deal[:-1], True]
            current[kept.deal[last]] = kept.new[last]
        return kept, current


def _chain(initial: np.ndarray, deal: np.ndarray, at: np.ndarray, new: np.ndarray) -> FieldHistory:
    """Changes sorted by (deal, at) with `old` filled from the previous value."""
    order = np.lexsort((at, deal))
    deal, at, new = deal[order], at[order], new[order]
    first = np.r_[True, deal[1:] != deal[:-1]] if deal.size else np.zeros(0, bool)
    old = np.where(first, initial[deal], np.r_[new[:1], new[:-1]])
    return FieldHistory(initial, deal, at, old, new)


def amount_history(
    params: SynthParams, paths: Paths, product: np.ndarray, rng: np.random.Generator
) -> FieldHistory:
    """Lognormal first amounts by product (USD, whole hundreds) and their drift.

    An entry into a stage of `amount_change_stages` changes the amount, with
    that stage's probability, by a factor exp(N(mu, sigma)); the change is
    saved within a day of the entry and before the deal's next stage event.
    """
    median = np.asarray(params.amount_median_usd)[product]
    sigma = np.asarray(params.amount_sigma)[product]
    initial = np.maximum(100.0, np.round(rng.lognormal(np.log(median), sigma), -2))
    stage_k = np.full(N_OPEN + 3, -1)
    for k, name in enumerate(params.amount_change_stages):
        stage_k[STAGES.index(name)] = k
    candidates = np.flatnonzero(stage_k[paths.stage] >= 0)
    k = stage_k[paths.stage[candidates]]
    hit = rng.random(candidates.size) < np.asarray(params.amount_change_prob)[k]
    e, k = candidates[hit], k[hit]
    log_factor = rng.normal(
        np.asarray(params.amount_change_mu)[k], np.asarray(params.amount_change_sigma)[k]
    )
    gap = paths.t[e + 1] - paths.t[e]  # open stages always have a next event
    at = paths.t[e] + rng.random(e.size) * np.minimum(1.0, 0.5 * gap)
    deal = paths.deal[e]
    # Cumulative log-factor within each deal (events are grouped by deal, in order).
    first = np.r_[True, deal[1:] != deal[:-1]] if deal.size else np.zeros(0, bool)
    total = np.cumsum(log_factor)
    group = np.cumsum(first) - 1
    within = total - (total - log_factor)[np.flatnonzero(first)][group]
    new = np.round(initial[deal] * np.exp(within), 2)
    return _chain(initial, deal, at, new)


def close_date_history(
    params: SynthParams,
    t0: np.ndarray,
    end: np.ndarray,
    final: np.ndarray,
    product: np.ndarray,
    rng: np.random.Generator,
) -> FieldHistory:
    """Expected close dates (whole days since the window start) and their pushes.

    The first date is the creation day plus the product's planned cycle
    (lognormal noise). Whenever a date passes with the deal still open, the
    rep moves it 14–45 days (by default) past the day of the update, within
    two days of the miss. A won deal's date is set to the day it closed.
    """
    planned = np.asarray(params.planned_cycle_days)[product] * rng.lognormal(0.0, 0.25, t0.size)
    initial = (np.floor(t0) + np.maximum(7, np.rint(planned))).astype(np.int64)
    lo, hi = params.push_days
    deals, ats, news = [], [], []
    current = initial.copy()
    active = np.arange(t0.size)
    while active.size:
        at = current[active] + 1.0 + 2.0 * rng.random(active.size)
        still_open = at < end[active]
        active, at = active[still_open], at[still_open]
        new = np.floor(at).astype(np.int64) + rng.integers(lo, hi + 1, active.size)
        deals.append(active)
        ats.append(at)
        news.append(new)
        current[active] = new
    won = np.flatnonzero(final == WON)
    close_day = np.floor(end[won]).astype(np.int64)
    moved = close_day != current[won]
    deals.append(won[moved])
    ats.append(end[won][moved])
    news.append(close_day[moved])
    return _chain(initial, np.concatenate(deals), np.concatenate(ats), np.concatenate(news))


def loss_reasons(paths: Paths, rng: np.random.Generator) -> np.ndarray:
    """Code into LOSS_REASONS per deal (-1 for won deals), by the stage the deal left."""
    final = paths.final
    from_stage = paths.stage[
        paths.offsets[1:] - 2
    ]  # every path has an open stage before its outcome
    codes = np.full(final.size, -1, dtype=np.int64)
    lost = np.flatnonzero(final == LOST)
    codes[lost] = draw_rows(_LOST_FROM[from_stage[lost]], rng)
    stalled = np.flatnonzero(final == NO_DECISION)
    n_lost_reasons = _LOST_FROM.shape[1]
    codes[stalled] = n_lost_reasons + rng.choice(2, stalled.size, p=_NO_DECISION_SPLIT)
    return codes


@dataclass(frozen=True)
class Activities:
    """Activity rows: deal (or -1), time, kind code, direction code, minutes (NaN: none)."""

    deal: np.ndarray
    at: np.ndarray
    kind: np.ndarray
    direction: np.ndarray
    minutes: np.ndarray

    def cut(self, until: float) -> Activities:
        """The activities done by `until`."""
        keep = self.at <= until
        return Activities(
            self.deal[keep],
            self.at[keep],
            self.kind[keep],
            self.direction[keep],
            self.minutes[keep],
        )


def activity_minutes(kind: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lognormal minutes for calls (median 12) and meetings (median 45); NaN otherwise."""
    minutes = np.full(kind.size, np.nan)
    for code, median, sigma in ((_CALL, 12.0, 0.5), (_MEETING, 45.0, 0.3)):
        sel = kind == code
        minutes[sel] = np.round(rng.lognormal(np.log(median), sigma, int(sel.sum())), 1)
    return minutes


def deal_activities(
    params: SynthParams,
    t0: np.ndarray,
    end: np.ndarray,
    final: np.ndarray,
    rng: np.random.Generator,
) -> Activities:
    """One activity at creation plus Poisson(activities_per_day × days open) more.

    The direction mix depends on how the deal ends: won deals hear from the
    customer more often, no-decision deals wait on the customer more often.
    """
    extra = rng.poisson(params.activities_per_day * (end - t0))
    counts = 1 + extra
    deal = np.repeat(np.arange(t0.size), counts)
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    u = rng.random(deal.size)
    u[offsets] *= 0.02  # the first one comes right after creation
    at = t0[deal] + u * (end - t0)[deal]
    kind = rng.choice(len(params.activity_kinds), deal.size, p=normalised(params.activity_kind_mix))
    outcome = (final - WON)[deal]
    inbound = np.asarray(params.inbound_share)[outcome]
    waiting = np.asarray(params.waiting_share)[outcome]
    v = rng.random(deal.size)
    direction = np.where(v < inbound, 1, np.where(v < inbound + waiting, 2, 0))
    return Activities(deal, at, kind, direction, activity_minutes(kind, rng))


@dataclass(frozen=True)
class Checklist:
    """Exit-criteria rows: deal, stage, criterion code (into the flat list), time done."""

    deal: np.ndarray
    stage: np.ndarray
    criterion: np.ndarray
    at: np.ndarray

    def cut(self, until: float) -> Checklist:
        """The items done by `until`."""
        keep = self.at <= until
        return Checklist(self.deal[keep], self.stage[keep], self.criterion[keep], self.at[keep])


def checklist(
    params: SynthParams,
    paths: Paths,
    criteria: tuple[tuple[str, ...], ...],
    rng: np.random.Generator,
) -> Checklist:
    """Checklist items ticked when a deal first leaves a stage forward.

    `criteria[i]` are stage i's items; criterion codes index their flat
    concatenation. Each item is done with `checklist_done_advance` (or
    `checklist_done_skip` when the deal skipped the next stage), at a uniform
    time during the visit. Re-entries do not tick items again.
    """
    deal, stage = paths.deal, paths.stage
    same_deal = deal[1:] == deal[:-1]
    nxt = stage[1:]
    moved_on = (nxt > stage[:-1]) & (nxt <= WON)  # to a later stage or won; not lost
    forward = np.flatnonzero(same_deal & (stage[:-1] < N_OPEN) & moved_on)
    key = deal[forward] * N_OPEN + stage[forward]
    _, first = np.unique(key, return_index=True)  # events are in order within a deal
    e = forward[first]
    skipped = (stage[e + 1] - stage[e]) == 2
    p_done = np.where(skipped, params.checklist_done_skip, params.checklist_done_advance)
    n_items = np.array([len(c) for c in criteria])
    item_offset = np.r_[0, np.cumsum(n_items)[:-1]]
    per_exit = n_items[stage[e]]
    row = np.repeat(np.arange(e.size), per_exit)
    k = np.arange(row.size) - np.repeat(np.cumsum(per_exit) - per_exit, per_exit)
    done = rng.random(row.size) < p_done[row]
    row, k = row[done], k[done]
    ev = e[row]
    at = paths.t[ev] + rng.random(ev.size) * (paths.t[ev + 1] - paths.t[ev])
    return Checklist(deal[ev], stage[ev].astype(np.int64), item_offset[stage[ev]] + k, at)
