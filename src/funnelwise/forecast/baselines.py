"""The baselines funnelwise measures itself against.

- `WeightedPipeline`: what CRMs show. The sum of amount × the stage
  probability written in process.yaml over the open deals whose expected
  close date, as it stood at the as-of date, falls within the horizon.
  Deals without an expected close date are counted as closing at an even
  pace over the horizon (a CRM without close dates shows its whole weighted
  pipeline); deals whose date has already passed are left out, as in a CRM.
  Deals without an amount count at the mean amount of recent wins, as in the
  Monte Carlo model, so that the two differ in their probabilities and timing,
  not in how they fill gaps.
- `WeightedHistorical`: the same deals weighted by each stage's historical
  win rate (closed deals that visited the stage, share won).
- `RunRate`: bookings per day over a trailing window, times the days ahead.

A CRM shows one number. To score baselines on the same footing as the
Monte Carlo model, each also gets the distribution its own assumptions imply,
drawn over `n_paths` simulated futures (seeded): for the weighted pipelines,
each deal won or not with its probability, independently of the others; for
the run rate, a Poisson number of wins at the trailing rate, each worth the
amount of a past win drawn at random. A normal curve would not do: one open
deal of 12,500 at 20% books 0 or 12,500, never the 8,908 a normal's P90 says.
Amounts are amount_base, in the process currency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from funnelwise.errors import InputError
from funnelwise.forecast.arrivals import AmountPool
from funnelwise.forecast.base import DAY, Forecaster, fill_amounts, require, segments_of
from funnelwise.forecast.history import History
from funnelwise.forecast.montecarlo import independent_paths
from funnelwise.forecast.options import check_paths
from funnelwise.forecast.periods import PeriodGrid
from funnelwise.forecast.result import ForecastSummary, summary_from_paths
from funnelwise.timeutil import to_days


def _seg_index(values: pd.Series, segments: list[str]) -> np.ndarray:
    if segments == ["all"]:
        return np.zeros(len(values), dtype=np.int64)
    return pd.Categorical(values.astype(str), categories=segments).codes.astype(np.int64)


def period_shares(grid: PeriodGrid) -> np.ndarray:
    """Share of the horizon's days in each period."""
    return np.diff(np.concatenate([[0], grid.end_days])) / grid.n_days


def weighted_pipeline(
    history: History,
    grid: PeriodGrid,
    prob: np.ndarray,
    target: float | None,
    *,
    n_paths: int,
    seed: int,
) -> tuple[ForecastSummary, dict[str, Any]]:
    """Σ amount × prob over open deals closing in the horizon, per segment and period,
    with the distribution of independent deals, each won with its `prob` or not."""
    od = history.open_deals
    segments = segments_of(history, od.segment)
    seg = _seg_index(od.segment, segments)
    amount, notes = fill_amounts(history, od.amount_base.to_numpy(dtype=float))
    ecd = pd.to_datetime(od.expected_close_date)
    dated = ecd.notna().to_numpy()
    day = np.zeros(len(od), dtype=np.int64)
    if dated.any():
        # An expected close date names a whole day: on an instant grid it is the day
        # ending the midnight after it; on a dated grid (see `period_grid`) a stamp is
        # the day ending at it.
        after = ((ecd[dated] - history.now.normalize()) / DAY).to_numpy().astype(np.int64)
        day[dated] = after + (0 if grid.dated else 1)
    inside = dated & (day >= 1) & (day <= grid.n_days)
    overdue = dated & (day < 1)
    undated = ~dated
    # Chance of being won by the end of each period: a dated deal closes in the period
    # holding its date; an undated one at an even pace over the horizon.
    cum = np.zeros((len(od), len(grid)))
    period = np.searchsorted(grid.end_days, day)  # first period ending on/after the day
    cum[inside] = prob[inside, None] * (np.arange(len(grid))[None, :] >= period[inside, None])
    cum[undated] = prob[undated, None] * np.cumsum(period_shares(grid))[None, :]
    counted = inside | undated
    paths, expected, info = independent_paths(
        cum[counted],
        amount[counted],
        seg[counted],
        len(segments),
        grid,
        n_paths=n_paths,
        seed=seed,
    )
    if not counted.any():
        notes.append(
            f"no open deal is expected to close by {history.now + DAY * grid.n_days:%Y-%m-%d}: "
            "the weighted pipeline is zero"
        )
    if undated.any():
        notes.append(
            f"{int(undated.sum()):,} open deals have no expected close date; "
            "they are counted as closing evenly over the horizon"
        )
    if overdue.any():
        notes.append(
            f"{int(overdue.sum()):,} open deals have an expected close date "
            f"{'on or before' if grid.dated else 'before'} {history.now:%Y-%m-%d} "
            "and are left out, as a CRM does"
        )
    extra = {
        "n_paths": n_paths,
        "seed": seed,
        "notes": tuple(notes),
        "components": {"open_pipeline": float(expected.sum()), "new_pipeline": 0.0},
        "diagnostics": {
            "open_deals": len(od),
            "deals_in_horizon": int(inside.sum()),
            "deals_undated": int(undated.sum()),
            "deals_overdue": int(overdue.sum()),
            "open_value": float(amount.sum()),
            **info,
        },
    }
    return summary_from_paths(paths, expected, grid, segments, target), extra


def _stage_key(frame: pd.DataFrame, stage_col: str) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame.pipeline_id, frame[stage_col]])


class _Simulated(Forecaster):
    """A baseline whose interval is drawn over `n_paths` futures from `seed`."""

    def __init__(self, *, by: str | None = None, n_paths: int = 10_000, seed: int = 0) -> None:
        super().__init__(by=by)
        self.n_paths = n_paths
        self.seed = seed

    def fit_history(self, history: History) -> Forecaster:
        check_paths(self.n_paths)
        return super().fit_history(history)


class WeightedPipeline(_Simulated):
    """Weighted pipeline with the probabilities written in process.yaml (the CRM number).

    Options: `n_paths` simulated futures and their `seed`, for the interval.
    Fitted: `probabilities_` (pipeline_id, stage_id, probability).
    """

    name = "weighted_pipeline"

    def _fit(self, history: History) -> None:
        st = history.stages
        self.probabilities_ = st[["pipeline_id", "stage_id", "probability"]].reset_index(drop=True)
        used = set(zip(history.open_deals.pipeline_id, history.open_deals.stage_id, strict=True))
        missing = [
            s
            for p, s, prob in st[["pipeline_id", "stage_id", "probability"]].itertuples(index=False)
            if (p, s) in used and pd.isna(prob)
        ]
        if missing:
            raise InputError(
                f"stages {', '.join(sorted(missing))} have no probability in process.yaml; "
                "add `probability:` to each stage, or use method weighted_historical"
            )

    def _probs(self, history: History) -> np.ndarray:
        p = self.probabilities_.set_index(["pipeline_id", "stage_id"]).probability
        return p.reindex(_stage_key(history.open_deals, "stage_id")).fillna(0.0).to_numpy(float)

    def _predict(
        self, history: History, grid: PeriodGrid, target: float | None
    ) -> tuple[ForecastSummary, dict[str, Any]]:
        return weighted_pipeline(
            history, grid, self._probs(history), target, n_paths=self.n_paths, seed=self.seed
        )


class WeightedHistorical(WeightedPipeline):
    """Weighted pipeline with each stage's historical win rate instead of the typed one.

    The rate of a stage is the share won among closed deals that visited it (a
    stage no closed deal visited gets the overall rate). Needs `min_closed`
    closed deals. Fitted: `probabilities_` (with `closed` and `won` counts).
    """

    name = "weighted_historical"

    def __init__(
        self, *, by: str | None = None, n_paths: int = 10_000, seed: int = 0, min_closed: int = 10
    ) -> None:
        super().__init__(by=by, n_paths=n_paths, seed=seed)
        self.min_closed = min_closed

    def _fit(self, history: History) -> None:
        rates = history.stage_rates
        require(
            "closed deals for historical stage win rates",
            history.closed,
            self.min_closed,
            history.now,
            "use a later as-of date, or the weighted_pipeline baseline",
        )
        st = history.stages[history.stages.kind == "open"][["pipeline_id", "stage_id"]]
        f = st.merge(rates, on=["pipeline_id", "stage_id"], how="left").fillna(
            {"closed": 0, "won": 0}
        )
        overall = history.outcomes["won"] / history.closed
        f["probability"] = np.where(f.closed > 0, f.won / f.closed.where(f.closed > 0), overall)
        self.probabilities_ = f.reset_index(drop=True)


class RunRate(_Simulated):
    """Bookings per day over the trailing `window`, times the days ahead.

    Intervals treat future wins as a compound Poisson process: per period a
    Poisson number of wins at the trailing rate, each worth a past win's amount
    drawn at random (`n_paths` futures from `seed`). Needs `min_wins` wins in the
    window; with less history than the window it uses what there is (at least
    `min_days`). Fitted: `rate_per_day_`, `window_days_`, `n_wins_`.
    """

    name = "run_rate"

    def __init__(
        self,
        *,
        by: str | None = None,
        n_paths: int = 10_000,
        seed: int = 0,
        window: str | float = "26w",
        min_wins: int = 3,
        min_days: float = 28.0,
    ) -> None:
        super().__init__(by=by, n_paths=n_paths, seed=seed)
        self.window = window
        self.min_wins = min_wins
        self.min_days = min_days

    def _fit(self, history: History) -> None:
        window = to_days(self.window, name="window")
        days = min(window, history.history_days)
        require(
            "days of history for a run rate",
            int(days),
            int(self.min_days),
            history.now,
            "use a later as-of date",
        )
        w = history.wins
        recent = w[w.closed_at > history.now - pd.Timedelta(days=days)]
        require(
            f"deals won in the trailing {days:g} days",
            len(recent),
            self.min_wins,
            history.now,
            "use a longer window or a later as-of date",
        )
        self.window_days_ = days
        self.wins_ = recent.reset_index(drop=True)
        self.n_wins_ = len(recent)
        self.rate_per_day_ = float(recent.amount_base.fillna(0).sum() / days)

    def _predict(
        self, history: History, grid: PeriodGrid, target: float | None
    ) -> tuple[ForecastSummary, dict[str, Any]]:
        w = self.wins_
        segments = segments_of(history, w.segment)
        seg = _seg_index(w.segment, segments)
        # A win without an amount books nothing known: it counts as a win of 0.
        a = w.amount_base.fillna(0.0).to_numpy(float)
        pool = AmountPool(
            keys=tuple((s, "") for s in segments),
            amounts=tuple(a[seg == i] for i in range(len(segments))),
            n_wins=len(a),
        )
        wins_per_day = np.bincount(seg, minlength=len(segments)) / self.window_days_
        m1 = np.bincount(seg, weights=a, minlength=len(segments)) / self.window_days_
        days = np.diff(np.concatenate([[0], grid.end_days])).astype(float)
        rng = np.random.default_rng(self.seed)
        n = rng.poisson(
            wins_per_day[None, :, None] * days[None, None, :],
            (self.n_paths, len(segments), len(grid)),
        )
        which = np.broadcast_to(np.arange(len(segments))[None, :, None], n.shape)
        paths = pool.draw_sums(rng, n, which)
        extra = {
            "n_paths": self.n_paths,
            "seed": self.seed,
            "diagnostics": {
                "window_days": self.window_days_,
                "wins_in_window": self.n_wins_,
                "rate_per_day": self.rate_per_day_,
            },
        }
        return summary_from_paths(paths, m1[:, None] * days[None, :], grid, segments, target), extra
