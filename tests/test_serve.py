"""`feldspar serve`: the OpenAI-compatible API on loopback, with OpenAI's own client and the
real packaged SmolLM2 behind it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

import feldspar
from feldspar.config import Settings

from .serving import KEY, MODEL, free_port, running, wait_healthy

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serve-home")
    with running(Settings(home=home, api_keys=KEY)) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


QUESTION = [{"role": "user", "content": "Name three primary colors."}]


def test_a_reply_equals_in_process_generation(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                           temperature=0, max_tokens=24, seed=1)
    local = feldspar.get_model().complete(QUESTION[0]["content"], temperature=0,
                                          max_tokens=24, seed=1)
    assert reply.choices[0].message.content == local.text
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens == local.usage.completion_tokens
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == MODEL


def test_streamed_text_equals_the_whole_reply_and_usage_comes_last(
        client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                           temperature=0, max_tokens=24)
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=24,  # type: ignore[arg-type]
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_a_stream_ends_with_exactly_one_done(server: str) -> None:
    with httpx.stream("POST", f"{server}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "messages": QUESTION, "max_tokens": 8,
                            "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events.count("data: [DONE]") == 1
    assert events[-1] == "data: [DONE]"
    assert all(json.loads(e.removeprefix("data: "))["object"] == "chat.completion.chunk"
               for e in events[:-1])


def test_the_async_client_streams_too(server: str) -> None:
    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)
        stream = await client.chat.completions.create(
            model=MODEL, messages=QUESTION, temperature=0, max_tokens=12,  # type: ignore[arg-type]
            stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return "".join(parts)

    assert asyncio.run(run())


def test_json_output_and_logprobs(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Give a colour as JSON."}],
        response_format={"type": "json_object"}, max_tokens=40, temperature=0,
        logprobs=True, top_logprobs=2)
    content = reply.choices[0].message.content or ""
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content
    assert all(len(t.top_logprobs) == 2 for t in logprobs.content)


def test_models_are_listed_and_an_unknown_one_is_a_404(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    assert "all-minilm-l6-v2" in ids
    assert "llama-3.2-1b-instruct" not in ids  # its license is not allowed by default
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as found:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)  # type: ignore[arg-type]
    assert found.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"), ({"temperature": 5}, "temperature"), ({"max_tokens": 10**6}, "max_tokens"),
    ({"messages": []}, "messages"),
])
def test_bad_requests_get_openais_error_envelope(server: str, body: dict[str, object],
                                                 param: str) -> None:
    sent = {"model": MODEL, "messages": QUESTION, **body}
    response = httpx.post(f"{server}/v1/chat/completions", json=sent,
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models"), ("GET", f"/v1/models/{MODEL}"), ("POST", "/v1/chat/completions"),
    ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/no-such-route")])
def test_every_route_but_health_asks_for_a_key(server: str, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.request(method, f"{server}{path}", headers=headers,
                                 json={"model": MODEL, "messages": QUESTION})
        assert response.status_code == 401, (path, headers)
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server}/health").status_code == 200


def test_an_oversized_body_is_refused_unread(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", content=b"x" * 9_000_000,
                          headers={"Authorization": f"Bearer {KEY}",
                                   "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_the_readme_first_command_serves_the_docs_with_a_key_of_its_own(
        tmp_path: Path) -> None:
    """What `make serve` runs: the docs into a collection, then the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FELDSPAR_")}
    env["FELDSPAR_HOME"] = str(tmp_path / "home")
    root = Path(__file__).parent.parent
    recipe = (root / "Makefile").read_text()
    assert "feldspar ingest README.md docs --collection feldspar-docs" in recipe
    subprocess.run([sys.executable, "-m", "feldspar", "ingest", "README.md", "docs",
                    "--collection", "feldspar-docs"], cwd=root, env=env, check=True,
                   capture_output=True)
    process = subprocess.Popen([sys.executable, "-m", "feldspar", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        key_file = tmp_path / "home" / "api-key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        key = key_file.read_text().strip()
        assert httpx.get(f"{url}/v1/models").status_code == 401
        listed = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert "rag:feldspar-docs" in [m["id"] for m in listed.json()["data"]]
        assert "<html" in httpx.get(f"{url}/").text
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert f"Feldspar on http://127.0.0.1:{port}/ " in err
    assert str(key_file) in err


def test_a_client_that_leaves_frees_the_model(server: str, client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "Write a very long story about a lighthouse."}]
    with httpx.stream("POST", f"{server}/v1/chat/completions",
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "messages": long, "max_tokens": 3000,
                            "temperature": 0.8, "stream": True}) as response:
        for line in response.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # the model is generating: leave mid-stream
    started = time.monotonic()
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                           max_tokens=4, temperature=0)
    assert reply.choices[0].message.content
    assert time.monotonic() - started < 3.0  # not waiting for 3,000 tokens


def test_streams_and_plain_requests_side_by_side_take_turns(server: str,
                                                            client: openai.OpenAI) -> None:
    lines: list[int] = []

    def read_stream() -> None:
        with httpx.stream("POST", f"{server}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": MODEL, "messages": QUESTION, "max_tokens": 32,
                                "stream": True}) as response:
            lines.append(sum(1 for line in response.iter_lines() if line == "data: [DONE]"))

    readers = [threading.Thread(target=read_stream) for _ in range(3)]
    for reader in readers:
        reader.start()
    replies = [client.chat.completions.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                              max_tokens=4) for _ in range(3)]
    for reader in readers:
        reader.join(60)
    assert lines == [1, 1, 1]
    assert all(r.choices[0].message.content for r in replies)


def test_a_prompt_over_the_context_is_a_400_before_any_event(server: str) -> None:
    long = [{"role": "user", "content": "word " * 20_000}]
    for stream in (False, True):
        response = httpx.post(f"{server}/v1/chat/completions", timeout=60,
                              headers={"Authorization": f"Bearer {KEY}"},
                              json={"model": MODEL, "messages": long, "stream": stream})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
