"""A small OpenAI-compatible HTTP server on loopback for the tests, backed by the real
packaged models (SmolLM2 for chat, all-MiniLM-L6-v2 for embeddings).

It speaks the wire format that vLLM and llama.cpp's server speak: /v1/chat/completions
(JSON or server-sent events, usage, logprobs, response_format json_schema) and
/v1/embeddings, behind a bearer key. It can also misbehave on request, to test how the
client copes: fail with 500, hang, or drop the connection mid-stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import feldspar

KEY = "test-key"


class Behaviour:
    """What the server does next: "ok", "fail", "hang", "drop" or "ignore-format"."""

    mode = "ok"
    requests: list[dict[str, Any]]

    def __init__(self) -> None:
        self.requests = []


class Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._error(401, "Incorrect API key provided")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.behaviour.requests.append({"path": self.path, "body": body})
        mode = self.behaviour.mode
        if mode == "fail":
            self._error(500, "The model crashed")
            return
        if mode == "hang":
            time.sleep(3)
            self._error(500, "too late")
            return
        if self.path == "/v1/embeddings":
            self._embeddings(body)
        elif self.path == "/v1/chat/completions":
            self._chat(body, mode)
        else:
            self._error(404, f"No route {self.path}")

    def _embeddings(self, body: dict[str, Any]) -> None:
        if body.get("model") != "minilm":
            self._error(404, f"The model '{body.get('model')}' does not exist")
            return
        vectors = feldspar.get_embedder().embed(body["input"])
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in reversed(list(enumerate(vectors)))]  # out of order, on purpose
        self._json(200, {"object": "list", "data": data, "model": "minilm",
                         "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    def _chat(self, body: dict[str, Any], mode: str) -> None:
        if body.get("model") != "smol":
            self._error(404, f"The model '{body.get('model')}' does not exist")
            return
        options: dict[str, Any] = {
            "max_tokens": body.get("max_tokens"), "temperature": body.get("temperature", 1.0),
            "top_p": body.get("top_p", 1.0), "seed": body.get("seed"),
            "stop": body.get("stop") or (),
        }
        if body.get("logprobs"):
            options["logprobs"] = body.get("top_logprobs", 0)
        fmt = body.get("response_format")
        if fmt and fmt.get("type") == "json_schema" and mode != "ignore-format":
            options["json_schema"] = fmt["json_schema"]["schema"]
        stream = feldspar.get_model().stream(body["messages"], **options)
        if not body.get("stream"):
            done = stream.result()
            self._json(200, {"object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": done.text},
                "finish_reason": done.finish_reason}], "usage": _usage(done)})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, piece in enumerate(stream):
            if mode == "drop" and i == 2:
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self._event({"choices": [{"index": 0, "delta": {"content": piece},
                                      "finish_reason": None}]})
        done = stream.result()
        # Logprobs arrive on their own event at the end: enough to test the parsing.
        if done.logprobs:
            self._event({"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [
                {"token": e.token, "logprob": e.logprob,
                 "top_logprobs": [{"token": t, "logprob": lp} for t, lp in e.top]}
                for e in done.logprobs]}, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {},
                                  "finish_reason": done.finish_reason}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({"choices": [], "usage": _usage(done)})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


def _usage(done: Any) -> dict[str, int]:
    return {"prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
            "total_tokens": done.usage.total_tokens}


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (the tests make some) are not errors worth printing."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def serve() -> Iterator[tuple[str, Behaviour]]:
    """Run the server on a free loopback port; yield its base URL and its behaviour switch."""
    behaviour = Behaviour()
    handler = type("BoundHandler", (Handler,), {"behaviour": behaviour})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", behaviour
    finally:
        server.shutdown()
        server.server_close()
