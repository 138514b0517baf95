"""`feldspar serve`: the OpenAI-compatible API on this machine."""

from __future__ import annotations

import click

from feldspar.cli.app import CONTEXT


@click.command(context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar serve
  FELDSPAR_API_KEYS=key-one,key-two feldspar serve --port 8080
  feldspar serve --host 0.0.0.0     # reachable from other machines: keep the keys secret

\b
Every route but /health asks for 'Authorization: Bearer KEY'. Keys come from
FELDSPAR_API_KEYS or api_keys_file; with neither, one is made in FELDSPAR_HOME/api-key.
Any OpenAI client works: base URL http://HOST:PORT/v1, the key as its API key, a model
from GET /v1/models. See docs/serve.md.
""")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback only unless told otherwise).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the web page and the API: OpenAI's endpoints and Feldspar's own."""
    from feldspar.config import load_settings
    from feldspar.extras import require
    from feldspar.serve.app import create_app
    from feldspar.serve.auth import load_keys

    uvicorn = require("uvicorn", extra="serve", purpose="feldspar serve needs uvicorn")
    settings = load_settings()
    _, made = load_keys(settings)
    app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Feldspar on http://{shown}:{port}/ (the page; the OpenAI-compatible API at "
               f"http://{shown}:{port}/v1, metrics at /metrics)", err=True)
    if made is not None:
        click.echo(f"API key: in {made} (the page asks for it; clients send it as "
                   "'Authorization: Bearer KEY')", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
