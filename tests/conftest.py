"""Shared fixtures: the tiny hand-made project and the location of ../shared/data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import funnelwise as fw
from tiny import build_tiny

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny hand-made project (see tests/tiny.py), built once per session."""
    return build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_log(tiny_project: Path) -> Iterator[fw.EventLog]:
    """An EventLog over the tiny project, closed after the test."""
    log = fw.open(tiny_project)
    yield log
    log.store.close()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real data sets live in ../shared/data beside the repo")
    return path
