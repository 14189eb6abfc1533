"""process.yaml: validation with lines, aliases, diff."""

from __future__ import annotations

import pytest

from funnelwise.errors import InputError, ProcessError
from funnelwise.process import diff_processes, normalize_name, parse_process, template_text

MINIMAL = """\
name: Tiny
currency: eur
pipelines:
  - id: main
    stages:
      - id: qualify
        aliases: ["Calificación"]
        target_days: 10
      - id: propose
        probability: 0.5
    outcomes:
      won: {id: won, aliases: ["Closed Won"]}
      lost: {id: lost}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProcessError) as info:
        parse_process(text, file="p.yaml")
    return [str(p) for p in info.value.problems]


def test_template_is_valid_classic_b2b() -> None:
    process = parse_process(template_text())
    pipeline = process.default_pipeline
    assert pipeline.stage_ids == (
        "lead",
        "qualification",
        "needs-assessment",
        "proposal",
        "negotiation",
        "closing",
    )
    assert pipeline.outcome_id("no_decision") == "no-decision"
    assert pipeline.stages[1].exit_criteria.checklist[0] == "Budget confirmed"


def test_minimal_defaults_and_normalisation() -> None:
    process = parse_process(MINIMAL)
    assert process.currency == "EUR"
    pipeline = process.pipeline("main")
    assert pipeline.outcome_id("no_decision") == "no-decision"
    aliases = pipeline.alias_map()
    assert aliases[normalize_name("CALIFICACION")] == "qualify"
    assert aliases[normalize_name("closed  won")] == "won"
    rows = process.stage_rows()
    assert [r["position"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["kind"] for r in rows] == ["open", "open", "won", "lost", "no_decision"]


def test_unknown_key_names_line_and_path() -> None:
    text = MINIMAL.replace(
        "        target_days: 10\n", "        target_days: 10\n        colour: red\n"
    )
    assert problems_of(text) == [
        "p.yaml:9: pipelines[0].stages[0].colour: unknown key "
        "(check the spelling; see `funnelwise init` for the schema)"
    ]


def test_every_problem_reported_once_with_its_line() -> None:
    text = (
        MINIMAL.replace("target_days: 10", "target_days: -3")
        .replace("probability: 0.5", "probability: 1.5")
        .replace("      - id: propose", "      - id: qualify")
        .replace('aliases: ["Closed Won"]', 'aliases: ["Calificacion"]')
        .replace("      lost: {id: lost}\n", "")
    )
    found = problems_of(text)
    assert len(found) == 5, found
    assert found[0].startswith("p.yaml:8: pipelines[0].stages[0].target_days")
    assert "(got -3)" in found[0]
    assert found[1].startswith(
        "p.yaml:9: pipelines[0].stages[1].id: stage id 'qualify' is used twice"
    )
    assert found[2].startswith("p.yaml:10: pipelines[0].stages[1].probability")
    assert found[3] == "p.yaml:12: pipelines[0].outcomes.lost: Field required"
    assert found[4].startswith("p.yaml:12: pipelines[0].outcomes.won.aliases[0]: name")
    assert "claimed by stages 'qualify' and 'won'" in found[4]


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_a_target_must_be_a_finite_number(value: str) -> None:
    # .inf would pass "greater than 0" and mean that no deal is ever over target.
    found = problems_of(MINIMAL.replace("target_days: 10", f"target_days: {value}"))
    assert found == [
        f"p.yaml:8: pipelines[0].stages[0].target_days: Input should be a finite number "
        f"(got {value[1:]})"
    ]


def test_yaml_syntax_error_and_duplicate_key() -> None:
    assert problems_of("name: [unclosed\n")[0].startswith("p.yaml:")
    dup = problems_of("name: a\nname: b\npipelines: []\n")
    assert dup == ["p.yaml:2: name: key appears twice"]


def test_empty_and_wrong_top_level() -> None:
    assert problems_of("") == ["p.yaml:1: the file is empty"]
    assert problems_of("- a\n- b\n") == ["p.yaml:1: expected a mapping at the top level"]


def test_unknown_pipeline_names_valid_ones() -> None:
    with pytest.raises(InputError) as caught:
        parse_process(MINIMAL).pipeline("nope")
    assert str(caught.value) == "no pipeline 'nope'; valid pipelines: main"
    # Still a KeyError for callers that look pipelines up by key.
    assert isinstance(caught.value, KeyError)


def test_diff_reports_added_removed_changed_moved() -> None:
    a = parse_process(MINIMAL)
    b = parse_process(
        MINIMAL.replace("target_days: 10", "target_days: 12").replace(
            "      - id: propose\n        probability: 0.5\n",
            "      - id: demo\n      - id: propose\n        probability: 0.5\n",
        )
    )
    changes = {str(c) for c in diff_processes(a, b)}
    assert changes == {
        "+ pipelines[main].stages[demo]",
        "~ pipelines[main].stages[qualify].target_days: 10.0 -> 12.0",
    }
    c = parse_process(
        MINIMAL.replace("      - id: qualify\n", "      - id: propose2\n").replace(
            '        aliases: ["Calificación"]\n        target_days: 10\n', ""
        )
    )
    kinds = sorted(ch.kind for ch in diff_processes(a, c))
    assert kinds == ["added", "removed"]
    assert diff_processes(a, a) == []
    # Lists item by item: an alias taken out and another put in, not two whole lists.
    d = parse_process(MINIMAL.replace('aliases: ["Calificación"]', 'aliases: ["Qualify", "Q"]'))
    assert [str(ch) for ch in diff_processes(a, d)] == [
        "- pipelines[main].stages[qualify].aliases 'Calificación'",
        "+ pipelines[main].stages[qualify].aliases 'Qualify'",
        "+ pipelines[main].stages[qualify].aliases 'Q'",
    ]
    t = parse_process(template_text())
    u = parse_process(
        template_text().replace(
            'checklist: ["First conversation held"]',
            'checklist: ["First conversation held", "Pricing approved"]',
        )
    )
    assert [str(ch) for ch in diff_processes(t, u)] == [
        "+ pipelines[new-business].stages[lead].exit_criteria.checklist 'Pricing approved'"
    ]


def test_a_yaml_syntax_error_points_at_the_construct_it_broke() -> None:
    text = "name: x\ncurrency: USD\npipelines:\n  - id: a\n    stages: [{id: s1}, {id: s2}\n"
    text += "    outcomes: {}\n"
    # The bracket opened on line 5 is found unclosed on line 6: line 5 is the one to fix.
    assert problems_of(text) == [
        "p.yaml:5: not valid YAML: expected ',' or ']', but got '<scalar>' (line 6, column 5), "
        "while parsing a flow sequence begun on line 5, column 13"
    ]


def test_an_empty_value_reads_as_null_like_yaml() -> None:
    # `target_days:` with nothing after it is null, as `~` is: the stage has no target.
    for empty in ("target_days:", "target_days: ~", "target_days: null"):
        process = parse_process(MINIMAL.replace("target_days: 10", empty))
        assert process.pipeline("main").stages[0].target_days is None, empty
    # Where a value is needed, an empty one is one problem on its own line.
    text = MINIMAL.replace("        target_days: 10\n", "        exit_criteria:\n")
    assert problems_of(text) == [
        "p.yaml:8: pipelines[0].stages[0].exit_criteria: is empty; "
        "give a value, or leave the key out"
    ]
    # An empty value as the last thing in the file too.
    assert problems_of("name:\n")[0].startswith("p.yaml:1: name: is empty")
    # A key that must be given is not told it may be left out.
    required = MINIMAL.replace("name: Tiny", "name:").replace("won: {id: won,", "won: {id: ,")
    assert problems_of(required)[:2] == [
        "p.yaml:1: name: is empty; give a value",
        "p.yaml:12: pipelines[0].outcomes.won.id: is empty; give a value",
    ]


def test_a_value_yaml_cannot_build_is_a_problem_on_its_line() -> None:
    assert problems_of("name: x\nstart: 2023-02-30\n") == [
        "p.yaml:2: start: cannot read '2023-02-30': day is out of range for month"
    ]
    found = problems_of("name: !custom x\n")
    assert found == [
        "p.yaml:1: name: cannot read 'x': could not determine a constructor for the tag '!custom'"
    ]


MERGED = """\
name: Merged
pipelines:
  - id: main
    stages:
      - &base
        id: qualify
        target_days: 10
        probability: 0.2
      - <<: *base
        id: propose
        probability: 0.5
      - <<: [{target_days: 3}, *base]
        id: close
    outcomes:
      won: {id: won}
      lost: {id: lost}
"""


def test_merge_keys_bring_a_mappings_keys_and_its_own_win() -> None:
    stages = parse_process(MERGED).default_pipeline.stages
    assert [(s.id, s.target_days, s.probability) for s in stages] == [
        ("qualify", 10.0, 0.2),
        ("propose", 10.0, 0.5),  # its own probability over the merged one
        ("close", 3.0, 0.2),  # the first merged mapping over the later ones
    ]
    # A merged value's problem names the stage that takes it, on the line it is written.
    bad = MERGED.replace("target_days: 10", "target_days: -3")
    assert problems_of(bad) == [
        f"p.yaml:7: pipelines[0].stages[{i}].target_days: Input should be greater than 0 (got -3)"
        for i in (0, 1)
    ]
    assert problems_of(MERGED.replace("<<: *base", "<<: 5")) == [
        "p.yaml:9: pipelines[0].stages[1].<<: a merge (<<:) takes a mapping, such as "
        "*defaults, or a list of them"
    ]
