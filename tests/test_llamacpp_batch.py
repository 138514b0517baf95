"""Continuous batching of the packaged SmolLM2 (settings.llama_parallel > 1): several
sequences decode together and each gets exactly what it gets alone."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import jsonschema
import pytest

import feldspar
from feldspar.config import load_settings
from feldspar.datatypes import Completion
from feldspar.errors import ContextOverflow, ModelError
from feldspar.models import ChatModel
from feldspar.models.backends.llamacpp_batch import common_prefix

pytestmark = pytest.mark.integration

PROMPTS = ("Name three primary colors.", "Write a long story about a dragon and a knight.",
           "What is 2+2?")
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}


def parallel_model(n: int) -> ChatModel:
    return feldspar.get_model(settings=load_settings(llama_parallel=n))


@pytest.fixture
def single() -> ChatModel:
    return parallel_model(1)


@pytest.fixture
def batched() -> ChatModel:
    model = parallel_model(4)
    assert model._engine is not None  # type: ignore[attr-defined]
    return model


def engine(model: ChatModel) -> Any:
    return model._engine  # type: ignore[attr-defined]


def streamed(model: ChatModel, prompt: str, **options: Any) -> Completion:
    stream = model.stream(prompt, **options)
    text = "".join(stream)
    result = stream.result()
    assert text == result.text
    return result


def test_the_default_runs_one_generation_at_a_time(single: ChatModel) -> None:
    assert single._engine is None  # type: ignore[attr-defined]
    assert parallel_model(4) is not single


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_text_equals_the_single_path(single: ChatModel, batched: ChatModel,
                                            prompt: str) -> None:
    alone = single.complete(prompt, temperature=0, max_tokens=40)
    together = batched.complete(prompt, temperature=0, max_tokens=40)
    assert together.text == alone.text
    assert together.usage == alone.usage
    assert together.finish_reason == alone.finish_reason


def test_concurrent_streams_get_what_they_get_alone(single: ChatModel,
                                                    batched: ChatModel) -> None:
    prompts = (*PROMPTS, "Write a long story about a sailor lost at sea.")
    alone = {p: single.complete(p, temperature=0, max_tokens=48) for p in prompts}
    assert {r.finish_reason for r in alone.values()} == {"stop", "length"}
    results: dict[str, Completion] = {}

    def ask(prompt: str, delay: float) -> None:
        time.sleep(delay)  # staggered: prompts join sequences that are generating
        results[prompt] = streamed(batched, prompt, temperature=0, max_tokens=48)

    threads = [threading.Thread(target=ask, args=(p, 0.3 * i)) for i, p in enumerate(prompts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    for prompt in prompts:
        got, expected = results[prompt], alone[prompt]
        assert got.text == expected.text
        assert got.usage == expected.usage
        assert got.finish_reason == expected.finish_reason
        if got.finish_reason == "length":
            assert got.usage.completion_tokens == 48


def test_a_prompt_longer_than_a_batch_joins_running_streams(single: ChatModel,
                                                            batched: ChatModel) -> None:
    facts = " ".join(f"Box {i} holds {i * 7} coins." for i in range(60))
    prompt = f"{facts}\nWhich box holds 70 coins?"
    assert batched.count_tokens(prompt) > engine(batched).n_batch
    alone = single.complete(prompt, temperature=0, max_tokens=24)
    running = batched.stream("Write a long story about a dragon and a knight.",
                             temperature=0, max_tokens=400)
    next(running)
    try:
        joined = batched.complete(prompt, temperature=0, max_tokens=24)
    finally:
        running.close()
    assert joined.text == alone.text
    assert joined.usage == alone.usage


def test_same_seed_sampling_equals_the_single_path(single: ChatModel,
                                                   batched: ChatModel) -> None:
    for seed in range(2):
        options: dict[str, Any] = {"seed": seed, "temperature": 1.0, "max_tokens": 24}
        assert batched.complete("Write a word.", **options).text == single.complete(
            "Write a word.", **options).text


def test_unseeded_sampling_varies(batched: ChatModel) -> None:
    replies = {batched.complete("Write a sentence.", temperature=1.5, max_tokens=16).text
               for _ in range(3)}
    assert len(replies) > 1


def test_stop_string_is_never_shown(single: ChatModel, batched: ChatModel) -> None:
    prompt = "Name three primary colors."
    free = batched.complete(prompt, temperature=0, max_tokens=64).text
    stop = free[free.index("lue") - 3: free.index("lue") + 3] if "lue" in free else free[5:11]
    reply = streamed(batched, prompt, temperature=0, max_tokens=64, stop=[stop, "zzz-never"])
    assert reply.text == free[: free.index(stop)]
    assert reply.finish_reason == "stop"
    assert reply.text == single.complete(prompt, temperature=0, max_tokens=64,
                                         stop=[stop, "zzz-never"]).text


def test_grammars_work_through_the_engine(single: ChatModel, batched: ChatModel) -> None:
    choices = ("billing", "technical support", "sales")
    question = "Ticket: 'My invoice is wrong.' Which team?"
    for seed in range(3):
        reply = batched.complete(question, choices=choices, seed=seed, temperature=1.5)
        assert reply.text in choices
        assert reply.text == single.complete(question, choices=choices, seed=seed,
                                             temperature=1.5).text
    person = batched.complete("Describe a person as JSON.", json_schema=PERSON,
                              temperature=0, max_tokens=120)
    jsonschema.validate(json.loads(person.text), PERSON)
    assert person.text == single.complete("Describe a person as JSON.", json_schema=PERSON,
                                          temperature=0, max_tokens=120).text


def test_logprobs_equal_the_single_path(single: ChatModel, batched: ChatModel) -> None:
    ours = batched.complete("The capital of France is", temperature=0, max_tokens=6,
                            logprobs=3)
    theirs = single.complete("The capital of France is", temperature=0, max_tokens=6,
                             logprobs=3)
    assert len(ours.logprobs) == ours.usage.completion_tokens == len(theirs.logprobs)
    for a, b in zip(ours.logprobs, theirs.logprobs, strict=True):
        assert a.token == b.token
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert [t for t, _ in a.top] == [t for t, _ in b.top]
        assert a.top[0][0] == a.token
    assert "".join(entry.token for entry in ours.logprobs) == ours.text
    constrained = batched.complete("Is the sky blue? Answer Yes or No.", choices=("Yes", "No"),
                                   temperature=0, logprobs=5)
    reference = single.complete("Is the sky blue? Answer Yes or No.", choices=("Yes", "No"),
                                temperature=0, logprobs=5)
    assert constrained.text == reference.text
    first, expected = constrained.logprobs[0], reference.logprobs[0]
    assert [t for t, _ in first.top] == [t for t, _ in expected.top]
    assert [lp for _, lp in first.top] == pytest.approx([lp for _, lp in expected.top],
                                                         abs=1e-4)


def test_a_shared_prefix_is_kept_in_its_sequence(single: ChatModel,
                                                 batched: ChatModel) -> None:
    system = "You are a careful assistant. " * 20
    first = batched.complete("Say hi.", system=system, temperature=0, max_tokens=8)
    kept: list[int] = []
    eng = engine(batched)
    assign = eng._assign

    def spy(slot: Any, job: Any) -> None:
        kept.append(common_prefix(slot.cached, job.tokens))
        assign(slot, job)

    eng._assign = spy
    try:
        second = batched.complete("Say bye.", system=system, temperature=0, max_tokens=8)
    finally:
        del eng._assign
    assert kept
    assert kept[0] > 100  # the system prompt's tokens were not decoded again
    assert first.text == single.complete("Say hi.", system=system, temperature=0,
                                         max_tokens=8).text
    assert second.text == single.complete("Say bye.", system=system, temperature=0,
                                          max_tokens=8).text


def test_closing_a_stream_frees_its_sequence() -> None:
    model = parallel_model(2)
    long = {"temperature": 0, "max_tokens": 3000}
    first = model.stream("Count from 1 to 2000, one number per line.", **long)
    second = model.stream("Count from 1 to 2000, one number per line.", **long)
    next(first)
    next(second)
    first.close()
    assert first.result().finish_reason == "cancelled"
    started = time.perf_counter()
    third = model.complete("Say hi.", temperature=0, max_tokens=8)
    assert third.usage.completion_tokens > 0
    assert time.perf_counter() - started < 30
    assert engine(model)._active == 1  # the second stream is still generating
    second.close()
    deadline = time.monotonic() + 10
    while engine(model)._active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine(model)._active == 0


def test_a_second_stream_in_the_same_thread_is_fine(batched: ChatModel) -> None:
    first = batched.stream("Count to ten.", max_tokens=20, seed=1)
    next(first)
    second = batched.complete("Hello", max_tokens=3)
    assert second.usage.completion_tokens == 3
    assert first.result().usage.completion_tokens <= 20


def test_prompt_longer_than_context_is_refused(batched: ChatModel) -> None:
    with pytest.raises(ContextOverflow, match=r"The prompt is \d+ tokens but .* context of 4096"):
        batched.stream("word " * 6000)


def test_an_error_in_the_engine_reaches_the_request(batched: ChatModel) -> None:
    eng = engine(batched)
    detokenize = eng._detokenize

    def broken(token: int) -> bytes:
        raise RuntimeError("boom")

    eng._detokenize = broken
    try:
        with pytest.raises(ModelError, match="boom"):
            batched.complete("Say hi.", max_tokens=5)
    finally:
        eng._detokenize = detokenize
    assert eng.running
    assert batched.complete("Say hi.", max_tokens=3).usage.completion_tokens == 3


def test_close_while_idle_frees_and_a_later_request_reloads(batched: ChatModel) -> None:
    before = batched.complete("Hi", temperature=0, max_tokens=4)
    old = engine(batched)
    batched.close()
    assert engine(batched) is None
    assert not old.running
    again = batched.complete("Hi", temperature=0, max_tokens=4)
    assert again.text == before.text
    assert engine(batched) is not old
    assert engine(batched).running


def test_close_waits_for_running_requests(batched: ChatModel) -> None:
    stream = batched.stream("Count to ten.", temperature=0, max_tokens=12)
    next(stream)
    closer = threading.Thread(target=batched.close)
    closer.start()
    result = stream.result()  # the engine finishes it before it stops
    closer.join(timeout=60)
    assert result.usage.completion_tokens > 0
    assert result.finish_reason in ("stop", "length")
    assert batched.complete("Hi", max_tokens=2).usage.completion_tokens == 2
