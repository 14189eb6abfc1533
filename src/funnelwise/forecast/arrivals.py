"""Pipeline not yet created: how many deals will arrive, where, and what they bring.

New deals arrive as a Poisson process whose level is the trailing rate of
creations (default the last 13 weeks), adjusted for the season by a
month-of-year index when the log holds at least two years. The level is
uncertain (the trailing count is itself a Poisson draw) and moves with
shocks shared by every deal (months busier or quieter than chance explains):
both become one log-normal multiplier per simulated path. Arrivals start in
the first stages deals started in over the window, per segment, and the
amounts of those that will be won follow the deals won over the last year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from funnelwise.forecast.base import DAY, require
from funnelwise.forecast.history import History

SEASON_MIN_DAYS = 730.0  # two years before a month-of-year index means anything
POOL_DAYS = 365.0  # amounts of new wins follow the wins of this trailing window
MIN_POOL = 5  # fewer wins in a pool than this: it borrows a wider pool
EXACT_SUMS = 30  # draws per cell up to which amounts are drawn one by one


@dataclass(frozen=True)
class Arrivals:
    """Fitted arrival process.

    `rate_per_day`: deseasonalised level (deals per day, all segments);
    `season` (12,): month-of-year multipliers (ones without two years of history);
    `sigma`: log-sd of the level over a horizon (parameter uncertainty and shared
    shocks combined); `starts`: share of arrivals per (segment, pipeline, first stage).
    """

    rate_per_day: float
    season: np.ndarray
    seasonal: bool
    daily_counts: np.ndarray
    daily_season: np.ndarray
    window_days: float
    n_window: int
    starts: pd.DataFrame  # segment, pipeline_id, stage_id, amount_bin, share
    steady_day: int = 0  # first day of `daily_counts` after the log's first win

    def sigma_for(self, horizon_days: float, *, shocks: bool = True) -> tuple[float, int]:
        """Log-sd of the arrival level over a horizon.

        Replays the trailing rate on the log's own past: from every 7th day with a full
        window behind it and a full horizon after it (all before the as-of date, the
        window after the log's first win: see `History.steady_from`), the
        window's rate predicts the horizon's creations. The mean squared log error,
        less the Poisson noise of the counts predicted (which the simulation draws
        anyway), is the level's variance: estimation error, trend and shared shocks
        together, at the horizon's time scale. Without such a past (or without
        `shocks`), only the trailing count's own Poisson error. Returns (σ, origins
        replayed).
        """
        param = 1.0 / np.sqrt(max(self.n_window, 1))
        w, h = round(self.window_days), round(horizon_days)
        y, f = self.daily_counts, self.daily_season
        origins = np.arange(self.steady_day + w, len(y) - h + 1, 7)
        if not shocks or w < 1 or len(origins) < 3:
            return float(param), 0
        cy, cf = np.concatenate([[0.0], np.cumsum(y)]), np.concatenate([[0.0], np.cumsum(f)])
        trail, trail_f = cy[origins] - cy[origins - w], cf[origins] - cf[origins - w]
        ahead, ahead_f = cy[origins + h] - cy[origins], cf[origins + h] - cf[origins]
        keep = (trail > 0) & (ahead > 0)
        if keep.sum() < 3:
            return float(param), 0
        predicted = trail[keep] / trail_f[keep] * ahead_f[keep]
        err = np.log(ahead[keep] / predicted)
        sigma = np.sqrt(max(param**2, float(np.mean(err**2 - 1.0 / predicted))))
        return float(sigma), int(keep.sum())

    @property
    def param_sigma(self) -> float:
        """Log-sd of the trailing rate from its own Poisson count alone."""
        return float(1.0 / np.sqrt(max(self.n_window, 1)))

    def weekly(self) -> tuple[np.ndarray, np.ndarray]:
        """Creations per whole week after the log's first win (the last week ends at the
        as-of date; a part week at the start is left out, so every week holds each
        weekday once) and the counts one level, with the season, expects: the input of
        `drift_sigma` when the log is too short to replay the trailing rate."""
        y = self.daily_counts[self.steady_day :]
        f = self.daily_season[self.steady_day :]
        k = len(y) // 7
        if k == 0:
            return np.zeros(0), np.zeros(0)
        o = y[len(y) - 7 * k :].reshape(k, 7).sum(axis=1)
        fs = f[len(f) - 7 * k :].reshape(k, 7).sum(axis=1)
        return o, fs * (o.sum() / fs.sum())

    def daily(self, as_of: pd.Timestamp, n_days: int) -> np.ndarray:
        """Expected arrivals on each day 1..n_days after as_of."""
        days = as_of + DAY * (np.arange(n_days) + 0.5)
        return self.rate_per_day * self.season[pd.DatetimeIndex(days).month - 1]


def _season(c: pd.DataFrame, first: pd.Timestamp, now: pd.Timestamp) -> np.ndarray:
    """Month-of-year index: mean daily creations in each calendar month over the mean."""
    full = pd.date_range(first.normalize() + pd.offsets.MonthBegin(1), now, freq="MS")
    if len(full) < 2:
        return np.ones(12)
    months = full[:-1]
    monthly = c.set_index("day").n.groupby(pd.Grouper(freq="MS")).sum()
    per_day = monthly.reindex(months, fill_value=0) / months.days_in_month
    by_month = per_day.groupby(months.month).mean().reindex(range(1, 13))
    index = (by_month / per_day.mean()).fillna(1.0).to_numpy(dtype=float)
    return np.where(index > 0, index, 1.0)


def fit_arrivals(history: History, *, window_days: float, min_days: float = 28.0) -> Arrivals:
    """Learn the arrival process from the creations before `history.now`."""
    now = history.now
    require(
        "days of history for the arrival rate of new deals",
        int(history.history_days),
        int(min_days),
        now,
        "use a later as-of date, or forecast without new pipeline (arrivals=False)",
    )
    c = history.creations.copy()
    c["day"] = pd.to_datetime(c.day)
    window = min(window_days, history.history_days)
    seasonal = history.history_days >= SEASON_MIN_DAYS and history.first_created is not None
    season = _season(c, history.first_created, now) if seasonal else np.ones(12)  # type: ignore[arg-type]
    recent = c[c.day > now - pd.Timedelta(days=window)]
    n_window = int(recent.n.sum())
    days = now - DAY * (np.arange(int(window)) + 0.5)
    exposure = float(season[pd.DatetimeIndex(days).month - 1].sum()) if window >= 1 else 0.0
    rate = n_window / exposure if exposure > 0 else 0.0
    # The daily series the trailing rate's own past errors are measured on.
    n_days = int(np.ceil(history.history_days))
    day_index = (now - c.day).dt.total_seconds().to_numpy(dtype=float) / 86400.0
    back = np.clip(np.floor(day_index).astype(np.int64), 0, max(n_days - 1, 0))
    daily_counts = np.bincount(n_days - 1 - back, weights=c.n.to_numpy(float), minlength=n_days)
    mid = now - DAY * (n_days - 1 - np.arange(n_days) + 0.5)
    daily_season = season[pd.DatetimeIndex(mid).month - 1]
    steady = history.steady_from
    steady_day = (
        0 if steady is None else int(np.clip(n_days - 1 - (now - steady) // DAY, 0, n_days))
    )
    starts = recent if n_window else c
    starts = starts.assign(stage_id=starts.first_stage_id).dropna(subset=["stage_id"])
    keys = ["segment", "pipeline_id", "stage_id", "amount_bin"]
    share = starts.groupby(keys)["n"].sum().reset_index()
    share["share"] = share.n / share.n.sum() if len(share) else 0.0
    return Arrivals(
        rate_per_day=rate,
        season=season,
        seasonal=bool(seasonal),
        daily_counts=daily_counts,
        daily_season=daily_season,
        window_days=window,
        n_window=n_window,
        starts=share.drop(columns="n"),
        steady_day=steady_day,
    )


@dataclass(frozen=True)
class AmountPool:
    """Amounts of recent wins, one pool per (segment, deal size band) of new deals."""

    keys: tuple[tuple[str, str], ...]
    amounts: tuple[np.ndarray, ...]
    n_wins: int

    def mean(self) -> np.ndarray:
        """Mean amount per pool."""
        return np.array([a.mean() for a in self.amounts])

    def second_moment(self) -> np.ndarray:
        """Mean squared amount per pool."""
        return np.array([(a * a).mean() for a in self.amounts])

    def draw_sums(self, rng: np.random.Generator, n: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Per cell, the sum of `n` amounts drawn (with replacement) from pool `pool`
        (arrays of one shape). Few draws in a cell: each amount is drawn. Many: the sum
        is drawn from the gamma with its exact mean and variance (positive, skewed like
        the sum), which keeps large counts cheap."""
        flat_n, flat_pool = n.ravel(), pool.ravel()
        out = np.zeros(flat_n.shape)
        lengths = np.array([len(a) for a in self.amounts], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])[:-1]
        few = flat_n <= EXACT_SUMS
        cells = np.flatnonzero(few & (flat_n > 0))
        counts = flat_n[cells]
        which = np.repeat(flat_pool[cells], counts)
        picks = starts[which] + (rng.random(len(which)) * lengths[which]).astype(np.int64)
        out[cells] = np.bincount(
            np.repeat(np.arange(len(cells)), counts),
            weights=np.concatenate(self.amounts)[picks] if len(picks) else np.zeros(0),
            minlength=len(cells),
        )
        many = np.flatnonzero(~few)
        if len(many):
            mean = self.mean()
            var = np.maximum(self.second_moment() - mean**2, 0.0)
            mu, v = mean[flat_pool[many]], var[flat_pool[many]]
            k = flat_n[many]
            out[many] = np.where(
                v > 0,
                rng.gamma(np.where(v > 0, k * mu**2 / np.where(v > 0, v, 1.0), 1.0))
                * np.where(mu > 0, v / np.where(mu > 0, mu, 1.0), 0.0),
                k * mu,
            )
        return out.reshape(n.shape)

    def index(self, segment: pd.Series, band: pd.Series) -> np.ndarray:
        """Pool index of (segment, band) pairs (-1 if absent)."""
        lookup = {k: i for i, k in enumerate(self.keys)}
        pairs = zip(segment.astype(str), band.astype(str), strict=True)
        return np.array([lookup.get(k, -1) for k in pairs], dtype=np.int64)


def amount_pool(history: History, keys: list[tuple[str, str]], *, min_wins: int) -> AmountPool:
    """Won amounts of the trailing year (all wins if the year has too few) per
    (segment, band): the pool's own wins, else the band's over every segment, else all."""
    w = history.wins.dropna(subset=["amount_base"])
    recent = w[w.closed_at > history.now - pd.Timedelta(days=POOL_DAYS)]
    if len(recent) < min_wins:
        recent = w
    require(
        "won deals with an amount (for the amounts of deals not yet created)",
        len(recent),
        min_wins,
        history.now,
        "use a later as-of date",
    )
    amount = recent.amount_base.to_numpy(dtype=float)
    seg = recent.segment.astype(str).to_numpy()
    band = recent.amount_bin.astype(str).to_numpy()
    pools = []
    for s, b in keys:
        for mask in ((seg == s) & (band == b), band == b):
            if mask.sum() >= MIN_POOL:
                pools.append(amount[mask])
                break
        else:
            pools.append(amount)
    return AmountPool(tuple(keys), tuple(pools), len(recent))
