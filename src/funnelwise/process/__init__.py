"""The sales process model loaded from process.yaml."""

from funnelwise.process.diff import Change, diff_processes
from funnelwise.process.loader import load_process, parse_process
from funnelwise.process.model import (
    OUTCOME_KINDS,
    ExitCriteria,
    Outcome,
    OutcomeKind,
    Outcomes,
    Pipeline,
    Process,
    Stage,
    StageKind,
    normalize_name,
)
from funnelwise.process.template import template_text

__all__ = [
    "OUTCOME_KINDS",
    "Change",
    "ExitCriteria",
    "Outcome",
    "OutcomeKind",
    "Outcomes",
    "Pipeline",
    "Process",
    "Stage",
    "StageKind",
    "diff_processes",
    "load_process",
    "normalize_name",
    "parse_process",
    "template_text",
]
