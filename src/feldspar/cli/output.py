"""How commands print data: JSON for machines, aligned tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import click


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


EXIT_WORDS = {"exit", "quit", "/exit", "/quit", "/bye"}


def typed_lines(prompt: str) -> Iterator[str]:
    """What a person types at `prompt`, line by line, until 'exit' or Ctrl-D; blank lines
    are skipped."""
    while True:
        try:
            line = click.prompt(prompt, prompt_suffix=" ", default="", show_default=False,
                                err=True)
        except (EOFError, click.Abort):
            click.echo(err=True)
            return
        if line.strip().lower() in EXIT_WORDS:
            return
        if line.strip():
            yield line


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not read as a formula (texts are anyone's).

    Example:
        >>> csv_cell("=HYPERLINK(1)"), csv_cell("fine"), csv_uncell("'=HYPERLINK(1)")
        ("'=HYPERLINK(1)", 'fine', '=HYPERLINK(1)')
    """
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def csv_uncell(text: str) -> str:
    """The text that `csv_cell` protected, as it was."""
    return text[1:] if text[:1] == "'" and text[1:2] in FORMULA_STARTS and text[1:2] else text
