"""Calibrated win and conversion probabilities with reasons, evaluated on time-ordered splits.

import funnelwise as fw
log = fw.open("demo")
model = fw.BoostedScorer(target="won").fit(log)
model.score(log).to_frame()            # open deals: probability and top reasons
fw.evaluate_scorers(log).to_frame()    # the model against its baselines
"""

from funnelwise.scoring.base import NotFittedError, Scorer
from funnelwise.scoring.baselines import LogisticScorer, NaiveBayesScorer, RuleScorer
from funnelwise.scoring.evaluate import evaluate_scorers, score_metrics
from funnelwise.scoring.features import features
from funnelwise.scoring.models import BoostedScorer
from funnelwise.scoring.result import Evaluation, MonitoringBenchmark, Scores

__all__ = [
    "BoostedScorer",
    "Evaluation",
    "LogisticScorer",
    "MonitoringBenchmark",
    "NaiveBayesScorer",
    "NotFittedError",
    "RuleScorer",
    "Scorer",
    "Scores",
    "evaluate_scorers",
    "features",
    "score_metrics",
]
