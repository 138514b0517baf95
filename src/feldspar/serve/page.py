"""The web page at /: ask a collection, watch the answer stream, read the cited passages,
see the guard's flags, upload documents. Server-rendered with Jinja2; its script and style
are files of this package (no CDN: it works offline).

The page and its files are open (the key is asked for by the page and sent by its script);
a strict Content-Security-Policy lets the page run only its own script and talk only to
this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from feldspar.serve.state import ServerState

HERE = Path(__file__).parent

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(app: FastAPI, state: ServerState) -> None:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]))
    template = env.get_template("index.html")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(template.render(collection=state.settings.collection,
                                            version=app.version),
                            headers=SECURITY_HEADERS)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
