"""What a stored deal model says about the process it was trained under (scoring/base.py)."""

from __future__ import annotations

from funnelwise.process import parse_process, template_text
from funnelwise.scoring.base import stage_changes
from funnelwise.scoring.labels import process_stages


def test_pipelines_listed_in_another_order_are_the_same_stages() -> None:
    # A stage's position is counted within its pipeline: listing the pipelines in
    # another order changes no deal's stage nor position, so there is nothing to say.
    process = parse_process(template_text())
    p = process.pipelines[0]
    renewals = p.model_copy(update={"id": "renewals"})
    trained = process_stages(process.model_copy(update={"pipelines": (p, renewals)}))
    flipped = process.model_copy(update={"pipelines": (renewals, p)})
    assert stage_changes(trained, flipped) is None
    # A change in one of them is still named, and only that one.
    swapped = renewals.model_copy(update={"stages": (p.stages[1], p.stages[0], *p.stages[2:])})
    said = stage_changes(trained, process.model_copy(update={"pipelines": (swapped, p)}))
    assert said is not None
    assert said.startswith("in pipeline renewals, the model was trained on stages Lead, ")
    assert "new-business" not in said
