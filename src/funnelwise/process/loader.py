"""Load and validate process.yaml, reporting every problem with its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from funnelwise.errors import Problem, ProcessError
from funnelwise.process.model import OUTCOME_KINDS, Process, normalize_name

Loc = tuple[str | int, ...]
MERGE_TAG = "tag:yaml.org,2002:merge"
# More values than any process or mapping file holds: beyond it, aliases of aliases.
MAX_VALUES = 50_000
_SELF_ALIAS = (
    "is an alias (*name) of a value that contains it, which would repeat without end; "
    "write the value out"
)


def _construct(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    file: str,
    within: tuple[yaml.Node, ...] = (),
) -> Any:
    """Build plain Python data from a YAML node, recording each path's line (1-based).

    `within` holds the nodes that contain this one: an alias (`*name`) to one of
    them would put a value inside itself, without end, and is a problem on the line
    of its key (or of its list)."""
    if any(node is outer for outer in within):
        raise ProcessError([Problem(_fmt(loc), _SELF_ALIAS, file, _line_for(loc, lines))])
    lines[loc] = node.start_mark.line + 1
    if len(lines) > MAX_VALUES:  # aliases of aliases multiply without bound
        message = (
            f"the file holds more than {MAX_VALUES:,} values once its aliases (*name) are "
            "written out; write the repeated parts out or use fewer aliases"
        )
        raise ProcessError([Problem(_fmt(loc), message, file, lines[loc])])
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        within = (*within, node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        # Merge keys (`<<: *defaults`, or a list of them) first: the mapping's own keys
        # then override what they bring, as YAML's merge says, whatever the order.
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged = _merged(value_node, (*loc, "<<"), lines, file, within)
                out.update({k: v for k, v in merged.items() if k not in out})
        own: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = str(key_node.value)
            if key in own:
                raise ProcessError(
                    [
                        Problem(
                            _fmt((*loc, key)),
                            "key appears twice",
                            file,
                            key_node.start_mark.line + 1,
                        )
                    ]
                )
            own.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1  # until the value's own
            out[key] = _construct(value_node, (*loc, key), lines, file, within)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*loc, i), lines, file, within) for i, v in enumerate(node.value)]
    return _scalar(node, loc, file)


def _merged(
    node: yaml.Node, loc: Loc, lines: dict[Loc, int], file: str, within: tuple[yaml.Node, ...]
) -> dict[str, Any]:
    """The keys a merge (`<<:`) brings: of one mapping, or of a list of them, the
    earlier ones first."""
    sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: dict[str, Any] = {}
    for i, source in enumerate(sources):
        at = (*loc, i) if isinstance(node, yaml.SequenceNode) else loc
        if not isinstance(source, yaml.MappingNode):
            message = "a merge (<<:) takes a mapping, such as *defaults, or a list of them"
            raise ProcessError([Problem(_fmt(at), message, file, source.start_mark.line + 1)])
        value = _construct(source, at, lines, file, within)
        taken = [k for k in value if k not in out]
        out.update({k: value[k] for k in taken})
        # A merged key's problems point at its own line, under the mapping that takes it.
        for path in [p for p in lines if len(p) > len(at) and p[: len(at)] == at]:
            if path[len(at)] in taken:
                lines.setdefault((*loc[:-1], *path[len(at) :]), lines[path])
    return out


def _scalar(node: yaml.Node, loc: Loc, file: str) -> Any:
    """A scalar's value as the safe loader reads it (int, float, bool, null, date, str).

    The node is built straight from the tag the composer resolved, not written back
    to text and read again: an empty value (`key:` with nothing after it) is a null
    whose text is empty, and written alone it is an empty document, which does not
    read back. A value the safe loader cannot build (an unknown `!tag`, a date such
    as 2023-02-30) is a problem on its line."""
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError) as exc:
        if isinstance(exc, yaml.constructor.ConstructorError) and exc.problem:
            reason = exc.problem
        else:
            reason = str(exc)
        problem = Problem(
            _fmt(loc),
            f"cannot read {_short(node.value)!s}: {reason}",
            file,
            node.start_mark.line + 1,
        )
        raise ProcessError([problem]) from None


def _fmt(loc: Loc) -> str:
    """Render a location as `pipelines[0].stages[2].target_days`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of the deepest known prefix of loc."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (itself, or inside a tuple or an Optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _required(model: type[BaseModel] | None, loc: Loc) -> bool:
    """Whether the key at `loc` must be given, walking the models from `model`
    (False where the path leaves them: a free-form mapping, say)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        model = _model_in(field.annotation) if field else None
    field = model.model_fields.get(str(loc[-1])) if model and loc else None
    return bool(field and field.is_required())


def _pydantic_problems(
    err: ValidationError,
    lines: dict[Loc, int],
    file: str,
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    """One problem per validation error, on its line; `model` (the one validated)
    tells which keys must be given, so an empty one is not told it may be left out."""
    problems = []
    failed = [tuple(e["loc"]) for e in err.errors()]
    for e in err.errors():
        loc: Loc = tuple(e["loc"])
        # A container reported too short only because its items failed is noise.
        if e["type"] == "too_short" and any(f[: len(loc)] == loc and f != loc for f in failed):
            continue
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see `funnelwise init` for the schema)"
        elif e["type"] == "string_pattern_mismatch" and loc[-1:] == ("id",):
            msg = (
                "an id is made of a-z, A-Z, 0-9, _, . and -, starting with a letter or digit "
                f"(got {_short(e['input'])}); put other spellings in name or aliases"
            )
        elif e["type"] == "string_pattern_mismatch" and loc[-1:] == ("currency",):
            msg = f"a currency is a three-letter code such as USD or EUR (got {_short(e['input'])})"
        elif e.get("input", ...) is None and e["type"] != "missing":
            # `key:` with nothing after it (or `~`, `null`) where a value is needed.
            msg = "is empty; give a value" + (
                "" if _required(model, loc) else ", or leave the key out"
            )
        elif "input" in e and e["type"] != "missing":
            msg = f"{msg} (got {_short(e['input'])})"
        problems.append(Problem(_fmt(loc), msg, file, _line_for(loc, lines)))
    return problems


def _semantic_problems(data: dict[str, Any], lines: dict[Loc, int], file: str) -> list[Problem]:
    """Checks across fields, on the raw data so they are reported with field errors."""
    problems: list[Problem] = []

    def add(loc: Loc, message: str) -> None:
        problems.append(Problem(_fmt(loc), message, file, _line_for(loc, lines)))

    pipelines = data.get("pipelines")
    if not isinstance(pipelines, list):
        return problems
    seen_pipelines: set[str] = set()
    for pi, pipeline in enumerate(pipelines):
        if not isinstance(pipeline, dict):
            continue
        pid = str(pipeline.get("id"))
        if pid in seen_pipelines:
            add(("pipelines", pi, "id"), f"pipeline id {pid!r} is used twice")
        seen_pipelines.add(pid)
        named: list[tuple[dict[str, Any], Loc]] = []
        stages = pipeline.get("stages")
        if isinstance(stages, list):
            named += [(s, ("pipelines", pi, "stages", si)) for si, s in enumerate(stages)]
        outcomes = pipeline.get("outcomes")
        if isinstance(outcomes, dict):
            named += [
                (outcomes[k], ("pipelines", pi, "outcomes", k))
                for k in OUTCOME_KINDS
                if k in outcomes
            ]
        ids: set[str] = set()
        owners: dict[str, str] = {}
        for stage, loc in named:
            if not isinstance(stage, dict) or not isinstance(stage.get("id"), str):
                continue
            sid = stage["id"]
            if sid in ids:
                add(
                    (*loc, "id"),
                    f"stage id {sid!r} is used twice in pipeline {pid!r}; "
                    "give each stage its own id",
                )
                continue
            ids.add(sid)
            aliases = stage.get("aliases") or []
            texts: list[tuple[object, Loc]] = [
                (sid, (*loc, "id")),
                (stage.get("name"), (*loc, "name")),
            ]
            if isinstance(aliases, list):
                texts += [(a, (*loc, "aliases", ai)) for ai, a in enumerate(aliases)]
            for text, where in texts:
                if not isinstance(text, str) or not text:
                    continue
                key = normalize_name(text)
                owner = owners.setdefault(key, sid)
                if owner != sid:
                    add(
                        where,
                        f"name {text!r} is claimed by stages {owner!r} and {sid!r}; "
                        "a source name must map to exactly one stage",
                    )
    return problems


def parse_process(text: str, file: str = "process.yaml") -> Process:
    """Validate process YAML text; raise ProcessError listing every problem with its line."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ProcessError([yaml_problem(exc, file, text)]) from exc
    if node is None:
        raise ProcessError([Problem("", "the file is empty", file, 1)])
    lines: dict[Loc, int] = {}
    data = _construct(node, (), lines, file)
    if not isinstance(data, dict):
        raise ProcessError([Problem("", "expected a mapping at the top level", file, 1)])
    problems = _semantic_problems(data, lines, file)
    try:
        process = Process.model_validate(data)
    except ValidationError as err:
        problems = _pydantic_problems(err, lines, file, Process) + problems
    if problems:
        raise ProcessError(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return process


def load_process(path: str | Path) -> Process:
    """Read and validate a process.yaml file. A file that cannot be read as UTF-8 text
    (a folder, a binary file, no permission) is a ProcessError saying so."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProcessError(
            [Problem("", "file not found; create one with `funnelwise init DIR`", str(p))]
        ) from None
    except IsADirectoryError:
        raise ProcessError(
            [Problem("", f"is a folder; give the file, e.g. {p / 'process.yaml'}", str(p))]
        ) from None
    except UnicodeDecodeError as exc:
        message = (
            f"not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at position "
            f"{exc.start}); a process definition is YAML text, e.g. process.yaml. If it "
            "is one, save it as UTF-8"
        )
        raise ProcessError([Problem("", message, str(p))]) from None
    except OSError as exc:
        raise ProcessError([Problem("", f"cannot read: {exc.strerror or exc}", str(p))]) from None
    return parse_process(text, str(p))


def yaml_problem(exc: yaml.YAMLError, file: str, source: str) -> Problem:
    """A YAML syntax error in the file's own terms: what was wrong where, and where
    the construct it broke began (an unclosed bracket is found a line later; the line
    given is the bracket's). A character YAML does not allow (a control character
    such as NUL) is placed by its line and column in `source`, the file's text."""
    if isinstance(exc, yaml.reader.ReaderError):
        before = source[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - before.rfind("\n")
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = (
            f"not valid YAML: character {code:#06x} is not allowed "
            f"(line {line}, column {column}); remove it"
        )
        return Problem("", message, file, line)
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    start = getattr(exc, "context_mark", None)
    text = f"not valid YAML: {problem}"
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    if context and start is not None:
        text += f", {context} begun on line {start.line + 1}, column {start.column + 1}"
    first = start if start is not None else mark
    return Problem("", text, file, first.line + 1 if first is not None else None)
