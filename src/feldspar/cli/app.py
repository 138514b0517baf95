"""The top-level command group, and the one place where errors become one line."""

from __future__ import annotations

import sys
from typing import Any

import click

from feldspar import __version__
from feldspar.errors import FeldsparError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class FeldsparGroup(click.Group):
    """Runs subcommands; a Feldspar error prints one line on stderr and exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FeldsparError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (e.g. `| head`): not an error
            ctx.exit(0)
        except OSError as exc:  # FELDSPAR_HOME unwritable, disk full, a path that is a file...
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"Error: {exc.strerror or exc}{where}; check FELDSPAR_HOME and the "
                       "paths given", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=FeldsparGroup, context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar chat "Name three primary colors."
  feldspar models list
  feldspar models pull granite-3.3-2b-instruct
  feldspar ingest ./handbook && feldspar search "parental leave"
  feldspar ask "How many days of parental leave do I get?"
  feldspar classify create tickets --labels billing,bug,other
""")
@click.version_option(__version__, "--version", prog_name="feldspar")
def cli() -> None:
    """Feldspar: open-weight language models at work on your own hardware."""


def _register() -> None:
    from feldspar.cli.ask import ask
    from feldspar.cli.audit import audit
    from feldspar.cli.chat import chat
    from feldspar.cli.classify import classify
    from feldspar.cli.collections import collections, documents
    from feldspar.cli.doctor import doctor
    from feldspar.cli.evaluate import eval_group
    from feldspar.cli.grounding import check_grounding
    from feldspar.cli.guard import guard
    from feldspar.cli.ingest import ingest, search
    from feldspar.cli.models import models
    from feldspar.cli.serve import serve

    for command in (ask, audit, chat, check_grounding, classify, collections, doctor, documents,
                    eval_group, guard, ingest, models, search, serve):
        cli.add_command(command)


_register()
