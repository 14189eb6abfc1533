"""`forecast(log)`: the one call behind `funnelwise forecast` and `fw.forecast`."""

from __future__ import annotations

from dataclasses import replace

from funnelwise.errors import NotEnoughDataError
from funnelwise.forecast.backtest import CALIBRATED, backtest, predict_with_fallback
from funnelwise.forecast.history import pull_history
from funnelwise.forecast.options import check_paths, check_spacing, check_target, horizon_days
from funnelwise.forecast.result import ForecastResult
from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback
from funnelwise.timeutil import Instant


def forecast(
    log: EventLog,
    *,
    horizon: str | float = "90d",
    as_of: Instant | None = None,
    period: str = "month",
    by: str | None = None,
    target: float | None = None,
    method: str = "montecarlo",
    n_paths: int = 10_000,
    seed: int = 0,
    every: str | float = "14d",
    progress: ProgressCallback | None = None,
) -> ForecastResult:
    """Bookings (won amount_base, process currency) expected over `horizon` after
    `as_of` (default: the end of observation), as a distribution.

    Returns per `period` (week, month, quarter or horizon) and per segment `by`
    (a deal column or attribute) the expected value and P10 / P50 / P90, and the
    probability of reaching `target` over the horizon. `method` is montecarlo,
    weighted_pipeline, weighted_historical, run_rate, or auto (backtest every
    method as of past dates every `every` days, then use the best and say why; the
    Monte Carlo with its interval calibrated on its backtest errors is one of them).
    A method that lacks history falls back to the weighted-pipeline baseline,
    and the result says so (`fallback`); so does auto when the history holds no
    backtest (montecarlo answers then, falling back in turn).
    """
    # Checked before any work: a backtest (`auto`) takes minutes to reach them.
    horizon_days(horizon)
    check_paths(n_paths)
    check_target(target)
    if method == "auto":
        check_spacing(every)
    cut = log.as_of(as_of) if as_of is not None else log
    notes: tuple[str, ...] = ()
    diagnostics: dict[str, object] = {}
    chosen, spread = method, 1.0
    unchosen: str | None = None
    if method == "auto":
        try:
            bt = backtest(
                cut, horizon=horizon, every=every, n_paths=n_paths, seed=seed, progress=progress
            )
        except NotEnoughDataError as exc:
            # Too little history to compare methods is too little history, as for any
            # method: the default answers (and falls back in turn), and says why.
            chosen, unchosen = "montecarlo", f"auto: a backtest chooses the method, and {exc}"
        else:
            chosen = bt.chosen
            notes = (f"method chosen by a backtest of {len(bt.cutoffs)} cut-offs: {bt.reason}",)
            if chosen == CALIBRATED:
                chosen, spread = "montecarlo", bt.spread
                notes = (*notes, *bt.notes)
            diagnostics = {f"backtest_{m}_pinball": s.pinball for m, s in bt.scores.items()}
    history = pull_history(cut, by=by)
    result = predict_with_fallback(
        chosen,
        history,
        horizon=horizon,
        period=period,
        target=target,
        n_paths=n_paths,
        seed=seed,
        spread=spread,
    )
    if method != "auto":
        return result
    fallback = result.fallback
    if unchosen is not None:
        fallback = f"{unchosen}; {fallback}" if fallback else f"{unchosen} — montecarlo answered"
    return replace(
        result,
        requested="auto",
        fallback=fallback,
        notes=(*notes, *result.notes),
        diagnostics={**result.diagnostics, **diagnostics},
    )
