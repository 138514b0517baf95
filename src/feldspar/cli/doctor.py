"""`feldspar doctor`: check that this machine can run Feldspar's models."""

from __future__ import annotations

import click

from feldspar.cli.output import print_json


@click.command(epilog="""\b
Examples:
  feldspar doctor
  feldspar doctor -m granite-3.3-2b-instruct --json
""")
@click.option("-m", "--model", help="Chat model to try (default: the chat_model setting).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(model: str | None, as_json: bool) -> None:
    """Check settings, FELDSPAR_HOME and a one-token generation in a child process."""
    import os

    from feldspar.config import load_settings
    from feldspar.models.smoke import smoke_test

    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    writable = os.access(settings.home, os.W_OK)
    result = smoke_test(model or settings.chat_model)
    report = {"home": str(settings.home), "home_writable": writable, "model": result.model,
              "one_token": result.text, "ok": writable}
    if as_json:
        print_json(report)
    else:
        click.echo(f"settings:   ok ({settings.config_path})")
        click.echo(f"home:       {settings.home} ({'writable' if writable else 'NOT writable'})")
        click.echo(f"generation: ok ({result.model} produced {result.text!r})")
    if not writable:
        raise SystemExit(1)
