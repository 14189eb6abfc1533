"""The Typer command-line interface: parses, calls the core, renders."""

from funnelwise.cli.app import app, main

__all__ = ["app", "main"]
