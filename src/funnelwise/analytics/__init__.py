"""Analytics: where the process leaks and stalls, with honest statistics.

Each analysis is a pure function `analysis(log, *, by=None, ...) -> Result`;
the heavy relational work runs in the engine (Ibis), the statistics on
compact aggregates. Results render as frames, JSON, HTML and Rich tables.
"""

from funnelwise.analytics.funnel import FunnelResult, funnel
from funnelwise.analytics.outcomes import OutcomesResult, outcomes
from funnelwise.analytics.result import Result
from funnelwise.analytics.timing import TimingResult, time_in_stage, timing

__all__ = [
    "FunnelResult",
    "OutcomesResult",
    "Result",
    "TimingResult",
    "funnel",
    "outcomes",
    "time_in_stage",
    "timing",
]
