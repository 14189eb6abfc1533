"""A memoryless two-stage sales process whose future is known in closed form.

Deals arrive as a Poisson process (`rate` per day) into `lead`. After an
exponential time (rate `l1` per day) a lead moves to `qualification` with
probability `a`, else it is lost; after another exponential time (rate
`l2`) a qualified deal is won with probability `w`, else lost. Every deal
is worth an independent log-normal amount of mean `amount` (log-sd
`amount_sigma`). Because the times are exponential, the chance that an
open deal is won within h days depends only on its stage:

- from qualification: w (1 − e^{−l2 h});
- from lead: a w F(h), with F the CDF of the sum of the two exponential times;

and deals arriving during the horizon add `rate · a · w · ∫₀ʰ F(x) dx` wins
(each worth `amount` on average).

With `shock_sigma` > 0 the win chance also carries a shared shock: the deals
created in each block of `shock_days` days have the odds of `w` multiplied by
one log-normal factor (log-sd `shock_sigma`), drawn per block; the closed forms
above then hold for the median block only.
With `w_big` set, deals whose amount is at or above `big_amount` (the
`big_quantile` quantile of the amount's law) are won from qualification with
probability `w_big` instead of `w`; they move from lead as often as the others:
the size of a deal matters at one stage only (`win_chances(h, big=True)`).
That makes `expected_bookings` exact, to check the Monte Carlo forecast
against. (funnelwise.synth's chain has gamma times in six stages, whose
horizon-limited win chances have no closed form; this fixture exists for
that one reason.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from funnelwise.process import template_text
from funnelwise.project import Project

START = pd.Timestamp("2023-01-02")
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Memoryless:
    """True parameters (rates per day, probabilities, amount in USD)."""

    rate: float = 6.0
    l1: float = 1 / 8
    a: float = 0.6
    l2: float = 1 / 12
    w: float = 0.5
    amount: float = 1000.0
    amount_sigma: float = 0.5
    days: int = 500
    shock_sigma: float = 0.0
    shock_days: int = 14
    w_big: float | None = None
    big_quantile: float = 0.8

    @property
    def big_amount(self) -> float:
        """The amount from which `w_big` applies: the `big_quantile` quantile of the
        log-normal amount."""
        z = float(NormalDist().inv_cdf(self.big_quantile))
        return math.exp(math.log(self.amount) - self.amount_sigma**2 / 2 + z * self.amount_sigma)

    def cdf_both(self, h: float) -> float:
        """P(T1 + T2 <= h) for independent exponentials of rates l1 and l2."""
        l1, l2 = self.l1, self.l2
        return 1.0 - (l2 * math.exp(-l1 * h) - l1 * math.exp(-l2 * h)) / (l2 - l1)

    def integral_cdf_both(self, h: float) -> float:
        """∫₀ʰ P(T1 + T2 <= x) dx."""
        l1, l2 = self.l1, self.l2
        survival = (l2 * (1 - math.exp(-l1 * h)) / l1 - l1 * (1 - math.exp(-l2 * h)) / l2) / (
            l2 - l1
        )
        return h - survival

    def win_chances(self, h: float, *, big: bool = False) -> tuple[float, float]:
        """P(won within h days) of an open deal in lead, and in qualification (of a deal
        at or above `big_amount` with `big`, when `w_big` is set)."""
        w = self.w_big if big and self.w_big is not None else self.w
        return self.a * w * self.cdf_both(h), w * (1 - math.exp(-self.l2 * h))

    def expected_new(self, h: float) -> float:
        """Exact expected bookings over h days from deals created during them."""
        return self.rate * self.amount * self.a * self.w * self.integral_cdf_both(h)

    def expected_bookings(self, lead_value: float, qualified_value: float, h: float) -> float:
        """Exact expected bookings over h days, given the value of the open deals in each
        stage at the start."""
        p_lead, p_qualified = self.win_chances(h)
        return lead_value * p_lead + qualified_value * p_qualified + self.expected_new(h)


def build_memoryless(root: Path, truth: Memoryless = Memoryless(), seed: int = 0) -> Path:
    """Write a project with the memoryless process observed for `truth.days` days."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(truth.rate * truth.days)
    created = np.sort(rng.random(n) * truth.days)
    t1 = rng.exponential(1 / truth.l1, n)
    advance = rng.random(n) < truth.a
    t2 = rng.exponential(1 / truth.l2, n)
    # Draw the shared shocks from their own stream: without shocks the log is the same
    # as before shocks existed.
    w = np.full(n, truth.w)
    if truth.shock_sigma > 0:
        blocks = int(np.ceil(truth.days / truth.shock_days)) + 1
        z = np.random.default_rng([seed, 1]).standard_normal(blocks)
        odds = truth.w / (1 - truth.w) * np.exp(truth.shock_sigma * z)
        w = (odds / (1 + odds))[(created // truth.shock_days).astype(np.int64)]
    u = rng.random(n)
    mu = math.log(truth.amount) - truth.amount_sigma**2 / 2
    amount = np.round(rng.lognormal(mu, truth.amount_sigma, n), 2)
    if truth.w_big is not None:
        w = np.where(amount >= truth.big_amount, truth.w_big, w)
    won = advance & (u < w)
    qualified_at = created + t1
    closed = np.where(advance, qualified_at + t2, qualified_at)
    end = float(truth.days)
    ids = np.array([f"M{i:05d}" for i in range(n)])
    is_closed = closed <= end

    def ts(days: np.ndarray) -> pd.Series:
        return pd.Series(START + pd.to_timedelta(days, unit="D")).dt.floor("s")

    deals = pd.DataFrame(
        {
            "deal_id": ids,
            "pipeline_id": "new-business",
            "source": np.where(rng.random(n) < 0.5, "web", "partner"),
            "amount": amount,
            "currency": "USD",
            "amount_base": amount,
            "created_at": ts(created),
            "expected_close_date": ts(created + 30).dt.date,
            "closed_at": ts(closed).where(is_closed),
            "outcome": pd.Series(np.where(won, "won", "lost")).where(is_closed),
            "version": 1,
        }
    )
    rows = [
        pd.DataFrame({"deal_id": ids, "stage_id": "lead", "day": created, "seq": 0}),
        pd.DataFrame(
            {
                "deal_id": ids[advance],
                "stage_id": "qualification",
                "day": qualified_at[advance],
                "seq": 1,
            }
        ),
        pd.DataFrame(
            {
                "deal_id": ids,
                "stage_id": np.where(won, "won", "lost"),
                "day": closed,
                "seq": 2,
            }
        ),
    ]
    events = pd.concat(rows, ignore_index=True)
    events = events[events.day <= end]
    events = events.assign(entered_at=ts(events.day.to_numpy()).to_numpy()).drop(columns="day")
    root.mkdir(parents=True, exist_ok=True)
    (root / "process.yaml").write_text(template_text(), encoding="utf-8")
    store = Project(root).open_store(create=True)
    with store.transaction():
        store.insert("deals", deals)
        store.insert("stage_events", events)
        store.set_meta("observed_until", (START + end * DAY).isoformat())
    store.close()
    return root
