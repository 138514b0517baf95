"""The `openai` backend against a third-party OpenAI-compatible server: llama-cpp-python's
own server, on loopback, serving the packaged model."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

import feldspar
from feldspar.config import Settings, load_settings
from feldspar.models.adding import register_remote
from feldspar.models.lookup import find_spec
from feldspar.models.weights import locate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gguf = locate(find_spec("smollm2-135m-instruct", load_settings()))
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "smol"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("llama-cpp-python's server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def remote(llama_server: str, settings: Settings) -> feldspar.models.ChatModel:
    register_remote(settings, "llama-server", llama_server, remote_model="smol",
                    license_id="Apache-2.0")
    return feldspar.get_model("llama-server", settings=settings)


def test_streamed_chat_with_usage(remote: feldspar.models.ChatModel) -> None:
    stream = remote.stream("Name three primary colors.", temperature=0, max_tokens=24)
    pieces = list(stream)
    reply = stream.result()
    assert len(pieces) > 1
    assert "red" in reply.text.lower()
    # This server sends no usage when streaming: tokens are counted from the stream, and
    # the prompt's size is unknown (0).
    assert reply.usage.completion_tokens == len(pieces)
    assert reply.usage.prompt_tokens == 0


def test_choices_through_the_older_json_object_format(remote: feldspar.models.ChatModel) -> None:
    # This server rejects OpenAI's "json_schema" response format; the backend falls back.
    for seed in range(3):
        reply = remote.complete("Billing or sales?", choices=("billing", "sales"), seed=seed,
                                temperature=1.0)
        assert reply.text in ("billing", "sales")


def test_json_schema_reply_parses(remote: feldspar.models.ChatModel) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "boolean"}},
              "required": ["answer"]}
    reply = remote.complete("Is water wet? Reply in JSON.", json_schema=schema,
                            temperature=0, max_tokens=40)
    assert isinstance(json.loads(reply.text)["answer"], bool)
