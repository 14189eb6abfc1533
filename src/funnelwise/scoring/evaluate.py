"""Evaluating scores on a strictly time-ordered split, against the baselines.

Deals created early enough for most outcomes to be known by the end of the
log (`maturity_days` before it) are ordered by creation; the last
`test_fraction` of them are the test deals. Every scorer is fitted on
`log.as_of(first test deal's start)`, so no event after that instant reaches
training. Test rows are the test deals as known at later instants until the end
of the log (features from `log.as_of(t)`), labelled with the outcome known
then; deals still open then are censored, however long they have been open
(the scorer learns long-stalled deals as not won, an assumption the test does
not rest on).

Metrics (all on test rows): ROC AUC, PR AUC (average precision), Brier score
(mean squared error of the probability, lower is better), expected calibration
error (ECE: the row-weighted mean gap between predicted and observed
frequency over 10 equal-width bins), and lift and gains in the top decile
(the positive rate of the 10% highest-scored rows over the base rate; the
share of all positives found there).

A test deal is scored at several instants, so its rows are not independent:
the 95% intervals of each ROC AUC and of its difference from the model's
come from a paired bootstrap over test deals (each resample draws deals with
replacement and keeps all their rows, and scores every scorer on the same
draw), seeded with the model's seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from funnelwise.analytics.stats import rate_columns
from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback
from funnelwise.scoring.base import Scorer
from funnelwise.scoring.baselines import LogisticScorer, NaiveBayesScorer, RuleScorer
from funnelwise.scoring.features import TARGETS
from funnelwise.scoring.labels import (
    check_target,
    labelled_snapshots,
    maturity_days,
    snapshot_grid,
    snapshot_times,
    unit_starts,
    units_created_between,
)
from funnelwise.scoring.models import BoostedScorer
from funnelwise.scoring.result import Evaluation

BINS = 10
TOP_FRACTION = 0.1
# Resamples of the test deals (or leads) for the ROC AUC intervals, and their level.
RESAMPLES = 400
LEVEL = 0.95
# Cells (resamples × rows) handled at once: bounds the memory of the bootstrap.
BOOTSTRAP_CELLS = 2_000_000


def reliability_table(y: np.ndarray, p: np.ndarray, *, bins: int = BINS) -> pd.DataFrame:
    """Per equal-width probability bin: rows, mean predicted, observed rate with its
    Wilson 95% interval. Empty bins are left out."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins).astype(float)
    pos = np.bincount(idx, weights=y, minlength=bins)
    psum = np.bincount(idx, weights=p, minlength=bins)
    keep = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = psum / n
    frame = pd.DataFrame(
        {
            "bin_lo": np.arange(bins) / bins,
            "bin_hi": (np.arange(bins) + 1) / bins,
            "rows": n,
            "predicted": mean_p,
            **rate_columns(pos, n, "observed"),
        }
    )
    return frame[keep].reset_index(drop=True)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = BINS) -> float:
    """Row-weighted mean |mean predicted − observed rate| over equal-width bins."""
    table = reliability_table(y, p, bins=bins)
    if table.empty:
        return float("nan")
    gap = (table["predicted"] - table["observed_rate"]).abs()
    return float((gap * table["rows"]).sum() / table["rows"].sum())


def lift_and_gains(
    y: np.ndarray, p: np.ndarray, *, fraction: float = TOP_FRACTION
) -> tuple[float, float]:
    """(lift, gains) of the top `fraction` of rows by score.

    Rows tied with the score at the cut count with their mean outcome: the
    expected hits if the tie were broken at random. Breaking it by row order
    would credit a constant score with whatever order the rows came in (time,
    for a time-ordered split).
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return float("nan"), float("nan")
    k = max(1, math.ceil(fraction * n))
    cut = np.sort(p)[::-1][k - 1]
    above = p > cut
    tied = p == cut
    hit = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float((hit / k) / y.mean()), float(hit / y.sum())


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, ECE, lift and gains in the top decile (NaN when undefined)."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    both = len(np.unique(y)) == 2
    lift, gains = lift_and_gains(y, p)
    return {
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift,
        "gains_top_decile": gains,
    }


def weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of scores `p` for labels `y` under each row of `weights` (resamples ×
    rows): the weighted share of (positive, negative) pairs ordered right, ties
    counting one half. NaN where a resample lacks either outcome."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(np.asarray(p, dtype=float), kind="stable")
    ranked = np.asarray(p, dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    w = np.atleast_2d(weights)[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w, starts, axis=1) - pos
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((pos * (below + 0.5 * neg)).sum(axis=1) / pairs, dtype=float)


def _percentiles(values: np.ndarray, tail: float) -> tuple[float, float]:
    """The `tail` and 100 − `tail` percentiles of the finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def auc_intervals(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    units: np.ndarray,
    *,
    reference: str,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Per scorer (index: the keys of `scores`), the bootstrap interval of its ROC AUC
    (`roc_auc_lower`, `roc_auc_upper`) and of its difference from the `reference`
    scorer's (`roc_auc_vs_model`, the point difference, with `_lower`, `_upper`).

    The bootstrap is paired and clustered: each resample draws the units (deals or
    leads) with replacement, keeps every row of a drawn unit as often as it was
    drawn, and scores all scorers on that same draw. Percentile intervals.
    """
    y = np.asarray(y, dtype=int)
    codes, uniques = pd.factorize(pd.Series(units))
    n_units = len(uniques)
    rng = np.random.default_rng(seed)
    aucs: dict[str, list[np.ndarray]] = {k: [] for k in scores}
    block = max(1, BOOTSTRAP_CELLS // max(1, len(y)))
    for first in range(0, resamples, block):
        size = min(block, resamples - first)
        draws = rng.integers(0, n_units, size=(size, n_units))
        counts = np.bincount(
            (draws + n_units * np.arange(size)[:, None]).ravel(), minlength=size * n_units
        ).reshape(size, n_units)
        weights = counts[:, codes].astype(float)
        for k, p in scores.items():
            aucs[k].append(weighted_auc(y, p, weights))
    tail = 100 * (1 - level) / 2
    full = {k: float(weighted_auc(y, p, np.ones(len(y)))[0]) for k, p in scores.items()}
    ref = np.concatenate(aucs[reference])
    rows = {}
    for k, parts in aucs.items():
        boot = np.concatenate(parts)
        diff = boot - ref
        lo, hi = _percentiles(boot, tail)
        dlo, dhi = _percentiles(diff, tail)
        rows[k] = {
            "roc_auc_lower": lo,
            "roc_auc_upper": hi,
            "roc_auc_vs_model": full[k] - full[reference],
            "roc_auc_vs_model_lower": dlo if k != reference else np.nan,
            "roc_auc_vs_model_upper": dhi if k != reference else np.nan,
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.loc[reference, "roc_auc_vs_model"] = np.nan
    return frame


def cannot_rank(scorer: Scorer, rows: pd.DataFrame, p: np.ndarray, unit: str) -> str | None:
    """Why `scorer` cannot rank the test rows (it gives them all the same score), or
    None when it can."""
    if len(p) == 0 or np.ptp(p) > 0:
        return None
    n = int(rows[TARGETS[scorer.target].id_column].nunique())
    text = (
        f"{scorer.label} gives the {n:,} later {unit} the same score "
        f"({100 * float(p[0]):.0f}%) at every instant, so it cannot rank them"
    )
    why = scorer.why_constant(rows) if isinstance(scorer, RuleScorer) else ""
    return f"{text}: {why}." if why else f"{text}."


def default_scorers(model: BoostedScorer) -> list[Scorer]:
    """The model and the three baselines, sharing the model's data parameters."""
    shared = {
        k: v
        for k, v in model.get_params().items()
        if k
        in ("target", "snapshots", "calibration_fraction", "horizon_days", "min_outcomes", "seed")
    }
    return [model, RuleScorer(**shared), NaiveBayesScorer(**shared), LogisticScorer(**shared)]


def test_start(
    log: EventLog, target: str, test_fraction: float, *, mature_by: pd.Timestamp
) -> pd.Timestamp:
    """The creation instant of the first test deal (or lead).

    Deals created by `mature_by` (late enough before the end of the log for
    most of their outcomes to be known) are ordered by creation; the last
    `test_fraction` of them are the test deals.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be between 0 and 1 (got {test_fraction})")
    starts = unit_starts(log, target)
    starts = starts[starts <= mature_by].reset_index(drop=True)
    if len(starts) < 2:
        raise NotEnoughDataError(
            f"{len(starts)} {'deals' if target == 'won' else 'leads'} created by {mature_by} "
            "(outcomes take time to be known); an evaluation needs a history to split"
        )
    first = min(len(starts) - 1, math.floor(len(starts) * (1.0 - test_fraction)))
    return pd.Timestamp(starts.iloc[first])


def evaluate_scorers(
    log: EventLog,
    *,
    target: str | None = None,
    model: BoostedScorer | None = None,
    scorers: Sequence[Scorer] | None = None,
    test_fraction: float = 0.2,
    test_snapshots: int | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Fit the model and the baselines on the history before the first test deal's
    start, and measure them on the test deals as known at later instants.

    `target` defaults to the model's ('won' without a model); `model` to
    `BoostedScorer(target=target)`; `scorers` to the model
    and the rule, naive Bayes and logistic baselines. The test deals are
    followed from the split to the end of the log at the model's snapshot
    spacing (or at `test_snapshots` evenly spaced instants).
    """
    if target is None:
        target = model.target if model is not None else "won"
    target = check_target(target)
    model = model if model is not None else BoostedScorer(target=target)
    if model.target != target:
        raise InputError(f"model target {model.target!r} differs from target {target!r}")
    chosen = list(scorers) if scorers is not None else default_scorers(model)
    end = log.now
    starts = unit_starts(log, target)
    maturity = maturity_days(log, target, horizon_days=model.horizon_days)
    if len(starts):
        # Keep at least half of the history before the test deals, whatever the cycle.
        half = (end - starts.iloc[0]).total_seconds() / 86400.0 / 2.0
        maturity = min(maturity, half)
    test_end = end - pd.Timedelta(days=maturity).floor("s")
    split_at = test_start(log, target, test_fraction, mature_by=test_end)
    train_log = log.as_of(split_at)
    data = model.training_data(train_log, progress=progress)
    for scorer in chosen:
        if scorer.needs_outcomes:
            scorer.fit_data(data)
        else:
            scorer.fit(train_log)
    if test_snapshots:
        times = snapshot_times(split_at, end, test_snapshots)
    else:
        times = snapshot_grid(split_at, end, data.split.step_days)
    rows = labelled_snapshots(
        log,
        target,
        times,
        labels_until=end,
        horizon_days=model.horizon_days,
        rates_until=split_at,
        keys=data.keys,
        stalled=False,  # tested against outcomes that happened, not the stall rule
        progress=progress,
    )
    key = TARGETS[target].id_column
    # The first test deal itself was created at the split instant.
    test_units = units_created_between(log, target, split_at - pd.Timedelta(seconds=1), test_end)
    if len(rows):
        rows = rows[rows[key].isin(test_units)].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        n_pos = int(rows["label"].sum()) if len(rows) else 0
        raise NotEnoughDataError(
            f"the test slice (from {split_at}) has {len(rows)} labelled rows, {n_pos} positive; "
            "both outcomes are needed to evaluate. Load a longer history or raise test_fraction."
        )
    y = rows["label"].to_numpy(int)
    predictions = rows[[key, "as_of", "label"]].copy()
    unit = "deals" if target == "won" else "leads"
    metric_rows = []
    curves = []
    for scorer in chosen:
        p = scorer.predict_proba(rows)[:, 1]
        predictions[scorer.kind] = p
        metric_rows.append(
            {
                "scorer": scorer.label,
                "kind": scorer.kind,
                "rows": len(rows),
                "units": int(rows[key].nunique()),
                "positives": int(y.sum()),
                **score_metrics(y, p),
                "cannot_rank": cannot_rank(scorer, rows, p, unit),
            }
        )
        curve = reliability_table(y, p)
        curve.insert(0, "scorer", scorer.label)
        curves.append(curve)
    intervals = auc_intervals(
        y,
        {s.kind: predictions[s.kind].to_numpy(float) for s in chosen},
        rows[key].to_numpy(),
        reference=model.kind,
        seed=model.seed,
    )
    metrics = pd.DataFrame(metric_rows)
    metrics = metrics.join(intervals, on="kind")
    meta = {
        "as_of": end,
        "target": target,
        "unit": unit,
        "test_start": split_at,
        "test_end": test_end,
        "split": data.split.to_dict(),
        "training_counts": data.counts(),
        "test_snapshots": len(times),
        "test_fraction": test_fraction,
        "model_params": model.get_params(),
        "dropped_attributes": list(getattr(model, "dropped_keys_", ())),
        "bootstrap": {"resamples": RESAMPLES, "level": LEVEL, "seed": model.seed, "over": unit},
    }
    return Evaluation(
        {
            "metrics": metrics,
            "reliability": pd.concat(curves, ignore_index=True),
            "predictions": predictions,
        },
        meta,
    )
