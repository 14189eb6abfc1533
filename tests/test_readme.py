"""The README's tour runs: every `funnelwise …` line and every Python block, in order."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_data
from funnelwise.cli import app
from funnelwise.process import template_text

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"```(console|python|sh)\n(.*?)```", re.S)


def blocks(kinds: tuple[str, ...] = ("console", "python")) -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text) if m.group(1) in kinds]


def commands(body: str) -> Iterator[str]:
    """The `funnelwise ...` commands of a block, comments dropped."""
    for line in body.splitlines():
        command = line.split("#", 1)[0].strip()
        if command.startswith("funnelwise "):
            yield command


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
    # The tour runs from the repository's folder: step 8 imports an example of examples/.
    (in_tmp / "examples").symlink_to(ROOT / "examples")
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
        for command in commands(body):
            args = shlex.split(command)[1:]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"{command}\n{result.output}"
            ran += 1
    assert ran >= 5


@pytest.mark.shared_data
def test_readme_public_csv_data_sets_import(in_tmp: Path) -> None:
    """The README's commands for CRM Sales Opportunities and Olist, with the files
    under the names they are published as, beside the repository's examples/."""
    (in_tmp / "examples").symlink_to(ROOT / "examples")
    for folder, names in (
        (
            "crm-sales-opportunities",
            ("sales_pipeline.csv", "accounts.csv", "products.csv", "sales_teams.csv"),
        ),
        ("olist-marketing-funnel", ("marketing_qualified_leads.csv", "closed_deals.csv")),
    ):
        for name in names:
            (in_tmp / name).symlink_to(shared_data(folder, name))
    wanted = [
        c
        for _, body in blocks(("sh",))
        for c in commands(body)
        if {"crm", "olist"} & set(shlex.split(c))
    ]
    assert len(wanted) == 4, wanted
    runner = CliRunner()
    for command in wanted:
        result = runner.invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
    for project, count, expected in (("crm", "deals", 8800), ("olist", "leads", 8000)):
        result = runner.invoke(app, ["--project", project, "info", "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)[count] == expected


def test_readme_malformed_file_example_is_what_check_prints(in_tmp: Path) -> None:
    """The README's two problems are those of the template with a negative target
    and a stage id used twice, lines included."""
    text = README.read_text(encoding="utf-8")
    shown = re.search(r"```text\n(error: .*?)```", text, re.S)
    assert shown is not None
    bad = template_text().replace("target_days: 14", "target_days: -3", 1)
    (in_tmp / "process.yaml").write_text(bad.replace("id: proposal", "id: qualification", 1))
    result = CliRunner().invoke(app, ["process", "check", "process.yaml"])
    assert result.exit_code == 2
    assert result.output == shown.group(1)
