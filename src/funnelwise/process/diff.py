"""What changed between two versions of a process."""

from __future__ import annotations

from dataclasses import dataclass

from funnelwise.process.model import OUTCOME_KINDS, Pipeline, Process, Stage

_STAGE_FIELDS = (
    "name",
    "aliases",
    "buyer_step",
    "learn",
    "content",
    "exit_criteria",
    "target_days",
    "probability",
)


@dataclass(frozen=True)
class Change:
    """One difference: kind is added, removed, changed or moved."""

    kind: str
    path: str
    before: object = None
    after: object = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}"
        if self.kind == "removed":
            return f"- {self.path}"
        return f"~ {self.path}: {self.before!r} -> {self.after!r}"


def _item_changes(path: str, before: tuple[str, ...], after: tuple[str, ...]) -> list[Change]:
    """A list field item by item: what was taken out, what was put in."""
    out = [Change("removed", f"{path} {item!r}") for item in before if item not in after]
    out += [Change("added", f"{path} {item!r}") for item in after if item not in before]
    if not out and before != after:
        out.append(Change("moved", f"{path} order", list(before), list(after)))
    return out


def _stage_changes(path: str, a: Stage, b: Stage) -> list[Change]:
    out = []
    for f in _STAGE_FIELDS:
        va, vb = getattr(a, f), getattr(b, f)
        if va == vb:
            continue
        if f == "exit_criteria":
            for part in ("fields", "checklist"):
                pa, pb = getattr(va, part), getattr(vb, part)
                out += _item_changes(f"{path}.exit_criteria.{part}", pa, pb)
        elif isinstance(va, tuple):
            out += _item_changes(f"{path}.{f}", va, vb)
        else:
            out.append(Change("changed", f"{path}.{f}", va, vb))
    return out


def _pipeline_changes(a: Pipeline, b: Pipeline) -> list[Change]:
    base = f"pipelines[{a.id}]"
    out: list[Change] = []
    if a.name != b.name:
        out.append(Change("changed", f"{base}.name", a.name, b.name))
    sa = {s.id: s for s in a.stages}
    sb = {s.id: s for s in b.stages}
    out += [Change("removed", f"{base}.stages[{i}]") for i in sa if i not in sb]
    out += [Change("added", f"{base}.stages[{i}]") for i in sb if i not in sa]
    common_a = [i for i in a.stage_ids if i in sb]
    common_b = [i for i in b.stage_ids if i in sa]
    if common_a != common_b:
        out.append(Change("moved", f"{base}.stages order", common_a, common_b))
    for i in common_a:
        out += _stage_changes(f"{base}.stages[{i}]", sa[i], sb[i])
    for kind in OUTCOME_KINDS:
        oa, ob = getattr(a.outcomes, kind), getattr(b.outcomes, kind)
        path = f"{base}.outcomes.{kind}"
        out += [
            Change("changed", f"{path}.{f}", getattr(oa, f), getattr(ob, f))
            for f in ("id", "name")
            if getattr(oa, f) != getattr(ob, f)
        ]
        out += _item_changes(f"{path}.aliases", oa.aliases, ob.aliases)
    return out


def diff_processes(a: Process, b: Process) -> list[Change]:
    """Every difference from process a to process b, pipelines matched by id."""
    out: list[Change] = []
    for f in ("name", "currency"):
        if getattr(a, f) != getattr(b, f):
            out.append(Change("changed", f, getattr(a, f), getattr(b, f)))
    pa = {p.id: p for p in a.pipelines}
    pb = {p.id: p for p in b.pipelines}
    out += [Change("removed", f"pipelines[{i}]") for i in pa if i not in pb]
    out += [Change("added", f"pipelines[{i}]") for i in pb if i not in pa]
    # The first pipeline is the default one, which imports use when a source names none.
    common_a = [i for i in pa if i in pb]
    common_b = [i for i in pb if i in pa]
    if common_a != common_b:
        out.append(Change("moved", "pipelines order", common_a, common_b))
    for i in pa:
        if i in pb:
            out += _pipeline_changes(pa[i], pb[i])
    return out
