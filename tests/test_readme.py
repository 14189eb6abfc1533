"""The README's tour runs: every `funnelwise …` line and every Python block, in order."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from funnelwise.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))]


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def test_readme_starts_with_the_two_commands() -> None:
    kind, first = blocks()[0]
    assert kind == "console"
    assert first.split() == ["make", "run", "make", "test"]


def test_readme_tour_runs(in_tmp: Path) -> None:
    runner = CliRunner()
    # What `make run` builds, smaller: the tour reads ./demo.
    result = runner.invoke(app, ["demo", "demo", "--deals", "1500"])
    assert result.exit_code == 0, result.output
    ran = 0
    namespace: dict[str, object] = {}  # one session for all blocks, like a notebook
    for kind, body in blocks():
        if kind == "python":
            exec(compile(body, "README.md", "exec"), namespace)
            ran += 1
            continue
        for line in body.splitlines():
            command = line.split("#", 1)[0].strip()
            if not command.startswith("funnelwise "):
                continue
            args = shlex.split(command)[1:]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"{command}\n{result.output}"
            ran += 1
    assert ran >= 5
