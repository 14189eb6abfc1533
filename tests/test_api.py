"""The public surface of `import funnelwise as fw` is deliberate and pinned here."""

from __future__ import annotations

import funnelwise as fw

PUBLIC = [
    "BacktestResult",
    "BoostedScorer",
    "ConflictError",
    "EventLog",
    "ForecastResult",
    "FunnelwiseError",
    "InputError",
    "LogisticScorer",
    "MonteCarlo",
    "NaiveBayesScorer",
    "NotEnoughDataError",
    "NotFittedError",
    "Process",
    "ProcessError",
    "ProjectError",
    "RuleScorer",
    "RunRate",
    "SourceImportError",
    "Store",
    "StoreError",
    "WeightedHistorical",
    "WeightedPipeline",
    "backtest",
    "bottlenecks",
    "conformance",
    "diff_processes",
    "discovery",
    "evaluate_scorers",
    "flow",
    "forecast",
    "funnel",
    "hygiene",
    "kpis",
    "load_process",
    "open",
    "outcomes",
    "parse_process",
    "snapshot",
    "timing",
    "whose_move",
]


def test_all_is_sorted_and_pinned() -> None:
    assert fw.__all__ == sorted(fw.__all__)
    assert fw.__all__ == PUBLIC


def test_every_public_name_resolves_and_is_documented() -> None:
    for name in fw.__all__:
        obj = getattr(fw, name)
        assert obj.__doc__, f"fw.{name} has no docstring"
