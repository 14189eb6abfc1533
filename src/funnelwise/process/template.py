"""The commented process template written by `funnelwise init`."""

from __future__ import annotations

from importlib import resources


def template_text(name: str = "b2b") -> str:
    """The text of a bundled process template (the classic B2B process by default)."""
    return (
        resources.files("funnelwise.process")
        .joinpath(f"templates/{name}.yaml")
        .read_text(encoding="utf-8")
    )
