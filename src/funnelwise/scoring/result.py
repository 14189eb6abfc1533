"""Results of scoring: scores with reasons, evaluations, the process-monitoring benchmark.

Each is a `Result` (named frames plus metadata) so the CLI, the report and
notebooks render them the same way and never compute anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from funnelwise.analytics.result import Result, frame_view


@dataclass(frozen=True, eq=False)
class Scores(Result):
    """Open deals (or leads) scored as of one instant, best first.

    `scores`: the id column, `probability` (calibrated, in [0, 1]) and the top
    reasons (`reason_i` a signed phrase, `effect_i` its pull in log-odds).
    Meta: target, model id and kind, as_of, trained_as_of, and a `note` when the model
    learned from outcomes more than `STALE_DAYS` before as_of.
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


@dataclass(frozen=True, eq=False)
class Evaluation(Result):
    """A model against its baselines on a time-ordered split.

    `metrics`: per scorer, the test rows and units, the base rate, ROC AUC,
    PR AUC (average precision), Brier score, expected calibration error (ECE,
    10 equal-width bins), and lift and gains in the top decile. `reliability`:
    per scorer and bin, mean predicted against observed frequency with its
    Wilson 95% interval. `predictions`: every test row's label and scores.
    Meta: the split instants (the first test deal's start, the fit's slices),
    counts, parameters.
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
            "pr_auc",
            "brier",
            "ece",
            "lift_top_decile",
            "gains_top_decile",
        )
    }
    percent: ClassVar[frozenset[str]] = frozenset({"base_rate", "gains_top_decile"})

    metrics = frame_view("One row per scorer: discrimination and calibration on the test rows")
    reliability = frame_view("Per scorer and probability bin: predicted against observed")
    predictions = frame_view("Per test row: label and each scorer's probability")


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
