"""Synthetic CRM data with known true parameters, for demos, tests and benchmarks.

from funnelwise.synth import generate, write_project
result = generate(deals=5000, seed=0)
result.truth.absorption_overall()      # exact P(won, lost, no decision)
write_project(result, "demo")
"""

from funnelwise.synth.generate import SynthResult, generate
from funnelwise.synth.params import PlantedChange, SynthParams
from funnelwise.synth.truth import Truth, stored_truth
from funnelwise.synth.write import write_project

__all__ = [
    "PlantedChange",
    "SynthParams",
    "SynthResult",
    "Truth",
    "generate",
    "stored_truth",
    "write_project",
]
