"""OpenAI's endpoints: models, chat completions (a `rag:COLLECTION` model answers from
documents), text completions and embeddings, with the guard on every request."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from feldspar.serve import guarding
from feldspar.serve.errors import APIError
from feldspar.serve.schemas import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    Sampling,
)
from feldspar.serve.streaming import cancelled, event_stream, events, sse, until_cancelled

if TYPE_CHECKING:
    from feldspar.config import Settings
    from feldspar.datatypes import Completion, Message, TokenLogprob, Usage
    from feldspar.guard.verdicts import GuardResult
    from feldspar.models.base import ChatModel, GenerationOptions, Stream
    from feldspar.models.spec import ModelSpec
    from feldspar.rag.answer import Answer
    from feldspar.serve.state import ServerState

RAG_PREFIX = "rag:"
MAX_SCHEMA_CHARS = 65_536
MAX_SCHEMA_DEPTH = 32
_COUNTS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties",
                     "maxProperties", "minContains", "maxContains"})
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def install(app: FastAPI, state: ServerState) -> None:
    _install_models(app, state)
    _install_generation(app, state)


def _install_models(app: FastAPI, state: ServerState) -> None:
    @app.get("/v1/models", tags=["openai"])
    def list_models() -> dict[str, Any]:
        """The models a request may name: chat, guard and embedding models the license
        policy allows, and `rag:COLLECTION` for each collection."""
        return {"object": "list", "data": [*(_model_card(s) for s in _served(state)),
                                           *(_rag_card(name) for name in _rag_models(state))]}

    @app.get("/v1/models/{model_id:path}", tags=["openai"])
    def get_model_card(model_id: str) -> dict[str, Any]:
        for spec in _served(state):
            if spec.name == model_id:
                return _model_card(spec)
        if model_id.startswith(RAG_PREFIX) and model_id in _rag_models(state):
            return _rag_card(model_id)
        raise unknown_model(model_id)


def _install_generation(app: FastAPI, state: ServerState) -> None:
    settings = state.settings

    @app.post("/v1/chat/completions", response_model=None, tags=["openai"])
    async def chat_completions(body: ChatRequest, request: Request) -> Response | dict[str, Any]:
        """OpenAI's chat completions, streamed or not. `rag:COLLECTION` answers from a
        collection with checked citations: inline markers and a Sources block, and the
        whole answer in the extra field `feldspar`."""
        messages: list[Message] = [{"role": m.role, "content": m.text()} for m in body.messages]
        if body.model.startswith(RAG_PREFIX):
            options = _rag_options(body, settings)
            return await _generate(state, body, request,
                                   lambda: _rag_events(state, body, messages, options),
                                   lambda: _rag_reply(state, body, messages, options))
        options = _options(body, settings, body.max_completion_tokens)
        return await _generate(state, body, request,
                               lambda: _chat_events(state, body, messages, options),
                               lambda: _chat_reply(state, body, messages, options))

    @app.post("/v1/completions", response_model=None, tags=["openai"])
    async def completions(body: CompletionRequest,
                          request: Request) -> Response | dict[str, Any]:
        """OpenAI's (legacy) text completions. Each prompt goes to the model's chat
        template as one user message; a list of prompts gives one choice each."""
        if body.echo or body.suffix:
            raise APIError(400, "echo and suffix are not supported", code="unsupported_parameter",
                           param="echo" if body.echo else "suffix")
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if body.stream and len(prompts) > 1:
            raise APIError(400, "A streamed completion takes one prompt", param="prompt")
        options = _options(body, settings, None, logprobs=body.logprobs)
        return await _generate(state, body, request,
                               lambda: _text_events(state, body, prompts[0], options),
                               lambda: _text_reply(state, body, prompts, options))

    @app.post("/v1/embeddings", tags=["openai"], response_class=JSONResponse)
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:
        """OpenAI's embeddings: unit-length vectors, as floats or base64 float32."""
        with state.busy():
            # Plain JSON, not FastAPI's encoder: it walks every float of every vector.
            return JSONResponse(await run_in_threadpool(_embeddings, state, body))


def unknown_model(model_id: str) -> APIError:
    return APIError(404, f"The model '{model_id[:200]}' does not exist; GET /v1/models "
                    "lists them", code="model_not_found", param="model")


async def _generate(state: ServerState, body: Sampling, request: Request,
                    make_events: Callable[[], Iterator[str]],
                    reply: Callable[[], dict[str, Any]]) -> Response | dict[str, Any]:
    """Run `reply` (a dict) or, for a stream, `make_events` (SSE strings) in a thread,
    holding a place among the busy requests until it ends."""
    if not body.stream:
        with state.busy():
            return await run_in_threadpool(reply)
    state.enter()
    return await event_stream(make_events, request, on_end=state.leave)


# Chat

def _chat_reply(state: ServerState, body: ChatRequest, messages: list[Message],
                options: GenerationOptions) -> dict[str, Any]:
    model = chat_model(state, body.model)
    guard = state.guard
    messages, inputs = guarding.screen_messages(guard, messages, model.spec.name)
    done = model.complete(messages, options=options)
    state.metrics.completion(model.spec.name, done)
    output = guarding.screen_reply(guard, done.text, guarding.last_user(messages),
                                   model.spec.name)
    text = guarding.reply_text(done.text, output)
    logprobs = _logprobs(done.logprobs) if body.logprobs and text == done.text else None
    out = _chat_body(model.spec.name, text, _finish(done.finish_reason, output),
                     _usage(done.usage), logprobs)
    if guard is not None:
        out["feldspar"] = {"guard": guarding.summary(inputs, output)}
    return out


def _chat_events(state: ServerState, body: ChatRequest, messages: list[Message],
                 options: GenerationOptions) -> Iterator[str]:
    model = chat_model(state, body.model)
    messages, inputs = guarding.screen_messages(state.guard, messages, model.spec.name)
    stream = model.stream(messages, options=options)
    reply = GuardedReply(state, model.spec.name, stream, guarding.last_user(messages))
    return events(_chat_chunks(reply, body, inputs), stream.close)


def _chat_chunks(reply: GuardedReply, body: ChatRequest,
                 inputs: list[GuardResult]) -> Iterator[str]:
    """A streamed chat completion's chunks: the role, the text, the finish reason (with
    the guard's decisions), the usage when asked."""
    chunk = _chunker(reply.name, "chat.completion.chunk")
    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                  "logprobs": None, "finish_reason": None}])
    for piece, fresh in reply:
        yield chunk([{"index": 0, "delta": {"content": piece},
                      "logprobs": _logprobs(fresh) if body.logprobs and fresh else None,
                      "finish_reason": None}])
    done, finish, late, last = reply.end(inputs)
    yield chunk([{"index": 0, "delta": {}, "finish_reason": finish,
                  "logprobs": _logprobs(late) if body.logprobs and late else None}], **last)
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], usage=_usage(done.usage))


class GuardedReply:
    """A streamed reply under the output policy: iterate for (text, its tokens'
    log-probabilities), then `finish()` for the completion, the guard's decision and the
    finish reason. While the guard holds text back to screen it, log-probabilities are
    not sent with the text (they would spell out what the guard may redact): they come
    with the last chunk, and only if the guard left the reply as the model wrote it."""

    def __init__(self, state: ServerState, name: str, stream: Stream,
                 prompt: str | None) -> None:
        self._state, self.name, self._stream = state, name, stream
        self._guarded = guarding.guarded_pieces(state.guard, until_cancelled(stream),
                                                prompt, name)
        self._held = guarding.holds(state.guard)

    def __iter__(self) -> Iterator[tuple[str, Sequence[TokenLogprob]]]:
        seen = 0
        for piece in self._guarded or until_cancelled(self._stream):
            fresh = self._stream.logprobs[seen:]  # the tokens that came with this text
            seen += len(fresh)
            yield piece, () if self._held else fresh

    def finish(self) -> tuple[Completion, GuardResult | None, str]:
        if cancelled() or (self._guarded is not None and self._guarded.blocked):
            self._stream.close()  # nothing more of it will be shown: stop generating
        done = self._stream.result()
        self._state.metrics.completion(self.name, done)
        output = self._guarded.result() if self._guarded is not None else None
        return done, output, _finish(done.finish_reason, output)

    def end(self, inputs: list[GuardResult]
            ) -> tuple[Completion, str, Sequence[TokenLogprob], dict[str, Any]]:
        """`finish()` for the last chunk: the completion, the finish reason, the
        log-probabilities held back, and the chunk's extra fields (the guard's
        decisions)."""
        done, output, finish = self.finish()
        extra: dict[str, Any] = {}
        if self._state.guard is not None:
            extra["feldspar"] = {"guard": guarding.summary(inputs, output)}
        return done, finish, self.late_logprobs(done, output), extra

    def late_logprobs(self, done: Completion, output: GuardResult | None
                      ) -> Sequence[TokenLogprob]:
        """The log-probabilities held back with the text, if the text went out whole."""
        if not self._held or (output is not None and output.action in ("redact", "block")):
            return ()
        return done.logprobs


# rag:COLLECTION

def _rag_collection(state: ServerState, model_id: str) -> str:
    name = model_id.removeprefix(RAG_PREFIX)
    if not name or state.workspace.store.collection(name) is None:
        raise unknown_model(model_id)
    return name


def _rag_options(body: ChatRequest, settings: Settings) -> GenerationOptions:
    """As `feldspar ask`: greedy and `rag_max_tokens` unless the request says otherwise."""
    from feldspar.models.base import GenerationOptions

    if body.response_format is not None and body.response_format.type != "text":
        raise APIError(400, "A rag: model takes no response_format",
                       code="unsupported_parameter", param="response_format")
    if body.logprobs:
        raise APIError(400, "A rag: model gives no logprobs", code="unsupported_parameter",
                       param="logprobs")
    wanted = _max_tokens(body.max_completion_tokens or body.max_tokens, settings)
    given = body.model_fields_set
    return GenerationOptions(
        max_tokens=wanted or settings.rag_max_tokens,
        temperature=body.temperature if "temperature" in given else 0.0,
        top_p=body.top_p if "top_p" in given else 1.0, seed=body.seed, stop=_stop(body))


def _rag_start(state: ServerState, body: ChatRequest, messages: list[Message],
               options: GenerationOptions) -> Any:
    """Start answering the last user message from the collection; earlier messages are
    the conversation."""
    collection = _rag_collection(state, body.model)
    if messages[-1]["role"] != "user":
        raise APIError(400, "The last message of a rag: request must be the user's question",
                       param="messages")
    history = [m for m in messages[:-1] if m["role"] in ("user", "assistant")]
    return guarding.start_answer(state, messages[-1]["content"], collection=collection,
                                 history=history, model=None, options=options)


def _rag_reply(state: ServerState, body: ChatRequest, messages: list[Message],
               options: GenerationOptions) -> dict[str, Any]:
    answer = _rag_start(state, body, messages, options).result()
    text = answer.text + sources_block(answer)
    out = _chat_body(body.model, text, _rag_finish(answer), _usage(answer.usage), None)
    out["feldspar"] = answer.to_dict()
    return out


def _rag_events(state: ServerState, body: ChatRequest, messages: list[Message],
                options: GenerationOptions) -> Iterator[str]:
    answering = _rag_start(state, body, messages, options)
    return events(_rag_chunks(answering, body), answering.close)


def _rag_chunks(answering: Any, body: ChatRequest) -> Iterator[str]:
    chunk = _chunker(body.model, "chat.completion.chunk")

    def delta(text: str, finish: str | None = None, **extra: Any) -> str:
        content = {"content": text} if text else {}
        return chunk([{"index": 0, "delta": content, "logprobs": None,
                       "finish_reason": finish}], **extra)

    yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                  "logprobs": None, "finish_reason": None}])
    for piece in until_cancelled(answering):
        yield delta(piece)
    if cancelled():
        return  # the client is gone: no checks for nobody
    answer: Answer = answering.result()
    tail = sources_block(answer)
    if answer.abstained and answer.draft is not None and answer.reason not in (
            "blocked by the guard", "model declined"):
        tail = f"\n\n{answer.text} (The draft above is not supported by the sources.)"
    yield delta(tail, _rag_finish(answer), feldspar=answer.to_dict())
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], usage=_usage(answer.usage))


def sources_block(answer: Answer) -> str:
    """The cited sources under an answer: "[1] path, lines 3-9: "quote""."""
    cited: dict[int, str] = {}
    for citation in answer.citations:
        if citation.marker in cited:
            continue
        source = next((s for s in answer.sources if s.marker == citation.marker), None)
        where = ""
        if source is not None:
            where = (f", page {source.page}" if source.page else
                     f", lines {source.lines[0]}-{source.lines[1]}")
        quote = " ".join(citation.quote.split())
        quote = quote if len(quote) <= 160 else quote[:157] + "..."
        cited[citation.marker] = f"[{citation.marker}] {citation.source}{where}: \"{quote}\""
    if not cited:
        return ""
    return "\n\nSources:\n" + "\n".join(cited[m] for m in sorted(cited))


def _rag_finish(answer: Answer) -> str:
    return "content_filter" if answer.reason == "blocked by the guard" else "stop"


# Text completions

def _text_reply(state: ServerState, body: CompletionRequest, prompts: list[str],
                options: GenerationOptions) -> dict[str, Any]:
    model = chat_model(state, body.model)
    guard = state.guard
    inputs = guarding.screen_prompts(guard, prompts, model.spec.name, param="prompt")
    choices, outputs, prompt_tokens, completion_tokens = [], [], 0, 0
    for index, prompt in enumerate(prompts):
        done = model.complete(prompt, options=options)
        state.metrics.completion(model.spec.name, done)
        output = guarding.screen_reply(guard, done.text, prompt, model.spec.name)
        text = guarding.reply_text(done.text, output)
        choices.append({"index": index, "text": text,
                        "finish_reason": _finish(done.finish_reason, output),
                        "logprobs": _text_logprobs(done.logprobs)
                        if body.logprobs is not None and text == done.text else None})
        outputs.append(output.to_dict() if output is not None else None)
        prompt_tokens += done.usage.prompt_tokens
        completion_tokens += done.usage.completion_tokens
    out = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
           "created": int(time.time()), "model": model.spec.name, "choices": choices,
           "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}}
    if guard is not None:
        out["feldspar"] = {"guard": {"input": [r.to_dict() for r in inputs],
                                     "output": outputs}}
    return out


def _text_events(state: ServerState, body: CompletionRequest, prompt: str,
                 options: GenerationOptions) -> Iterator[str]:
    model = chat_model(state, body.model)
    inputs = guarding.screen_prompts(state.guard, [prompt], model.spec.name, param="prompt")
    stream = model.stream(prompt, options=options)
    reply = GuardedReply(state, model.spec.name, stream, prompt)
    return events(_text_chunks(reply, body, inputs), stream.close)


def _text_chunks(reply: GuardedReply, body: CompletionRequest,
                 inputs: list[GuardResult]) -> Iterator[str]:
    chunk = _chunker(reply.name, "text_completion")
    offset = 0
    for piece, fresh in reply:
        logprobs = None
        if body.logprobs is not None and fresh:
            logprobs = _text_logprobs(fresh, offset)
        offset += sum(len(p.token) for p in fresh) if fresh else len(piece)
        yield chunk([{"index": 0, "text": piece, "finish_reason": None,
                      "logprobs": logprobs}])
    done, finish, late, last = reply.end(inputs)
    yield chunk([{"index": 0, "text": "", "finish_reason": finish,
                  "logprobs": _text_logprobs(late) if body.logprobs is not None and late
                  else None}], **last)
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], usage=_usage(done.usage))


def _text_logprobs(pieces: Sequence[TokenLogprob], start: int = 0) -> dict[str, Any]:
    """The legacy completions' shape of log-probabilities; offsets count from `start`."""
    offsets, at = [], start
    for piece in pieces:
        offsets.append(at)
        at += len(piece.token)
    return {"tokens": [p.token for p in pieces], "token_logprobs": [p.logprob for p in pieces],
            "top_logprobs": [dict(p.top) for p in pieces], "text_offset": offsets}


# Embeddings

def _embeddings(state: ServerState, body: EmbeddingRequest) -> dict[str, Any]:
    from feldspar.models.loading import get_embedder

    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    embedder = get_embedder(_served_name(state, body.model), settings=state.settings)
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        raise APIError(400, f"'{embedder.spec.name}' makes vectors of {embedder.dimension} "
                       f"dimensions, not {body.dimensions}; leave dimensions out",
                       param="dimensions")
    vectors = embedder.embed(texts)
    tokens = embedder.input_tokens(texts)
    data = []
    for i, vector in enumerate(vectors):
        value: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                      if body.encoding_format == "base64" else vector.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": embedder.spec.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# Shared

def chat_model(state: ServerState, name: str) -> ChatModel:
    """A chat model the server serves (never a path or a backend-prefixed name)."""
    from feldspar.models.loading import get_model

    return get_model(_served_name(state, name), settings=state.settings)


def _served_name(state: ServerState, name: str) -> str:
    """`name` if /v1/models lists it, else the 404: a request cannot name files or
    servers the way the CLI can."""
    if name not in {s.name for s in _served(state)}:
        raise unknown_model(name)
    return name


def _served(state: ServerState) -> list[ModelSpec]:
    """The models a request may name: chat and embedding models that the license policy
    allows."""
    from feldspar.models.licenses import is_allowed
    from feldspar.models.lookup import all_specs

    settings = state.settings
    return [s for s in all_specs(settings)
            if is_allowed(s, settings) and {"chat", "guard", "embed"} & set(s.roles)]


def _rag_models(state: ServerState) -> list[str]:
    return [f"{RAG_PREFIX}{c.name}" for c in state.workspace.collections()]


def _model_card(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.name, "object": "model", "created": 0, "owned_by": "feldspar",
            "license": spec.license, "roles": list(spec.roles)}


def _rag_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "feldspar",
            "roles": ["rag"]}


def _max_tokens(wanted: int | None, settings: Settings) -> int | None:
    if wanted is not None and wanted > settings.serve_max_tokens:
        raise APIError(400, f"max_tokens is over this server's limit of "
                       f"{settings.serve_max_tokens}", param="max_tokens")
    return wanted


def _stop(body: Sampling) -> tuple[str, ...]:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if any(not s for s in stop):
        raise APIError(400, "stop strings must not be empty", param="stop")
    if len(stop) > 4:
        raise APIError(400, "At most 4 stop strings", param="stop")
    return stop


def _options(body: Sampling, settings: Settings, max_completion: int | None, *,
             logprobs: int | None = None) -> GenerationOptions:
    from feldspar.models.base import GenerationOptions

    wanted = _max_tokens(max_completion or body.max_tokens, settings)
    schema = None
    if isinstance(body, ChatRequest):
        schema = _schema(body, settings.serve_max_tokens)
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
    return GenerationOptions(max_tokens=wanted or settings.serve_max_tokens,
                             temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                             stop=_stop(body), json_schema=schema, logprobs=logprobs)


def _schema(body: ChatRequest, limit: int) -> dict[str, Any] | None:
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None:
        raise APIError(400, "response_format json_schema needs a json_schema",
                       param="response_format")
    schema = fmt.json_schema.schema_
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise APIError(400, f"The JSON schema is over {MAX_SCHEMA_CHARS} characters",
                       param="response_format")
    _check_bounds(schema, limit, 0)
    return schema


def _check_bounds(node: Any, limit: int, depth: int) -> None:
    """Refuse a schema whose grammar would be huge: counts (minItems, maxLength...) and
    regex repetitions over `limit` (no reply may be longer), or nesting over
    MAX_SCHEMA_DEPTH."""
    if depth > MAX_SCHEMA_DEPTH:
        raise APIError(400, f"The JSON schema nests deeper than {MAX_SCHEMA_DEPTH}",
                       param="response_format")
    children: list[Any] = []
    if isinstance(node, dict):
        for key, value in node.items():
            counts: list[int] = []
            if key in _COUNTS and isinstance(value, int):
                counts = [value]
            elif key == "pattern" and isinstance(value, str):
                counts = [int(n) for m in _REPEAT.finditer(value) for n in m.groups() if n]
            if any(n > limit for n in counts):
                raise APIError(400, f"The JSON schema's {key} asks for more than "
                               f"{limit}, the most tokens a reply may have",
                               param="response_format")
            children.append(value)
    elif isinstance(node, list):
        children = node
    for child in children:
        _check_bounds(child, limit, depth + 1)


def _logprobs(pieces: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {"content": [{"token": p.token, "logprob": p.logprob,
                         "top_logprobs": [{"token": t, "logprob": lp} for t, lp in p.top]}
                        for p in pieces]}


def _chat_body(model: str, text: str, finish: str, usage: dict[str, int],
               logprobs: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": logprobs, "finish_reason": finish}],
            "usage": usage}


def _chunker(model: str, kind: Literal["chat.completion.chunk", "text_completion"]
             ) -> Callable[..., str]:
    """A function that makes one event of a stream, all with the same id."""
    ident = f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse({"id": ident, "object": kind, "created": created, "model": model,
                    "choices": choices, **extra})

    return chunk


def _finish(reason: str, output: GuardResult | None = None) -> str:
    """OpenAI's finish reason: content_filter when the guard blocked the reply."""
    if output is not None and output.blocked:
        return "content_filter"
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def _usage(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}

