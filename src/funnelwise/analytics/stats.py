"""Statistics on compact aggregates: Wilson intervals, Kaplan–Meier, Aalen–Johansen.

Inputs are already aggregated by the engine: counts per (duration, event)
rather than one row per deal, passed to lifelines as frequency weights. The
survival estimators see exactly the same risk sets as they would on the raw
rows, at a fraction of the memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.utils import median_survival_times
from scipy.stats import norm

from funnelwise.process.model import OUTCOME_KINDS

FloatArray = npt.NDArray[np.float64]
ALPHA = 0.05
# Event codes handed to Aalen–Johansen: 0 = still open (censored).
OUTCOME_CODES: dict[str, int] = {kind: i + 1 for i, kind in enumerate(OUTCOME_KINDS)}


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, *, alpha: float = ALPHA
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for k successes in n trials (element-wise).

    Returns (lower, upper) as shares in [0, 1]; NaN where n is 0. Stays inside
    [0, 1] and behaves at 0 and n, unlike the normal approximation: the lower
    bound is exactly 0 when k is 0 and the upper bound exactly 1 when k is n.
    """
    k = np.asarray(successes, dtype="float64")
    n = np.asarray(trials, dtype="float64")
    z = float(norm.ppf(1 - alpha / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # centre - half and centre + half cancel to 0 and 1 exactly on paper but not
    # in floating point (1 - 1.1e-16 for 10 of 10), which would put the estimate
    # itself outside its interval; at k == 0 and k == n the bound is the estimate.
    lower = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    upper = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return np.where(n > 0, lower, np.nan), np.where(n > 0, upper, np.nan)


def rate_columns(
    successes: npt.ArrayLike, trials: npt.ArrayLike, prefix: str, *, alpha: float = ALPHA
) -> dict[str, npt.NDArray[np.float64]]:
    """`{prefix}_rate`, `_lower`, `_upper`, `_n` columns: a rate with its denominator."""
    k = np.asarray(successes, dtype="float64")
    n = np.asarray(trials, dtype="float64")
    lower, upper = wilson_interval(k, n, alpha=alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, k / n, np.nan)
    return {
        f"{prefix}_rate": rate,
        f"{prefix}_lower": lower,
        f"{prefix}_upper": upper,
        f"{prefix}_n": n,
    }


@dataclass(frozen=True)
class DurationSummary:
    """Distribution of durations with censoring (Kaplan–Meier), in the input's units.

    Quantiles are NaN when the survival curve never falls that low (too many
    still running to say). `mean` is the restricted mean: the area under the
    survival curve up to the longest observed duration.
    """

    n: int
    n_censored: int
    median: float
    median_lower: float
    median_upper: float
    p75: float
    p90: float
    mean: float
    over_target: float
    over_target_lower: float
    over_target_upper: float


def _quantile_time(km: KaplanMeierFitter, q: float) -> float:
    """Smallest t where at least a share q of durations have ended (S(t) <= 1 - q)."""
    sf = km.survival_function_.iloc[:, 0]
    below = sf[sf <= 1 - q + 1e-12]
    return float(below.index[0]) if len(below) else float("nan")


def summarize_durations(
    durations: npt.ArrayLike,
    censored: npt.ArrayLike,
    counts: npt.ArrayLike | None = None,
    *,
    target: float | None = None,
    alpha: float = ALPHA,
) -> DurationSummary:
    """Kaplan–Meier summary of (possibly censored) durations with frequency counts.

    `over_target` is S(target): the estimated share of durations longer than
    target, with its pointwise interval (NaN without a target).
    """
    t = np.asarray(durations, dtype="float64")
    c = np.asarray(censored, dtype=bool)
    w = np.ones_like(t) if counts is None else np.asarray(counts, dtype="float64")
    n = int(w.sum())
    nan = float("nan")
    if n == 0:
        return DurationSummary(0, 0, *([nan] * 9))
    km = KaplanMeierFitter(alpha=alpha)
    # log(-log S) is undefined where S is 0 or 1; lifelines returns NaN bounds there.
    with np.errstate(divide="ignore", invalid="ignore"):
        km.fit(t, event_observed=~c, weights=w)
        ci = median_survival_times(km.confidence_interval_)
    sf = km.survival_function_.iloc[:, 0]
    times = sf.index.to_numpy(dtype="float64")
    steps = np.diff(times, append=times[-1])
    ended = float(w[~c].sum())
    # With nothing ended yet the area is only the follow-up, not a mean.
    mean = float((sf.to_numpy() * steps).sum()) if ended else nan
    over = over_lo = over_hi = nan
    # Past the longest observed duration, with durations still running, S is unknown.
    if target is not None and (target <= times[-1] or sf.iloc[-1] <= 0):
        over = float(km.survival_function_at_times(target).iloc[0])
        bounds = km.confidence_interval_.iloc[: int(np.searchsorted(times, target, "right"))]
        if len(bounds):
            over_lo, over_hi = (float(v) for v in bounds.iloc[-1])
        # At S = 0 or 1 the log-log interval is undefined: all the durations seen
        # so far fell on one side, so the missing bound is the Wilson one for none
        # of them on the other side (the deals at risk at the target, or the
        # durations that ended).
        if over >= 1:
            at_risk = float(w[t >= target].sum())
            over_lo, over_hi = 1.0 - float(wilson_interval(0, at_risk, alpha=alpha)[1]), 1.0
        elif over <= 0:
            over_lo, over_hi = 0.0, float(wilson_interval(0, ended, alpha=alpha)[1])
    return DurationSummary(
        n=n,
        n_censored=int(w[c].sum()),
        median=_quantile_time(km, 0.5),
        median_lower=float(ci.iloc[0, 0]),
        median_upper=float(ci.iloc[0, 1]),
        p75=_quantile_time(km, 0.75),
        p90=_quantile_time(km, 0.9),
        mean=mean,
        over_target=over,
        over_target_lower=over_lo,
        over_target_upper=over_hi,
    )


# Within one day, outcomes are processed before censoring (deals still open that
# day stay at risk for it); the order among outcomes does not change the estimate.
_DAY_OFFSET = {0: 0.4, 1: 0.1, 2: 0.2, 3: 0.3}


def cumulative_incidence(
    days: npt.ArrayLike,
    codes: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    alpha: float = ALPHA,
    labels: Mapping[str, int] = OUTCOME_CODES,
) -> pd.DataFrame:
    """Aalen–Johansen cumulative incidence of each outcome by whole day.

    `days` are whole days to the outcome (or to censoring), `codes` are the
    outcome codes of `labels` (at most 3, numbered from 1; 0 = censored; by
    default won, lost, no_decision) and `counts` how many deals share the
    (day, code). Returns one row per (day with any event or censoring, outcome):
    day, outcome, cif, lower, upper, at_risk (deals at risk at the start of the
    day). The curve is a step function: its value holds until the next row.

    lifelines cannot take tied times of different outcomes and would jitter
    them at random; offsetting each outcome by a fixed fraction of the day gives
    the exact tied-time estimate deterministically.
    """
    d = np.asarray(days, dtype="int64")
    e = np.asarray(codes, dtype="int64")
    w = np.asarray(counts, dtype="float64")
    cols = ["day", "outcome", "cif", "lower", "upper", "at_risk"]
    if w.sum() == 0:
        return pd.DataFrame(columns=cols)
    offset = np.vectorize(_DAY_OFFSET.__getitem__, otypes=["float64"])(e)
    times = d.astype("float64") + offset
    # Per whole day: deals at risk at its start, and deals closed (any outcome) by its end.
    day_index, slot = np.unique(d, return_inverse=True)
    at_risk = np.bincount(slot, weights=w)[::-1].cumsum()[::-1]
    closed = np.bincount(slot, weights=w * (e > 0)).cumsum()
    frames = []
    for kind, code in labels.items():
        if not (w[e == code] > 0).any():
            # Never happened: incidence 0 throughout; its upper bound is the Wilson
            # bound for no such outcome among the deals seen to close so far.
            frames.append(
                pd.DataFrame(
                    {
                        "day": day_index,
                        "cif": 0.0,
                        "lower": 0.0,
                        "upper": wilson_interval(np.zeros_like(closed), closed, alpha=alpha)[1],
                        "at_risk": at_risk,
                        "outcome": kind,
                    }
                )
            )
            continue
        ajf = AalenJohansenFitter(alpha=alpha, calculate_variance=False)
        ajf.fit(times, e, event_of_interest=code, weights=w)
        table = ajf.event_table
        cif = ajf.cumulative_density_.iloc[:, 0].to_numpy()
        lower, upper = _aj_bounds(table, cif, f"observed_{code}", alpha)
        f = pd.DataFrame(
            {
                "time": table.index.to_numpy(dtype="float64"),
                "cif": cif,
                "lower": lower,
                "upper": upper,
                "at_risk": table["at_risk"].to_numpy(),
            }
        )
        f["day"] = np.floor(f["time"]).astype("int64")
        # One row per day: its first risk set and its last estimate. `tail`, not
        # `last`: `last` skips missing values and would mix bounds of different rows.
        first = f.groupby("day", sort=True)["at_risk"].first()
        f = f.groupby("day", sort=True)[["cif", "lower", "upper"]].tail(1).assign(day=f["day"])
        f = f.set_index("day")
        f["at_risk"] = first
        f = f.reset_index()
        f["outcome"] = kind
        _boundary_bounds(f, day_index, closed, alpha)
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)[cols]
    return out.sort_values(["outcome", "day"], kind="stable").reset_index(drop=True)


def _boundary_bounds(
    curve: pd.DataFrame, day_index: FloatArray, closed: FloatArray, alpha: float
) -> None:
    """Fill the bounds the log-log transform cannot give, in place.

    At an incidence of 0 or 1 every deal seen to close so far closed the
    same way, so the estimate is a plain proportion of those deals: the
    missing side is the Wilson bound for none (or all) of them. Before any
    deal has closed nothing bounds it and the side stays NaN.
    """
    n = closed[np.searchsorted(day_index, curve["day"].to_numpy(), side="right") - 1]
    none_upper = wilson_interval(np.zeros_like(n), n, alpha=alpha)[1]
    at_zero = curve["cif"].to_numpy() <= 0
    at_one = curve["cif"].to_numpy() >= 1
    curve.loc[at_zero, "lower"] = 0.0
    curve.loc[at_zero, "upper"] = none_upper[at_zero]
    curve.loc[at_one, "upper"] = 1.0
    curve.loc[at_one, "lower"] = 1.0 - none_upper[at_one]


def _aj_bounds(
    table: pd.DataFrame, cif: FloatArray, observed: str, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Pointwise log-log interval of an Aalen–Johansen curve.

    The variance is the delta-method formula lifelines documents (Collett,
    Modelling Survival Data, 3rd ed., p. 411), computed with running sums
    instead of a row loop. At the last time, when every deal still at risk
    closes, the first term is 0 · inf; its limit is 0, where lifelines
    returns NaN.
    """
    n = table["at_risk"].to_numpy(dtype="float64")
    d = table["observed"].to_numpy(dtype="float64")
    dk = table[observed].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(np.where(n > 0, 1 - d / n, 1.0))
        lag = np.concatenate([[1.0], surv[:-1]])
        a = np.where(n > d, d / (n * (n - d)), 0.0)
        b = np.where(n > 0, lag**2 * dk * (n - dk) / n**3, 0.0)
        c = np.where(n > 0, lag * dk / n**2, 0.0)
    # sum_i a_i (F - F_i)^2 = F^2 A0 - 2 F A1 + A2, with A the running sums.
    a0, a1, a2 = np.cumsum(a), np.cumsum(a * cif), np.cumsum(a * cif**2)
    c0, c1 = np.cumsum(c), np.cumsum(c * cif)
    var = cif**2 * a0 - 2 * cif * a1 + a2 + np.cumsum(b) - 2 * (cif * c0 - c1)
    var = np.clip(var, 0.0, None)
    z = float(norm.ppf(1 - alpha / 2))
    # Near 0 and 1 the transform runs to +-inf; exp(-exp(inf)) = 0 is the right limit.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_f = np.log(cif)
        se = np.sqrt(var) / (cif * np.abs(log_f))
        centre = np.log(-log_f)
        lower = np.exp(-np.exp(centre + z * se))
        upper = np.exp(-np.exp(centre - z * se))
    inside = (cif > 0) & (cif < 1)
    return np.where(inside, lower, np.nan), np.where(inside, upper, np.nan)


def value_at(curve: pd.DataFrame, day: float, columns: Sequence[str]) -> list[float]:
    """Values of a step curve (sorted by `day`) at `day`: the last row at or before it."""
    if curve.empty:
        return [float("nan")] * len(columns)
    idx = int(np.searchsorted(curve["day"].to_numpy(), day, side="right")) - 1
    if idx < 0:
        return [0.0] * len(columns)
    return [float(curve[c].iloc[idx]) for c in columns]


def incidence_quantile(curve: pd.DataFrame, share: float) -> float:
    """First day the incidence curve reaches `share` of its final level (NaN if flat at 0).

    The day by which that share of the deals that end in this outcome have
    ended in it: a censoring-aware quantile of time to the outcome.
    """
    if curve.empty:
        return float("nan")
    final = float(curve["cif"].iloc[-1])
    if final <= 0:
        return float("nan")
    hit = curve[curve["cif"] >= share * final - 1e-12]
    return float(hit["day"].iloc[0])
