"""Any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, watsonx) over httpx."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np

from feldspar.datatypes import Delta, Message, TokenLogprob
from feldspar.errors import ModelError, RemoteError
from feldspar.models.base import ChatModel, Embedder, GenerationOptions


class _Rejected(RemoteError):
    """The server refused the request (400, 422, or 500 from some): maybe its shape."""


class _Client:
    """The HTTP side shared by chat and embeddings: base URL, key, errors in one place."""

    def __init__(self, owner: ChatModel | Embedder) -> None:
        source, settings = owner.spec.source, owner.settings
        if not source.url:
            raise ModelError(f"Model '{owner.spec.name}' has no server URL")
        self.base_url = source.url.rstrip("/")
        self.model = source.remote_model or owner.spec.name
        key = None
        if source.api_key_env:
            key = os.environ.get(source.api_key_env)
            if key is None:
                raise RemoteError(f"Model '{owner.spec.name}' reads its API key from "
                                  f"${source.api_key_env}, which is not set")
        elif settings.openai_api_key is not None and settings.openai_base_url is not None \
                and source.url.rstrip("/") == settings.openai_base_url.rstrip("/"):
            # The global key belongs to openai_base_url only; never send it elsewhere.
            key = settings.openai_api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers,
                                 timeout=httpx.Timeout(settings.request_timeout, connect=10.0))

    def _fail(self, exc: Exception) -> RemoteError:
        if isinstance(exc, httpx.HTTPStatusError):
            response = exc.response
            try:
                detail = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = response.text or response.reason_phrase
            detail = " ".join(str(detail).split())[:300]  # one line, whatever the server sent
            hint = {401: "check the API key", 403: "check the API key",
                    404: f"check that the server serves model '{self.model}'"}.get(
                        response.status_code, "see the server's log")
            # llama-cpp-python's server reports a request it cannot parse as a 500.
            kind = _Rejected if response.status_code in (400, 422, 500) else RemoteError
            return kind(f"{self.base_url} answered {response.status_code}: {detail}; {hint}")
        if isinstance(exc, ValueError):
            return RemoteError(f"{self.base_url} sent a reply that is not valid JSON; is it "
                               "an OpenAI-compatible server?")
        if isinstance(exc, httpx.TimeoutException):
            return RemoteError(f"{self.base_url} did not answer in time; check the server or "
                               "raise request_timeout")
        return RemoteError(f"Cannot reach {self.base_url} ({exc.__class__.__name__}: {exc}); "
                           "check that the server is running and the URL is right")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.post(path, json=body)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data
        except (httpx.HTTPError, ValueError) as exc:
            raise self._fail(exc) from exc

    def events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Server-sent events of a streaming request, as parsed JSON objects."""
        try:
            with self.http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    response.raise_for_status()
                finished = False
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    event = json.loads(data)
                    if "error" in event:
                        raise RemoteError(f"{self.base_url} failed mid-stream: "
                                          f"{event['error'].get('message', event['error'])}")
                    finished = finished or any(
                        c.get("finish_reason") for c in event.get("choices") or [])
                    yield event
                if not finished:
                    # Without [DONE] or a finish_reason, the reply was cut off: never pass a
                    # truncated answer off as a whole one.
                    raise RemoteError(f"{self.base_url} closed the stream before the reply "
                                      "ended; check the server's log")
        except (httpx.HTTPError, ValueError) as exc:
            raise self._fail(exc) from exc


def _choice_schema(choices: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "object", "properties": {"choice": {"type": "string", "enum": list(choices)}},
            "required": ["choice"], "additionalProperties": False}


class OpenAIChat(ChatModel):
    """Chat through /v1/chat/completions, streamed."""

    _client: _Client
    _schema_style = "json_schema"
    """How this server takes a JSON schema: OpenAI's "json_schema" response format, or
    the older {"type": "json_object", "schema": ...} (llama-cpp-python's server)."""

    def _load(self) -> None:
        self._client = _Client(self)

    def _body(self, messages: list[Message], options: GenerationOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._client.model, "messages": messages, "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": options.temperature, "top_p": options.top_p,
        }
        if options.max_tokens is not None:
            body["max_tokens"] = options.max_tokens
        if options.seed is not None:
            body["seed"] = options.seed
        if options.stop:
            body["stop"] = list(options.stop)
        if options.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = options.logprobs
        if options.template_vars:
            body["chat_template_kwargs"] = dict(options.template_vars)  # vLLM's name
        schema = options.json_schema
        if options.choices is not None:
            # Portable across servers: a one-field object whose value is an enum.
            schema = _choice_schema(options.choices)
        if schema is not None and self._schema_style == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema,
                                                       "strict": True}}
        elif schema is not None:
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    def _events(self, messages: list[Message],
                options: GenerationOptions) -> Iterator[dict[str, Any]]:
        """The reply's events; a server that rejects OpenAI's json_schema format is asked
        again, once, in the older json_object form."""
        body = self._body(messages, options)
        events = self._client.events("/chat/completions", body)
        try:
            first = next(events, None)
        except _Rejected as exc:
            # Only a complaint about the format itself earns a retry in the older form.
            if "response_format" not in body or self._schema_style != "json_schema" or not (
                    "json_schema" in str(exc) or "response_format" in str(exc)):
                raise
            body["response_format"] = {"type": "json_object",
                                       "schema": body["response_format"]["json_schema"]["schema"]}
            events = self._client.events("/chat/completions", body)
            first = next(events, None)
            self._schema_style = "json_object"  # it worked: remember it for this server
        if first is not None:
            yield first
            yield from events

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        usage: dict[str, Any] | None = None
        finish, chunks, parts = "stop", 0, []
        held: list[TokenLogprob] = []
        buffer = options.choices is not None  # the wire carries JSON; show only the choice
        for event in self._events(messages, options):
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") or ""
                logprobs = _logprobs(choice.get("logprobs"))
                if text or logprobs:
                    chunks += 1
                    parts.append(text)
                    if not buffer:
                        yield Delta(text=text, tokens=max(1, len(logprobs)), logprobs=logprobs)
                    held.extend(logprobs)
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
        if buffer:
            # The log-probabilities stay those of the JSON tokens the server sent, the
            # choice among them (feldspar.classify finds its label's own tokens).
            yield Delta(text=self._chosen("".join(parts), options), tokens=chunks,
                        logprobs=tuple(held))
        elif options.json_schema is not None and finish == "stop":
            self._check_json("".join(parts))  # a reply cut by max_tokens is "length" instead
        if usage is None:
            yield Delta(finish_reason=finish)
        else:
            yield Delta(finish_reason=finish, prompt_tokens=int(usage["prompt_tokens"]),
                        completion_tokens=int(usage["completion_tokens"]))

    def _check_json(self, raw: str) -> None:
        try:
            json.loads(raw)
        except ValueError as exc:
            raise RemoteError(f"{self._client.base_url} ignored the output constraint (the "
                              f"reply is not JSON: {raw[:80]!r}); it needs json_schema "
                              "response_format") from exc

    def _chosen(self, raw: str, options: GenerationOptions) -> str:
        try:
            value = json.loads(raw)["choice"]
        except (ValueError, KeyError, TypeError):
            value = raw.strip()
        if value not in (options.choices or ()):
            raise RemoteError(f"{self._client.base_url} ignored the output constraint "
                              f"(replied {raw[:80]!r}); it needs json_schema response_format")
        return str(value)


def _logprobs(payload: dict[str, Any] | None) -> tuple[TokenLogprob, ...]:
    if not payload:
        return ()
    return tuple(
        TokenLogprob(item["token"], float(item["logprob"]),
                     tuple((t["token"], float(t["logprob"]))
                           for t in item.get("top_logprobs") or ()))
        for item in payload.get("content") or ()
    )


class OpenAIEmbedder(Embedder):
    """Embeddings through /v1/embeddings."""

    _client: _Client

    def _load(self) -> None:
        self._client = _Client(self)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        data = self._client.post("/embeddings", {"model": self._client.model, "input": texts})
        try:
            rows = sorted(data["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise ValueError("wrong shape")
            return vectors
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteError(f"{self._client.base_url} sent a malformed embeddings reply") \
                from exc
