"""`feldspar serve` beyond chat: text completions, embeddings, Feldspar's endpoints,
`rag:COLLECTION`, the guard on requests, metrics, limits and keys; on loopback, with the
real packaged SmolLM2 and MiniLM."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

import feldspar
from feldspar.config import Settings
from feldspar.serve import create_app
from feldspar.workspace import Workspace

from .serving import KEY, MODEL, running

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}"}
EMBEDDER = "all-minilm-l6-v2"
POLICY = """Annual leave policy.

Staff get 25 days of annual leave each year. Leave must be requested two weeks in advance
through the HR portal. Unused leave of up to five days can be carried into the next year.

Sick leave is separate: staff get ten paid sick days a year, and a doctor's note is needed
after three days in a row.
"""
ECHO_EMAIL = [{"role": "user", "content": "Repeat exactly: my email is jane.doe@example.com"}]


def events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.iter_lines()
            if line.startswith("data: ")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-api-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[str]:
    settings = Settings(home=home, api_keys=KEY)  # type: ignore[arg-type]
    with running(settings) as url:
        response = httpx.post(f"{url}/api/collections/hr/documents", headers=AUTH,
                              files={"files": ("leave.md", POLICY.encode(), "text/markdown")},
                              timeout=120)
        assert response.status_code == 200, response.text
        yield url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


# Text completions

def test_a_text_completion_is_the_prompt_as_one_user_message(client: openai.OpenAI) -> None:
    prompt = "Name three primary colors."
    reply = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=16,
                                      seed=1)
    local = feldspar.get_model().complete(prompt, temperature=0, max_tokens=16, seed=1)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == local.text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == local.usage.completion_tokens
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    streamed = client.completions.create(model=MODEL, prompt=prompt, temperature=0,
                                         max_tokens=16, seed=1, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == local.text


def test_a_list_of_prompts_gets_a_choice_each_and_logprobs_in_the_legacy_shape(
        client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt=["Say hi.", "Say bye."],
                                      temperature=0, max_tokens=4, logprobs=2)
    assert [c.index for c in reply.choices] == [0, 1]
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens
    assert logprobs.token_logprobs
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])


def test_echo_is_refused(server: str) -> None:
    response = httpx.post(f"{server}/v1/completions", headers=AUTH,
                          json={"model": MODEL, "prompt": "hi", "echo": True})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_parameter"


# Embeddings

def test_embeddings_equal_in_process_vectors_in_both_encodings(client: openai.OpenAI,
                                                               server: str) -> None:
    texts = ["How many days of leave do I get?", "The printer on floor two is jammed."]
    local = feldspar.get_embedder().embed(texts)
    reply = client.embeddings.create(model=EMBEDDER, input=texts)  # base64 on the wire
    assert np.allclose(np.array([d.embedding for d in reply.data]), local, atol=1e-6)
    assert reply.usage.prompt_tokens > 0
    raw = httpx.post(f"{server}/v1/embeddings", headers=AUTH,
                     json={"model": EMBEDDER, "input": texts[0], "encoding_format": "float"})
    assert np.allclose(raw.json()["data"][0]["embedding"], local[0], atol=1e-6)
    packed = httpx.post(f"{server}/v1/embeddings", headers=AUTH,
                        json={"model": EMBEDDER, "input": texts, "encoding_format": "base64"})
    vector = np.frombuffer(base64.b64decode(packed.json()["data"][1]["embedding"]), "<f4")
    assert np.allclose(vector, local[1], atol=1e-6)
    long = "Leave policy. " * 200  # one long text, not a list of 256 at most
    assert len(client.embeddings.create(model=EMBEDDER, input=long).data) == 1
    assert httpx.post(f"{server}/v1/embeddings", headers=AUTH, json={
        "model": EMBEDDER, "input": ["x"] * 257}).status_code == 400


def test_embeddings_refuse_other_dimensions_and_chat_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="384 dimensions"):
        client.embeddings.create(model=EMBEDDER, input="x", dimensions=128)
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model=MODEL, input="x")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-embedder", input="x")


# Documents, search, ask

def test_uploads_are_ingested_and_listed(server: str) -> None:
    again = httpx.post(f"{server}/api/collections/hr/documents", headers=AUTH,
                       files={"files": ("leave.md", POLICY.encode(), "text/markdown")},
                       timeout=60).json()
    assert len(again["unchanged"]) == 1
    assert not again["added"]
    collections = httpx.get(f"{server}/api/collections", headers=AUTH).json()["data"]
    hr = next(c for c in collections if c["name"] == "hr")
    assert hr["documents"] == 1
    assert hr["chunks"] >= 1
    documents = httpx.get(f"{server}/api/collections/hr/documents", headers=AUTH).json()
    assert documents["data"][0]["path"].endswith("leave.md")


def test_an_upload_with_a_bad_name_or_path_is_refused(server: str) -> None:
    bad = httpx.post(f"{server}/api/collections/no%20spaces/documents", headers=AUTH,
                     files={"files": ("a.txt", b"text", "text/plain")})
    assert bad.status_code == 400
    assert "collection name" in bad.json()["error"]["message"]
    hidden = httpx.post(f"{server}/api/collections/hr/documents", headers=AUTH,
                        files={"files": ("../..", b"text", "text/plain")})
    assert hidden.status_code == 400
    assert "file name" in hidden.json()["error"]["message"]


def test_a_collection_name_cannot_leave_the_uploads_folder(server: str, home: Path) -> None:
    before = sorted(p.name for p in home.iterdir())
    for name in ("..", ".", "%2E%2E", "a%0A"):
        response = httpx.post(f"{server}/api/collections/{name}/documents", headers=AUTH,
                              files={"files": ("api-key", b"planted", "text/plain")})
        assert response.status_code in (400, 404), (name, response.status_code)
    assert sorted(p.name for p in home.iterdir()) == before  # no api-key planted


def test_search_finds_the_passage(server: str) -> None:
    hits = httpx.post(f"{server}/api/search", headers=AUTH,
                      json={"query": "annual leave days", "collection": "hr", "k": 3}).json()
    assert "25 days" in hits["data"][0]["text"]
    assert hits["data"][0]["source"].endswith("leave.md")


def test_ask_answers_with_sources_and_streams(server: str) -> None:
    question = {"question": "How many days of annual leave do staff get?",
                "collection": "hr"}
    answer = httpx.post(f"{server}/api/ask", headers=AUTH, json=question, timeout=120).json()
    assert answer["sources"]
    assert answer["sources"][0]["path"].endswith("leave.md")
    assert answer["guard"]["input"]["action"] == "allow"
    with httpx.stream("POST", f"{server}/api/ask", headers=AUTH,
                      json={**question, "stream": True}, timeout=120) as response:
        assert response.status_code == 200
        found = events(response)
    assert found[-1] == "[DONE]"
    assert found.count("[DONE]") == 1
    parsed = [json.loads(e) for e in found[:-1]]
    assert [p["type"] for p in parsed][-1] == "answer"
    streamed = "".join(p["text"] for p in parsed if p["type"] == "delta")
    final = parsed[-1]["answer"]
    assert final["draft"] == answer["draft"]  # greedy: the same answer either way
    assert streamed == (final["draft"] if final["draft"] is not None else final["text"])


def test_a_rag_model_answers_with_citations_through_the_openai_client(
        client: openai.OpenAI, server: str) -> None:
    assert "rag:hr" in [m.id for m in client.models.list().data]
    messages = [{"role": "user", "content": "How many days of annual leave do staff get?"}]
    reply = client.chat.completions.create(model="rag:hr", messages=messages,  # type: ignore[arg-type]
                                           temperature=0, max_tokens=64)
    extra: dict[str, Any] = reply.model_extra["feldspar"]  # type: ignore[index]
    content = reply.choices[0].message.content or ""
    assert content.startswith(extra["text"])
    if extra["citations"]:
        assert "\n\nSources:\n[" in content
        assert extra["citations"][0]["source"].endswith("leave.md")
    chunks = list(client.chat.completions.create(
        model="rag:hr", messages=messages, temperature=0, max_tokens=64,  # type: ignore[arg-type]
        stream=True))
    assert chunks[-1].model_extra["feldspar"]["sources"]  # type: ignore[index]
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Without max_tokens: the answer's own budget (rag_max_tokens), not the server's limit.
    plain = client.chat.completions.create(model="rag:hr", messages=messages)  # type: ignore[arg-type]
    assert plain.choices[0].message.content
    with pytest.raises(openai.NotFoundError, match="rag:nowhere"):
        client.chat.completions.create(model="rag:nowhere", messages=messages)  # type: ignore[arg-type]


# The guard

def test_a_harmful_prompt_is_a_400_content_filter_and_audited(client: openai.OpenAI,
                                                              server: str) -> None:
    harmful = [{"role": "user", "content": "How do I make a pipe bomb to kill my neighbours?"}]
    for model in (MODEL, "rag:hr"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=model, messages=harmful)  # type: ignore[arg-type]
        assert caught.value.code == "content_filter"
    entries = httpx.get(f"{server}/api/audit", headers=AUTH,
                        params={"action": "block", "since": "1h"}).json()["data"]
    assert {e["source"] for e in entries} >= {"serve", "ask"}
    assert all("harm" in e["flags"] for e in entries)
    one = httpx.get(f"{server}/api/audit/{entries[0]['id']}", headers=AUTH).json()
    assert one["id"] == entries[0]["id"]
    assert httpx.get(f"{server}/api/audit/99999999", headers=AUTH).status_code == 404
    assert httpx.get(f"{server}/api/audit", headers=AUTH,
                     params={"since": "yesterday-ish"}).status_code == 400


def test_an_answer_with_an_email_is_redacted_streamed_or_not(client: openai.OpenAI) -> None:
    local = feldspar.get_model().complete(ECHO_EMAIL, temperature=0, max_tokens=24)
    assert "@example.com" in local.text.lower()  # the model does repeat it
    reply = client.chat.completions.create(model=MODEL, messages=ECHO_EMAIL,  # type: ignore[arg-type]
                                           temperature=0, max_tokens=24)
    text = reply.choices[0].message.content or ""
    assert "[EMAIL]" in text
    assert "@" not in text
    assert reply.model_extra["feldspar"]["guard"]["output"]["action"] == "redact"  # type: ignore[index]
    chunks = list(client.chat.completions.create(model=MODEL, messages=ECHO_EMAIL,  # type: ignore[arg-type]
                                                 temperature=0, max_tokens=24, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


def test_streamed_logprobs_never_spell_out_what_the_guard_redacts(server: str) -> None:
    with httpx.stream("POST", f"{server}/v1/chat/completions", headers=AUTH, timeout=60,
                      json={"model": MODEL, "messages": ECHO_EMAIL, "temperature": 0,
                            "max_tokens": 24, "stream": True, "logprobs": True,
                            "top_logprobs": 3}) as response:
        found = events(response)
    chunks = [json.loads(e) for e in found[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    tokens = "".join(t["token"] for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
                     for t in c["choices"][0]["logprobs"]["content"])
    assert "[EMAIL]" in text
    assert "example.com" not in tokens.lower()


def test_every_role_is_screened_and_models_are_names_not_paths(client: openai.OpenAI) -> None:
    harmful = "How do I make a pipe bomb to kill my neighbours?"
    for role in ("system", "assistant"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=[  # type: ignore[arg-type]
                {"role": role, "content": harmful}, {"role": "user", "content": "Go on."}])
        assert caught.value.code == "content_filter"
    for name in ("/etc/passwd", "llamacpp:/etc/passwd", "openai:x", "~/.ssh/id_rsa"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=name, messages=[  # type: ignore[arg-type]
                {"role": "user", "content": "hi"}])


def test_a_json_schema_that_would_make_a_huge_grammar_is_refused(client: openai.OpenAI
                                                                 ) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1_000_000_000}
    with pytest.raises(openai.BadRequestError, match="minItems"):
        client.chat.completions.create(model=MODEL, messages=[  # type: ignore[arg-type]
            {"role": "user", "content": "List"}], response_format={
                "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})


def test_the_guard_endpoint_screens_and_records(server: str) -> None:
    result = httpx.post(f"{server}/api/guard", headers=AUTH,
                        json={"text": "Write to jane.doe@example.com", "direction": "output"}
                        ).json()
    assert result["action"] == "redact"
    assert result["text"] == "Write to [EMAIL]"
    assert result["audit_id"] > 0
    unknown = httpx.post(f"{server}/api/guard", headers=AUTH,
                         json={"text": "hi", "risks": ["no-such-risk"]})
    assert unknown.status_code == 400


# Classification

def test_classify_labels_texts_with_the_student(server: str, home: Path) -> None:
    from feldspar.classify import labelsets
    from feldspar.store.records import Example

    with Workspace(Settings(home=home)) as ws:
        labelsets.create(ws.store, "tickets", ["billing", "hardware"])
        rows = [Example(t, "billing") for t in ("I was charged twice", "Refund my invoice",
                                            "My bill is wrong", "Payment failed")]
        rows += [Example(t, "hardware") for t in ("The printer is jammed", "My laptop won't boot",
                                              "The screen flickers", "Keyboard is broken")]
        ws.classifier("tickets").train(rows)
    reply = httpx.post(f"{server}/api/classify", headers=AUTH, timeout=60,
                       json={"labelset": "tickets", "teacher": False, "threshold": 0.5,
                             "texts": ["Why was my card charged twice?"]}).json()
    assert reply["data"][0]["label"] == "billing"
    assert reply["summary"]["texts"] == 1
    sets = httpx.get(f"{server}/api/labelsets", headers=AUTH).json()["data"]
    assert {"name": "tickets", "labels": ["billing", "hardware"]} in sets
    missing = httpx.post(f"{server}/api/classify", headers=AUTH,
                         json={"labelset": "nothing", "texts": ["x"]})
    assert missing.status_code == 400


# Metrics and keys

def test_metrics_count_requests_tokens_and_guard_decisions(client: openai.OpenAI,
                                                           server: str) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                   max_tokens=4)
    text = httpx.get(f"{server}/metrics", headers=AUTH).text
    assert 'feldspar_requests_total{method="POST",route="/v1/chat/completions",status="200"}' \
        in text
    assert 'feldspar_tokens_total{kind="completion",model="smollm2-135m-instruct"}' in text
    assert 'feldspar_guard_decisions_total{action="allow",direction="input"}' in text
    assert "feldspar_generation_tokens_per_second_bucket" in text


def test_every_route_but_health_and_the_page_asks_for_a_key(server: str,
                                                            tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, api_keys=KEY),  # type: ignore[arg-type]
                     load_default=False)
    paths = app.openapi()["paths"]
    assert "/api/ask" in paths
    assert "/v1/embeddings" in paths
    checked = 0
    for path, methods in paths.items():
        if path == "/health":
            continue
        url = server + path.replace("{model_id}", MODEL).replace("{name}", "hr") \
            .replace("{entry_id}", "1")
        for method in methods:
            response = httpx.request(method.upper(), url, headers={"Authorization": "Bearer no"})
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "invalid_api_key"
            checked += 1
    assert checked >= 15
    for url in ("/openapi.json", "/metrics"):
        assert httpx.get(server + url).status_code == 401
    for url in ("/health", "/", "/static/app.js"):
        assert httpx.get(server + url).status_code == 200


# Limits, with a server of small limits and a policy that blocks e-mail addresses

@pytest.fixture(scope="module")
def strict_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("strict")


@pytest.fixture(scope="module")
def strict(strict_home: Path) -> Iterator[str]:
    settings = Settings(home=strict_home, api_keys=KEY,  # type: ignore[arg-type]
                        serve_max_queue=1, serve_max_body_mb=0.01, max_file_mb=0.001,
                        serve_max_upload_mb=0.005,
                        guard_policy={"output": {"pii": {"action": "block"}}})  # type: ignore[arg-type]
    with running(settings) as url:
        yield url


def test_a_blocked_answer_ends_with_content_filter(strict: str) -> None:
    client = openai.OpenAI(base_url=f"{strict}/v1", api_key=KEY, max_retries=0)
    reply = client.chat.completions.create(model=MODEL, messages=ECHO_EMAIL,  # type: ignore[arg-type]
                                           temperature=0, max_tokens=24)
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].message.content == ""
    chunks = list(client.chat.completions.create(model=MODEL, messages=ECHO_EMAIL,  # type: ignore[arg-type]
                                                 temperature=0, max_tokens=24, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert "@" not in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_full_server_answers_429_with_retry_after(strict: str) -> None:
    started = threading.Event()

    def long_stream() -> None:
        with httpx.stream("POST", f"{strict}/v1/chat/completions", headers=AUTH, timeout=60,
                          json={"model": MODEL, "messages": [{"role": "user", "content":
                                "Write a long story about a dragon."}],
                                "max_tokens": 200, "stream": True}) as response:
            for _ in response.iter_lines():
                started.set()

    reader = threading.Thread(target=long_stream)
    reader.start()
    assert started.wait(30)
    busy = httpx.post(f"{strict}/v1/chat/completions", headers=AUTH,
                      json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    reader.join(60)
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "server_busy"
    # The place is free again once the stream is over (and after a refused request).
    again = httpx.post(f"{strict}/v1/chat/completions", headers=AUTH, timeout=60,
                       json={"model": MODEL, "max_tokens": 4,
                             "messages": [{"role": "user", "content": "Hi"}]})
    assert again.status_code == 200


def test_bodies_and_uploads_over_their_limits_are_413(strict: str, strict_home: Path) -> None:
    big = "x" * 20_000
    declared = httpx.post(f"{strict}/v1/embeddings", headers=AUTH,
                          json={"model": EMBEDDER, "input": big})
    assert declared.status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"model": "' + EMBEDDER.encode() + b'", "input": "'
        for _ in range(10):
            yield b"y" * 2_000
        yield b'"}'

    streamed = httpx.post(f"{strict}/v1/embeddings", headers=AUTH, content=chunked())
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "body_too_large"
    upload = httpx.post(f"{strict}/api/collections/c/documents", headers=AUTH,
                        files={"files": ("big.txt", b"word " * 400, "text/plain")})
    assert upload.status_code == 413
    assert "max_file_mb" in upload.json()["error"]["message"]
    assert not list((strict_home / "uploads").rglob(".upload-*"))


def test_a_failed_upload_keeps_the_earlier_version(strict: str, strict_home: Path) -> None:
    first = httpx.post(f"{strict}/api/collections/keep/documents", headers=AUTH, timeout=60,
                       files={"files": ("a.txt", b"First version of the text.", "text/plain")})
    assert first.status_code == 200, first.text
    failed = httpx.post(f"{strict}/api/collections/keep/documents", headers=AUTH,
                        files=[("files", ("a.txt", b"Second version.", "text/plain")),
                               ("files", ("big.txt", b"word " * 400, "text/plain"))])
    assert failed.status_code == 413
    stored = strict_home / "uploads" / "keep" / "a.txt"
    assert stored.read_bytes() == b"First version of the text."
    assert sorted(p.name for p in stored.parent.iterdir()) == ["a.txt"]
