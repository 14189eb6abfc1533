"""Revenue forecasts as distributions, and backtests against the weighted pipeline.

import funnelwise as fw
log = fw.open("demo")
fw.forecast(log, horizon="90d", period="month").to_frame()   # P10 / P50 / P90 per month
fw.backtest(log, horizon="90d", every="14d").scores_frame()  # accuracy of every method

Methods: `MonteCarlo` (censoring-aware stage hazards, pipeline not yet created,
bootstrap and shared shocks), and the baselines `WeightedPipeline` (the CRM
number), `WeightedHistorical` and `RunRate`. Each follows the scikit-learn
contract: `Method(...).fit(log.as_of(t)).predict(horizon=...)`.
"""

from funnelwise.forecast.backtest import METHODS, backtest, make_forecaster
from funnelwise.forecast.base import Forecaster, NotFittedError
from funnelwise.forecast.baselines import RunRate, WeightedHistorical, WeightedPipeline
from funnelwise.forecast.montecarlo import MonteCarlo
from funnelwise.forecast.result import BacktestResult, ForecastResult, MethodScore
from funnelwise.forecast.run import forecast

__all__ = [
    "METHODS",
    "BacktestResult",
    "ForecastResult",
    "Forecaster",
    "MethodScore",
    "MonteCarlo",
    "NotFittedError",
    "RunRate",
    "WeightedHistorical",
    "WeightedPipeline",
    "backtest",
    "forecast",
    "make_forecaster",
]
