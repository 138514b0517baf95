"""The `feldspar` command: a thin shell over the Python API."""

from __future__ import annotations

from feldspar.cli.app import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console entry point."""
    cli(prog_name="feldspar")
