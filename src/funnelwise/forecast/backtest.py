"""Backtests: forecasts made as of past dates, scored against what was booked.

At each cut-off `t` (every `every` days from `start` to `end`) every method
is fitted on `log.as_of(t)` only, forecasts the bookings of `(t, t + horizon]`,
and is compared with the amount actually won in that window (amount_base of
deals won with closed_at in the window, read from the log uncut: a log filtered
to one pipeline scores against that pipeline's bookings alone). A method
that lacks history at a cut-off answers with the weighted-pipeline baseline
(the run rate if the process has no stage probabilities), flagged in the row.
The Monte Carlo forecast also enters recalibrated (`montecarlo_calibrated`):
at each cut-off its interval is scaled by the factor its own earlier forecasts
ask for, counting only those whose horizon had ended by the cut-off (see
`calibration.py`). The method with the lowest pinball loss (a proper score of
the whole distribution: accuracy and honest intervals together) is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from funnelwise.analytics.result import instant_text
from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.forecast.base import Forecaster
from funnelwise.forecast.baselines import RunRate, WeightedHistorical, WeightedPipeline
from funnelwise.forecast.calibration import Spread, sequential, spread_factor
from funnelwise.forecast.history import History, pull_history
from funnelwise.forecast.montecarlo import MonteCarlo
from funnelwise.forecast.options import (
    check_cutoff_range,
    check_paths,
    horizon_days,
    step_days,
)
from funnelwise.forecast.periods import check_period
from funnelwise.forecast.result import BacktestResult, ForecastResult, MethodScore
from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.timeutil import Instant, to_timestamp

METHODS: tuple[str, ...] = ("weighted_pipeline", "weighted_historical", "run_rate", "montecarlo")
BASELINE = "weighted_pipeline"
CALIBRATED = "montecarlo_calibrated"  # the Monte Carlo with its spread from its past errors
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
# Fewer cut-offs than this cannot tell methods apart nor judge an 80% interval (one
# miss in eight is already 12 points of coverage): the choice says so.
MIN_CUTOFFS = 8


def make_forecaster(
    method: str,
    *,
    by: str | None = None,
    n_paths: int = 10_000,
    seed: int = 0,
    spread: float = 1.0,
) -> Forecaster:
    """A forecaster by name (see METHODS); InputError naming the valid ones. `spread`
    scales the Monte Carlo's interval (see `calibration.py`)."""
    if method == "weighted_pipeline":
        return WeightedPipeline(by=by, n_paths=n_paths, seed=seed)
    if method == "weighted_historical":
        return WeightedHistorical(by=by, n_paths=n_paths, seed=seed)
    if method == "run_rate":
        return RunRate(by=by, n_paths=n_paths, seed=seed)
    if method == "montecarlo":
        return MonteCarlo(by=by, n_paths=n_paths, seed=seed, spread=spread)
    raise InputError(f"unknown method {method!r}; methods: {', '.join(METHODS)}, auto")


def predict_with_fallback(
    method: str,
    history: History,
    *,
    horizon: str | float,
    period: str = "month",
    target: float | None = None,
    n_paths: int = 10_000,
    seed: int = 0,
    spread: float = 1.0,
) -> ForecastResult:
    """Fit `method` on the history and predict; if it lacks history, the baseline
    answers and the result says so (`fallback`, `requested`). `spread` scales the
    Monte Carlo's interval."""
    check_period(period)
    horizon_days(horizon)
    chain = [method, *(m for m in (BASELINE, "run_rate") if m != method)]
    reasons: list[str] = []
    for name in chain:
        est = make_forecaster(name, by=history.by, n_paths=n_paths, seed=seed, spread=spread)
        try:
            est.fit_history(history)
        except NotEnoughDataError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        except InputError as exc:
            # A baseline the process cannot support (no stage probabilities).
            if name == method:
                raise
            reasons.append(f"{name}: {exc}")
            continue
        result = est.predict(horizon=horizon, period=period, target=target)
        if reasons:
            fallback = "; ".join(reasons) + f" — {name} answered instead"
            return _with_fallback(result, method, fallback)
        return result
    raise NotEnoughDataError(
        "no forecasting method has the history it needs: " + "; ".join(reasons)
    )


def _with_fallback(result: ForecastResult, requested: str, fallback: str) -> ForecastResult:
    return replace(result, requested=requested, fallback=fallback)


def _window(
    history_start: pd.Timestamp,
    observed_until: pd.Timestamp,
    horizon: float,
    start: Instant | None = None,
    end: Instant | None = None,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last cut-off allowed (unchecked): start (default: the first midnight
    two horizons after the first deal) and end (default: the last instant whose
    horizon is fully observed)."""
    hi = (
        to_timestamp(end, name="end")
        if end is not None
        else observed_until - pd.Timedelta(days=horizon)
    )
    lo = (
        to_timestamp(start, name="start")
        if start is not None
        else history_start + pd.Timedelta(days=2 * horizon)
    )
    return lo.ceil("D"), hi


def cutoff_dates(
    history_start: pd.Timestamp,
    observed_until: pd.Timestamp,
    *,
    horizon: float,
    every: float,
    start: Instant | None,
    end: Instant | None,
) -> list[pd.Timestamp]:
    """Midnight cut-offs every `every` days from start (default: first deal + 2 horizons)
    to end (default: the last date whose horizon is fully observed)."""
    lo, hi = _window(history_start, observed_until, horizon, start, end)
    last = observed_until - pd.Timedelta(days=horizon)
    if hi > last:
        raise InputError(
            f"end {hi:%Y-%m-%d} leaves less than the {horizon:g}-day horizon before the end of "
            f"observation ({observed_until:%Y-%m-%d}); use an end on or before {last:%Y-%m-%d}"
        )
    if lo > hi and start is None:
        span = (observed_until - history_start) / pd.Timedelta(days=1)
        longest = int(span // 3)
        while longest > 1 and _fits(history_start, observed_until, longest) < 0:
            longest -= 1  # the first cut-off is at a midnight
        raise NotEnoughDataError(
            f"no cut-off fits: the log covers {span:,.0f} days ({history_start:%Y-%m-%d} to "
            f"{observed_until:%Y-%m-%d}), and a backtest with a {horizon:g}-day horizon needs "
            f"two horizons of history before its first cut-off and a full horizon after its "
            f"last ({3 * horizon:g} days); use a horizon of at most {longest} "
            "days, or an earlier --start"
        )
    if lo > hi:
        raise NotEnoughDataError(
            f"no cut-off fits: a backtest with a {horizon:g}-day horizon needs history "
            f"before its first cut-off (from {lo:%Y-%m-%d} on) and a full horizon after its "
            f"last (by {hi:%Y-%m-%d}, the horizon before the end of observation on "
            f"{observed_until:%Y-%m-%d}); use a shorter horizon or an earlier --start"
        )
    n = int(np.floor((hi - lo) / pd.Timedelta(days=every))) + 1
    return [lo + pd.Timedelta(days=every * i) for i in range(n)]


def _fits(
    history_start: pd.Timestamp,
    observed_until: pd.Timestamp,
    horizon: float,
    start: Instant | None = None,
    end: Instant | None = None,
) -> float:
    """Whole days from the first allowed cut-off to the last (negative: none fits)."""
    lo, hi = _window(history_start, observed_until, horizon, start, end)
    return float(np.floor((hi - lo) / pd.Timedelta(days=1)))


# Days between cut-offs never fall below this with every="auto".
AUTO_MIN_SPACING = 7


def auto_spacing(
    history_start: pd.Timestamp,
    observed_until: pd.Timestamp,
    *,
    horizon: float,
    start: Instant | None = None,
    end: Instant | None = None,
) -> float:
    """Whole days between cut-offs: one horizon (windows that do not overlap) when
    that leaves MIN_CUTOFFS cut-offs, else as close as needed for MIN_CUTOFFS, but
    not under AUTO_MIN_SPACING days (a log too short for that gets fewer, and the
    backtest says they are too few). Where no cut-off fits, one horizon: the
    backtest then says why."""
    span = _fits(history_start, observed_until, horizon, start, end)
    if span < 0:
        return horizon
    return float(min(horizon, max(AUTO_MIN_SPACING, np.floor(span / (MIN_CUTOFFS - 1)))))


def _pinball(actual: np.ndarray, pred: np.ndarray, q: float) -> float:
    diff = actual - pred
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def score(method: str, rows: pd.DataFrame) -> MethodScore:
    """Accuracy of one method over its backtest rows (see MethodScore)."""
    r = rows.dropna(subset=["expected"])
    a = r.actual.to_numpy(float)
    total = float(a.sum())
    scale = float(a.mean()) if len(a) else float("nan")
    err = r.expected.to_numpy(float) - a
    pin = {
        k: _pinball(a, r[k].to_numpy(float), q) / scale if scale > 0 else float("nan")
        for k, q in QUANTILES.items()
    }
    nan = float("nan")
    return MethodScore(
        method=method,
        wape=float(np.abs(err).sum() / total) if total > 0 else nan,
        bias=float(err.sum() / total) if total > 0 else nan,
        pinball=float(np.mean(list(pin.values()))),
        pinball_p10=pin["p10"],
        pinball_p50=pin["p50"],
        pinball_p90=pin["p90"],
        # Nothing booked in any window puts no interval to the test.
        coverage80=float(np.mean((r.p10 <= r.actual) & (r.actual <= r.p90)))
        if len(r) and scale > 0
        else nan,
        n_cutoffs=len(r),
        n_fallback=int(r.fallback.notna().sum()),
        mean_actual=scale,
    )


def choose(scores: dict[str, MethodScore]) -> tuple[str, str]:
    """The method with the lowest pinball loss, and a sentence saying why."""
    usable = {
        m: s
        for m, s in scores.items()
        if s.n_cutoffs > 0 and s.n_fallback < s.n_cutoffs and np.isfinite(s.pinball)
    }
    if not usable:
        return BASELINE, "no method could be scored; the weighted pipeline is the default"
    ranked = sorted(usable.values(), key=lambda s: s.pinball)
    best = ranked[0]
    cutoffs = f"{best.n_cutoffs} cut-off{'s' if best.n_cutoffs != 1 else ''}"
    parts = [
        f"{best.method} has the lowest pinball loss ({best.pinball:.3f} of mean bookings) over "
        f"{cutoffs}"
    ]
    if len(ranked) > 1:
        parts.append(f"next {ranked[1].method} {ranked[1].pinball:.3f}")
    base = scores.get(BASELINE)
    if base is not None and best.method != BASELINE and np.isfinite(base.wape) and base.wape > 0:
        parts.append(
            f"WAPE {best.wape:.1%} against {base.wape:.1%} for the weighted pipeline "
            f"({1 - best.wape / base.wape:.0%} lower)"
        )
    else:
        parts.append(f"WAPE {best.wape:.1%}")
    parts.append(f"its 80% interval held the actual {best.coverage80:.0%} of the time")
    if best.n_cutoffs < MIN_CUTOFFS:
        parts.append(
            f"but {cutoffs} cannot tell the methods apart nor judge an interval (at least "
            f"{MIN_CUTOFFS} are needed): take an earlier start or a shorter spacing"
        )
    return best.method, "; ".join(parts)


def backtest(
    log: EventLog,
    *,
    horizon: str | float = "90d",
    every: str | float = "14d",
    start: Instant | None = None,
    end: Instant | None = None,
    methods: Sequence[str] = METHODS,
    n_paths: int = 10_000,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    pull: Callable[[EventLog], History] | None = None,
) -> BacktestResult:
    """Backtest forecasting methods on the log's own history.

    `horizon` and `every` are durations (`90d`, `2w`); `every="auto"` spaces the
    cut-offs as widely as the horizon allows while keeping MIN_CUTOFFS of them
    (see `auto_spacing`). `start`/`end` bound the cut-offs (defaults: two horizons
    after the first deal, and the last date whose horizon is fully observed).
    Every method sees only `log.as_of(t)`. `pull` replaces how the history is
    pulled (tests use it to inspect what a cut-off sees). Returns per-cut-off rows
    and per-method scores, with the chosen method.
    """
    report = progress or no_progress
    days = horizon_days(horizon)
    step = None if every == "auto" else step_days(every)
    check_paths(n_paths)
    check_cutoff_range(start, end)
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method {m!r}; methods: {', '.join(METHODS)}")
    first = log.deals.created_at.min().execute()
    if first is None or pd.isna(first):
        raise NotEnoughDataError("the log has no deals; load deals before a backtest")
    if step is None:
        step = auto_spacing(pd.Timestamp(first), log.now, horizon=days, start=start, end=end)
    cutoffs = cutoff_dates(
        pd.Timestamp(first), log.now, horizon=days, every=step, start=start, end=end
    )
    if cutoffs[0] < pd.Timestamp(first):
        # A cut-off before the first deal has nothing to forecast from.
        raise NotEnoughDataError(
            f"start {cutoffs[0]:%Y-%m-%d} is before the log's first deal, created on "
            f"{instant_text(first)}; "
            "use a later start (by default the first cut-off is two horizons after the "
            "first deal)"
        )
    won = log.deals.filter((log.deals.outcome == "won") & log.deals.closed_at.notnull())
    won_f = won.select("deal_id", "closed_at", "created_at", "amount_base").to_pandas()
    # The engine returns rows in any order, and a sum of floats depends on it.
    won_f = won_f.sort_values(["closed_at", "deal_id"], kind="stable")
    closed = won_f.closed_at.to_numpy(dtype="datetime64[ns]")
    created = won_f.created_at.to_numpy(dtype="datetime64[ns]")
    amounts = won_f.amount_base.fillna(0.0).to_numpy(float)
    pull = pull or pull_history
    rows = []
    # Methods this process cannot support (the weighted pipeline without stage
    # probabilities): left out with the reason, the others still compared.
    unusable: dict[str, str] = {}
    for i, t in enumerate(cutoffs):
        report("backtest", i, len(cutoffs))
        history = pull(log.as_of(t))
        t_end = t + pd.Timedelta(days=days)
        in_window = (closed > np.datetime64(t, "ns")) & (closed <= np.datetime64(t_end, "ns"))
        actual = float(amounts[in_window].sum())
        # Booked from deals open at the cut-off, and from deals created after it.
        actual_new = float(amounts[in_window & (created > np.datetime64(t, "ns"))].sum())
        for m in methods:
            if m in unusable:
                continue
            try:
                r = predict_with_fallback(
                    m, history, horizon=days, period="horizon", n_paths=n_paths, seed=seed
                )
            except InputError as exc:
                unusable[m] = str(exc)
                continue
            except NotEnoughDataError as exc:
                # Not even a baseline can answer this early: a later first cut-off helps.
                raise NotEnoughDataError(
                    f"at the cut-off of {t:%Y-%m-%d}, {exc}; start the backtest later"
                ) from exc
            rows.append(
                {
                    "cutoff": t,
                    "method": m,
                    "actual": actual,
                    "expected": r.expected,
                    "p10": r.p10,
                    "p50": r.p50,
                    "p90": r.p90,
                    "covered": bool(r.p10 <= actual <= r.p90),
                    "actual_open": actual - actual_new,
                    "actual_new": actual_new,
                    "expected_open": r.components.get("open_pipeline", np.nan),
                    "expected_new": r.components.get("new_pipeline", np.nan),
                    "answered_by": r.method,
                    "fallback": r.fallback,
                    # Shared shocks measured over weeks: the log was too short for months.
                    "weekly_shocks": bool(
                        r.diagnostics.get("shock_weekly") or r.diagnostics.get("arrival_weekly")
                    ),
                }
            )
    report("backtest", len(cutoffs), len(cutoffs))
    names = [m for m in methods if m not in unusable]
    if not names:
        raise InputError("no method can forecast this log: " + "; ".join(unusable.values()))
    frame = pd.DataFrame(rows)
    # A method that failed part-way keeps no rows: every method is scored on the
    # same cut-offs.
    frame = frame[frame.method.isin(names)].reset_index(drop=True)
    spread, notes = Spread(1.0, 1.0, 0, 0.0), []
    notes += [f"{m}: left out, {why}" for m, why in unusable.items()]
    if "montecarlo" in names:
        mc = frame[frame.method == "montecarlo"]
        calibrated, used = sequential(mc, horizon_days=days, every_days=step)
        frame = pd.concat(
            [frame, calibrated.assign(method=CALIBRATED, spread=[u.factor for u in used])],
            ignore_index=True,
        )
        names.append(CALIBRATED)
        # Every backtest outcome is known by the end of observation: the factor for a
        # forecast made then.
        spread = spread_factor(mc[mc.fallback.isna()], horizon_days=days, every_days=step)
        notes.append(f"{CALIBRATED}: at the end of observation, {spread.describe()}")
    weekly = frame[(frame.method == "montecarlo") & frame.weekly_shocks]
    if len(weekly):
        notes.append(
            f"montecarlo: at {len(weekly)} of {len(cutoffs)} cut-offs (from "
            f"{weekly.cutoff.min():%Y-%m-%d} to {weekly.cutoff.max():%Y-%m-%d}) the log was "
            "too short to compare months of wins or to replay the trailing arrival rate; "
            "shared shocks were measured over weeks, and those intervals are a rough guide"
        )
    scores = {m: score(m, frame[frame.method == m]) for m in names}
    chosen, reason = choose(scores)
    return BacktestResult(
        horizon_days=days,
        every_days=step,
        start=cutoffs[0],
        end=cutoffs[-1],
        rows=frame,
        scores=scores,
        chosen=chosen,
        reason=reason,
        n_paths=n_paths,
        seed=seed,
        notes=tuple(notes),
        spread=spread.factor,
        pipeline=log.pipeline_id,
    )
