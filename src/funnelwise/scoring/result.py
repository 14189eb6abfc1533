"""Results of scoring: scores with reasons, evaluations, the process-monitoring benchmark.

Each is a `Result` (named frames plus metadata) so the CLI, the report and
notebooks render them the same way and never compute anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
from rich.console import Group, RenderableType
from rich.text import Text

from funnelwise.analytics.result import Result, frame_view


@dataclass(frozen=True, eq=False)
class Scores(Result):
    """Open deals (or leads) scored as of one instant, best first.

    `scores`: the id column, `probability` (calibrated, in [0, 1]) and the top
    reasons (`reason_i` a signed phrase, `effect_i` its pull in log-odds).
    Meta: target, model id and kind, as_of, trained_as_of, a `note` when the model
    learned from outcomes more than `STALE_DAYS` before as_of, and a `warning` when
    the process's stages are no longer those the model was trained under.
    """

    analysis: ClassVar[str] = "scores"
    title: ClassVar[str] = "Scores"
    percent: ClassVar[frozenset[str]] = frozenset({"probability"})
    display: ClassVar[dict[str, tuple[str, ...]]] = {
        "scores": ("deal_id", "lead_id", "probability", "reason_1", "reason_2", "reason_3")
    }

    scores = frame_view("One row per open deal (or lead): probability and reasons")

    @property
    def id_column(self) -> str:
        """`deal_id` or `lead_id`."""
        return str(self.meta["id_column"])


def rankers(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of scorers that can rank (those giving every test row the same score,
    with a `cannot_rank` sentence, cannot)."""
    if "cannot_rank" not in metrics:
        return metrics
    return metrics[~metrics["cannot_rank"].map(lambda v: isinstance(v, str))]


def best_baseline(baselines: pd.DataFrame) -> pd.Series | None:
    """The baseline of highest ROC AUC among those that can rank (None without one):
    the one the model is judged against."""
    ranked = rankers(baselines).dropna(subset=["roc_auc"])
    if ranked.empty:
        return None
    return ranked.sort_values("roc_auc", ascending=False, kind="stable").iloc[0]


def signed(value: float, digits: int = 3) -> str:
    """A difference with its sign: '+0.012', '−0.004'; '0.000' when it rounds to zero."""
    text = f"{value:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text.replace("-", "−")


@dataclass(frozen=True, eq=False)
class Evaluation(Result):
    """A model against its baselines on a time-ordered split.

    `metrics`: per scorer, the test rows and units, the base rate, ROC AUC
    (with the 95% interval of a bootstrap over units, `roc_auc_lower`/`_upper`),
    its difference from the model's (`roc_auc_vs_model`, with its interval from
    the same paired bootstrap), PR AUC (average precision), Brier score, expected
    calibration error (ECE, 10 equal-width bins), lift and gains in the top
    decile, and `cannot_rank`: why a scorer that gives every test row the same
    score cannot rank them (empty otherwise). `reliability`: per scorer and bin,
    mean predicted against observed frequency with its Wilson 95% interval.
    `predictions`: every test row's label and scores.
    Meta: the split instants (the first test deal's start, the fit's slices),
    counts, parameters, the bootstrap's resamples, level and seed.

    In the terminal a scorer that cannot rank is a sentence under the table, not
    a row beside the model.
    """

    analysis: ClassVar[str] = "score_evaluation"
    title: ClassVar[str] = "Scores against baselines (time-ordered split)"
    terminal: ClassVar[tuple[str, ...]] = ("metrics",)
    display: ClassVar[dict[str, tuple[str, ...]]] = {
        "metrics": (
            "scorer",
            "rows",
            "units",
            "base_rate",
            "roc_auc",
            "roc_auc_vs_model",
            "pr_auc",
            "brier",
            "ece",
            "lift_top_decile",
            "gains_top_decile",
        )
    }
    percent: ClassVar[frozenset[str]] = frozenset({"base_rate", "ece", "gains_top_decile"})
    shared: ClassVar[tuple[str, ...]] = ("rows", "units", "base_rate")

    metrics = frame_view("One row per scorer: discrimination and calibration on the test rows")
    reliability = frame_view("Per scorer and probability bin: predicted against observed")
    predictions = frame_view("Per test row: label and each scorer's probability")

    def cannot_rank(self) -> list[str]:
        """The sentences saying why a scorer cannot rank the test rows."""
        notes = self.frames["metrics"].get("cannot_rank", pd.Series(dtype=object))
        return [v for v in notes if isinstance(v, str)]

    def baseline_ahead(self) -> str | None:
        """The sentence saying that a baseline ranks the test rows better than the model,
        or None. As the report judges: the baseline of highest ROC AUC among those that
        can rank, ahead only where the interval of its AUC difference from the model's
        lies above zero."""
        f = self.frames["metrics"]
        if "roc_auc_vs_model_lower" not in f or "roc_auc" not in f:
            return None
        reference = f["roc_auc_vs_model"].isna()
        best = best_baseline(f[~reference])
        if not reference.any() or best is None:
            return None
        model = f[reference].iloc[0]
        lo, hi = best["roc_auc_vs_model_lower"], best["roc_auc_vs_model_upper"]
        if pd.isna(lo) or pd.isna(hi) or lo <= 0:
            return None
        level = self.meta.get("bootstrap", {}).get("level", 0.95)
        unit = self.meta.get("unit", "deals")
        return (
            f"{best['scorer']} ranks the {unit} better than the model ({model['scorer']}): "
            f"ROC AUC {best['roc_auc']:.3f} against {model['roc_auc']:.3f} (difference "
            f"{signed(best['roc_auc_vs_model'])}, {round(100 * level)}% interval "
            f"{signed(lo)} to {signed(hi)})."
        )

    def display_frame(self, name: str) -> pd.DataFrame:
        """As `Result.display_frame`; in `metrics`, the AUC difference from the model
        reads '+0.012 [−0.004, +0.027]' and scorers that cannot rank are left out
        (`cannot_rank` says why)."""
        cells = super().display_frame(name)
        if name != "metrics":
            return cells
        f = self.frames[name].loc[cells.index]
        if "roc_auc_vs_model" in cells:
            cells["roc_auc_vs_model"] = [
                "–"
                if pd.isna(d) or pd.isna(lo) or pd.isna(hi)
                else f"{signed(d)} [{signed(lo)}, {signed(hi)}]"
                for d, lo, hi in zip(
                    f["roc_auc_vs_model"],
                    f["roc_auc_vs_model_lower"],
                    f["roc_auc_vs_model_upper"],
                    strict=True,
                )
            ]
        if "cannot_rank" in f:
            reference = f.get("roc_auc_vs_model", pd.Series(0.0, index=f.index)).isna()
            cells = cells[f["cannot_rank"].isna() | reference]
        return cells

    def renderable(self, names: Sequence[str] | None = None) -> RenderableType:
        """The tables, then why a scorer cannot rank, one sentence each, and whether a
        baseline ranks better than the model (`baseline_ahead`)."""
        ahead = self.baseline_ahead()
        notes = [Text(n) for n in [*self.cannot_rank(), *([ahead] if ahead else [])]]
        return Group(super().renderable(names), *notes)


@dataclass(frozen=True, eq=False)
class MonitoringBenchmark(Result):
    """The outcome-oriented predictive process monitoring protocol on one log.

    `summary`: per task, the AUC averaged over prefix lengths weighted by the
    test cases at each length, the Brier score over the same prefixes, and
    counts. `by_prefix`: per task and prefix length, cases, positives, AUC and
    Brier. Meta: split instant, maximum prefix length, parameters.
    """

    analysis: ClassVar[str] = "ppm_benchmark"
    title: ClassVar[str] = "Outcome prediction on prefixes (time-ordered split)"
    terminal: ClassVar[tuple[str, ...]] = ("summary",)

    summary = frame_view("One row per prediction task")
    by_prefix = frame_view("Per task and prefix length")
