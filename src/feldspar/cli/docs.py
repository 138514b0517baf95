"""Render docs/cli.md from the commands' own help: `python -m feldspar.cli.docs`."""

from __future__ import annotations

import click

from feldspar.cli.app import cli


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _walk(command.commands[name], [*path, name])
    return found


def render_cli_docs() -> str:
    """The whole CLI reference as Markdown, one section per command."""
    parts = ["# Command line reference", "",
             "Generated from `--help` by `python -m feldspar.cli.docs > docs/cli.md`; a test "
             "keeps it in step.", ""]
    for path, command in _walk(cli, ["feldspar"]):
        ctx = click.Context(command, info_name=" ".join(path), max_content_width=100,
                            terminal_width=100, help_option_names=["-h", "--help"])
        parts += [f"## {' '.join(path)}", "", "```", command.get_help(ctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render_cli_docs(), nl=False)
