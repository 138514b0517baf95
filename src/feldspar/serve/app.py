"""The FastAPI application: OpenAI-compatible models and chat completions, health, keys.

Every route but /health asks for a key; every error is OpenAI's envelope; the default
chat model loads in the background at start-up, and /health says 503 until it is ready.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from feldspar.config import Settings, load_settings
from feldspar.errors import FeldsparError
from feldspar.serve.auth import authorized, load_keys
from feldspar.serve.errors import APIError, from_feldspar

if TYPE_CHECKING:
    from feldspar.datatypes import Completion, Message, TokenLogprob
    from feldspar.models.base import ChatModel, GenerationOptions, Stream
    from feldspar.models.spec import ModelSpec

OPEN_PATHS = frozenset({"/health"})
DISCONNECT_POLL = 0.25
"""Seconds between two checks that a streaming client is still there."""


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatRequest(BaseModel):
    """POST /v1/chat/completions, as OpenAI defines it (fields Feldspar ignores, such as
    `user`, are accepted and ignored; ones it cannot honour are refused)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=1, description="One choice per request.")
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


def create_app(settings: Settings | None = None, *, load_default: bool = True) -> FastAPI:
    """The application. With `load_default`, the default chat model loads at start-up in
    the background (/health answers 503 until it is ready)."""
    settings = settings or load_settings()
    keys, _ = load_keys(settings)
    app = FastAPI(title="Feldspar", version=_version(),
                  description="OpenAI-compatible API over Feldspar's models.")
    ready = threading.Event()
    app.state.settings, app.state.ready = settings, ready

    def warm() -> None:
        from feldspar.models.loading import get_model

        try:
            get_model(settings=settings)
        finally:
            ready.set()  # a model that fails to load is reported by the requests for it

    if load_default:
        app.router.on_startup.append(lambda: threading.Thread(target=warm, daemon=True,
                                                               name="feldspar-warm").start())
    else:
        ready.set()
    _install_checks(app, keys, settings)
    _install_errors(app)
    _install_routes(app, settings, ready)
    return app


def _install_checks(app: FastAPI, keys: list[str], settings: Settings) -> None:
    """The key, then the body's size, before any route runs."""
    limit = int(settings.serve_max_body_mb * 1_000_000)

    @app.middleware("http")
    async def check(request: Request, call_next: Any) -> Response:
        if request.url.path not in OPEN_PATHS and not authorized(
                request.headers.get("authorization"), keys):
            return _error(APIError(401, "Missing or wrong API key; send 'Authorization: "
                                   "Bearer KEY'", code="invalid_api_key"))
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            return _error(APIError(413, f"The request body is over "
                                   f"{settings.serve_max_body_mb:g} MB", code="body_too_large"))
        response: Response = await call_next(request)
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
        return _error(APIError(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return _error(APIError(500, "The server failed on this request; see its log",
                               type="api_error", code="server_error"))


def _install_routes(app: FastAPI, settings: Settings, ready: threading.Event) -> None:
    @app.get("/health")
    def health() -> Response:
        if not ready.is_set():
            return JSONResponse({"status": "loading"}, status_code=503,
                                headers={"Retry-After": "1"})
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(s) for s in _served(settings)]}

    @app.get("/v1/models/{model_id:path}")
    def get_model_card(model_id: str) -> dict[str, Any]:
        for spec in _served(settings):
            if spec.name == model_id:
                return _model_card(spec)
        raise APIError(404, f"The model '{model_id}' does not exist; GET /v1/models lists "
                       "them", code="model_not_found", param="model")

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest,
                               request: Request) -> Response | dict[str, Any]:
        from feldspar.models.loading import get_model

        model = await run_in_threadpool(get_model, body.model, settings=settings)
        options = _options(body, settings)
        messages: list[Message] = [{"role": m.role, "content": m.text()}
                                   for m in body.messages]
        if not body.stream:
            done = await run_in_threadpool(model.complete, messages, options=options)
            return _completion(model, done, body)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await streamed(model, messages, options, body, include_usage, request)


async def streamed(model: ChatModel, messages: list[Message], options: GenerationOptions,
                   body: ChatRequest, include_usage: bool, request: Request) -> Response:
    """A streamed completion. One thread of its own starts the generation and makes all
    its events (a model's stream belongs to the thread that reads it); a bad request (a
    prompt over the context...) raises before any event is sent. The thread stops, and
    frees the model, as soon as the client is gone: a watcher asks every DISCONNECT_POLL
    seconds, so that a client that leaves while nobody reads the stream still frees it."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()

    def settle(exc: Exception | None) -> None:  # in the loop; the request may be gone
        if started.done():
            return
        if exc is None:
            started.set_result(None)
        else:
            started.set_exception(exc)

    def produce() -> None:
        try:
            stream = model.stream(messages, options=options)
        except Exception as exc:
            loop.call_soon_threadsafe(settle, exc)
            return
        loop.call_soon_threadsafe(settle, None)
        events = _events(model, stream, body, include_usage)
        try:
            for event in events:
                if stop.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, event)
        finally:
            events.close()  # in the thread that reads it: the model is freed
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=produce, name="feldspar-stream", daemon=True).start()
    try:
        await started
    except asyncio.CancelledError:  # the client left before the first token
        stop.set()
        raise
    return StreamingResponse(_relay(queue, stop, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _relay(queue: asyncio.Queue[str | None], stop: threading.Event,
                 request: Request) -> AsyncIterator[str]:
    """The events from `queue` until its end (None); `stop` is set when the client goes."""
    async def watch() -> None:
        while not stop.is_set():
            if await request.is_disconnected():
                stop.set()
                return
            await asyncio.sleep(DISCONNECT_POLL)

    watcher = asyncio.ensure_future(watch())
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        stop.set()
        watcher.cancel()


def _version() -> str:
    from feldspar import __version__

    return __version__


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _served(settings: Settings) -> list[ModelSpec]:
    """The models a request may name: chat and embedding models that the license policy
    allows."""
    from feldspar.models.licenses import is_allowed
    from feldspar.models.lookup import all_specs

    return [s for s in all_specs(settings)
            if is_allowed(s, settings) and {"chat", "guard", "embed"} & set(s.roles)]


def _model_card(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.name, "object": "model", "created": 0, "owned_by": "feldspar",
            "license": spec.license, "roles": list(spec.roles)}


def _options(body: ChatRequest, settings: Settings) -> GenerationOptions:
    from feldspar.models.base import GenerationOptions

    wanted = body.max_completion_tokens or body.max_tokens
    if wanted is not None and wanted > settings.serve_max_tokens:
        raise APIError(400, f"max_tokens is over this server's limit of "
                       f"{settings.serve_max_tokens}", param="max_tokens")
    schema = None
    if body.response_format is not None and body.response_format.type == "json_object":
        schema = {"type": "object"}
    elif body.response_format is not None and body.response_format.type == "json_schema":
        if body.response_format.json_schema is None:
            raise APIError(400, "response_format json_schema needs a json_schema",
                           param="response_format")
        schema = body.response_format.json_schema.schema_
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    top = body.top_logprobs or 0
    return GenerationOptions(max_tokens=wanted or settings.serve_max_tokens,
                             temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                             stop=stop, json_schema=schema,
                             logprobs=top if body.logprobs else None)


def _logprobs(pieces: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {"content": [{"token": p.token, "logprob": p.logprob,
                         "top_logprobs": [{"token": t, "logprob": lp} for t, lp in p.top]}
                        for p in pieces]}


def _completion(model: ChatModel, done: Completion, body: ChatRequest) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model.spec.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "logprobs": _logprobs(done.logprobs) if body.logprobs else None,
                         "finish_reason": _finish(done.finish_reason)}],
            "usage": _usage(done)}


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def _usage(done: Completion) -> dict[str, int]:
    return {"prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
            "total_tokens": done.usage.prompt_tokens + done.usage.completion_tokens}


def _events(model: ChatModel, stream: Stream, body: ChatRequest,
            include_usage: bool) -> Generator[str, None, None]:
    """Server-sent events of a streamed completion, ending with one `data: [DONE]`; the
    model is freed (the stream closed) however the client leaves."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None,
              logprobs: dict[str, Any] | None = None) -> str:
        data = {"id": ident, "object": "chat.completion.chunk", "created": created,
                "model": model.spec.name,
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                             "finish_reason": finish}]}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        seen = 0
        for piece in stream:
            fresh = stream.logprobs[seen:]  # the tokens this piece of text came with
            seen += len(fresh)
            yield chunk({"content": piece},
                        logprobs=_logprobs(fresh) if body.logprobs else None)
        done = stream.result()
        yield chunk({}, _finish(done.finish_reason))
        if include_usage:
            usage = {"id": ident, "object": "chat.completion.chunk", "created": created,
                     "model": model.spec.name, "choices": [], "usage": _usage(done)}
            yield f"data: {json.dumps(usage)}\n\n"
    except FeldsparError as exc:
        yield f"data: {json.dumps(from_feldspar(exc).body())}\n\n"
    finally:
        stream.close()
    yield "data: [DONE]\n\n"
