"""funnelwise: open-source sales process optimization with honest statistics.

import funnelwise as fw
log = fw.open("demo")
log.as_of("2024-03-31").cases.to_pandas()
"""

from funnelwise.analytics import (
    bottlenecks,
    conformance,
    discovery,
    flow,
    funnel,
    hygiene,
    kpis,
    outcomes,
    snapshot,
    timing,
    whose_move,
)
from funnelwise.errors import (
    ConflictError,
    FunnelwiseError,
    InputError,
    NotEnoughDataError,
    ProcessError,
    ProjectError,
    SourceImportError,
    StoreError,
)
from funnelwise.forecast import (
    BacktestResult,
    ForecastResult,
    MonteCarlo,
    RunRate,
    WeightedHistorical,
    WeightedPipeline,
    backtest,
    forecast,
)
from funnelwise.log import EventLog
from funnelwise.log import open_log as open
from funnelwise.process import Process, diff_processes, load_process, parse_process
from funnelwise.scoring import (
    BoostedScorer,
    LogisticScorer,
    NaiveBayesScorer,
    NotFittedError,
    RuleScorer,
    evaluate_scorers,
)
from funnelwise.store import Store

__version__ = "0.1.0"

__all__ = [
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
