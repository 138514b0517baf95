"""The FastAPI application: keys, limits, errors, health and metrics around the routes.

    request ─► key? (401) ─► body within its limit? (413) ─► route ─► guard ─► model
            ─► OpenAI's envelope on every error; metrics on every answer

Every route but /health, the page and its static files asks for a key; the default chat
model loads in the background at start-up, and /health says 503 until it is ready.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feldspar.config import Settings, load_settings
from feldspar.errors import FeldsparError
from feldspar.serve import feldspar_routes, openai_routes, page
from feldspar.serve.auth import authorized, load_keys
from feldspar.serve.errors import APIError, from_feldspar
from feldspar.serve.limits import Gate
from feldspar.serve.metrics import CONTENT_TYPE
from feldspar.serve.schemas import ERRORS
from feldspar.serve.state import ServerState

if TYPE_CHECKING:
    from feldspar.workspace import Workspace

OPEN_PATHS = frozenset({"/health", "/"})
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
OPEN_PREFIXES = ("/static/",)
UPLOAD_PATH = "/api/collections/"


def create_app(settings: Settings | None = None, *, load_default: bool = True,
               workspace: Workspace | None = None) -> FastAPI:
    """The application. With `load_default`, the default chat model loads at start-up in
    the background (/health answers 503 until it is ready)."""
    from feldspar.workspace import Workspace

    settings = settings or load_settings()
    # Concurrent requests share each decoding step of a GGUF model (continuous batching).
    settings = settings.model_copy(update={"llama_parallel": settings.serve_parallel})
    keys, _ = load_keys(settings)
    state = ServerState(settings, workspace or Workspace(settings),
                        Gate(settings.serve_max_queue))
    # No /docs nor /redoc: their pages load scripts from a CDN; /openapi.json is the spec.
    app = FastAPI(title="Feldspar", version=_version(), docs_url=None, redoc_url=None,
                  description="OpenAI-compatible API and Feldspar's own endpoints: "
                  "documents, answers with citations, classification, the guard and its "
                  "audit log. Send 'Authorization: Bearer KEY'.", responses=ERRORS)
    app.state.feldspar = state

    def warm() -> None:
        from feldspar.models.loading import get_model

        try:
            get_model(settings=settings)
        except Exception:
            pass
        finally:
            state.ready.set()

    if load_default:
        app.router.on_startup.append(lambda: threading.Thread(target=warm, daemon=True,
                                                               name="feldspar-warm").start())
    else:
        state.ready.set()
    app.router.on_shutdown.append(state.workspace.close)
    app.add_middleware(BodyLimit, body=_mb(settings.serve_max_body_mb),
                       upload=_mb(settings.serve_max_upload_mb))
    _install_checks(app, keys, state)  # added last: the outer middleware, so keys first
    _install_errors(app)
    _install_routes(app, state)
    openai_routes.install(app, state)
    feldspar_routes.install(app, state)
    page.install(app, state)
    return app


def _mb(value: float) -> int:
    return int(value * 1_000_000)


class BodyLimit:
    """Refuse a body over its limit: at once from its Content-Length, or as it arrives
    when it has none (chunked), never holding more than the limit. Uploads have a limit of
    their own. It runs after the key check (the key middleware is the outer one)."""

    def __init__(self, app: ASGIApp, body: int, upload: int) -> None:
        self.app, self.body, self.upload = app, body, upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit, what = self.body, "serve_max_body_mb"
        if path.startswith(UPLOAD_PATH) and path.endswith("/documents"):
            limit, what = self.upload, "serve_max_upload_mb"
        too_large = APIError(413, f"The request body is over {limit / 1e6:g} MB ({what})",
                             code="body_too_large")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _error(too_large)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # raised inside the route's reading: answered as a 413
                raise too_large
            return message

        await self.app(scope, counted, send)


def _install_checks(app: FastAPI, keys: list[str], state: ServerState) -> None:
    """The key before any route runs; metrics after each answer."""
    metrics = state.metrics

    @app.middleware("http")
    async def check(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        path = request.url.path
        if not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)) and not authorized(
                request.headers.get("authorization"), keys):
            response: Response = _error(APIError(
                401, "Missing or wrong API key; send 'Authorization: Bearer KEY'",
                code="invalid_api_key"))
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        method = request.method if request.method in METHODS else "OTHER"
        metrics.requests.labels(name, method, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - started)
        return response


def _install_errors(app: FastAPI) -> None:
    """OpenAI's envelope for every error, never a traceback."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return _error(exc)

    @app.exception_handler(FeldsparError)
    async def feldspar_error(request: Request, exc: FeldsparError) -> Response:
        return _error(from_feldspar(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(APIError(400, f"{where or 'body'}: {first.get('msg', 'invalid')}",
                               param=where or None))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(APIError(exc.status_code, str(exc.detail),
                               headers=dict(exc.headers) if exc.headers else None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return _error(APIError(500, "The server failed on this request; see its log",
                               type="api_error", code="server_error"))


def _install_routes(app: FastAPI, state: ServerState) -> None:
    # Both async: they never wait for a thread of the pool that requests for models fill.
    @app.get("/health", tags=["server"])
    async def health() -> Response:
        """200 when the default chat model is ready, 503 with Retry-After while it loads,
        503 with the reason when it could not be loaded."""
        if not state.ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503,
                                headers={"Retry-After": "1"})
        if state.load_error is not None:
            return JSONResponse({"status": "error", "error": state.load_error},
                                status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["server"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: requests, latency, tokens and tokens/s, guard decisions."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


def _version() -> str:
    from feldspar import __version__

    return __version__


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
