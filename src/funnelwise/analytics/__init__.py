"""Analytics: where the process leaks and stalls, with honest statistics.

Each analysis is a pure function `analysis(log, *, by=None, ...) -> Result`;
the heavy relational work runs in the engine (Ibis), the statistics on
compact aggregates. Results render as frames, JSON, HTML and Rich tables.
"""

from funnelwise.analytics.bottlenecks import BottleneckResult, bottlenecks
from funnelwise.analytics.conformance import ConformanceResult, conformance, deal_conformance
from funnelwise.analytics.discovery import DiscoveryResult, case_durations, discovery
from funnelwise.analytics.flow import FlowResult, flow
from funnelwise.analytics.funnel import FunnelResult, funnel
from funnelwise.analytics.hygiene import HygieneResult, hygiene
from funnelwise.analytics.kpis import KpiResult, kpis
from funnelwise.analytics.outcomes import OutcomesResult, outcomes
from funnelwise.analytics.result import Result
from funnelwise.analytics.snapshot import SnapshotResult, snapshot
from funnelwise.analytics.timing import TimingResult, time_in_stage, timing
from funnelwise.analytics.whose_move import WhoseMoveResult, whose_move

__all__ = [
    "BottleneckResult",
    "ConformanceResult",
    "DiscoveryResult",
    "FlowResult",
    "FunnelResult",
    "HygieneResult",
    "KpiResult",
    "OutcomesResult",
    "Result",
    "SnapshotResult",
    "TimingResult",
    "WhoseMoveResult",
    "bottlenecks",
    "case_durations",
    "conformance",
    "deal_conformance",
    "discovery",
    "flow",
    "funnel",
    "hygiene",
    "kpis",
    "outcomes",
    "snapshot",
    "time_in_stage",
    "timing",
    "whose_move",
]
