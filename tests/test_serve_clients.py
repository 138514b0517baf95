"""`feldspar serve` with the clients people actually use: LangChain's ChatOpenAI and
LlamaIndex's OpenAILike, against a real server on loopback and the packaged SmolLM2.

Every reply is compared with what OpenAI's own client gets for the same request under
greedy decoding (text and token counts), so a client that drops or mangles a field fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessageChunk
from langchain_openai import ChatOpenAI
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

from feldspar.config import Settings

from .serving import KEY, MODEL, running

pytestmark = pytest.mark.integration

QUESTION = "Name three primary colors."
MAX_TOKENS = 24
SEED = 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serve-clients-home")
    with running(Settings(home=home, api_keys=KEY)) as url:  # type: ignore[arg-type]
        yield url


@dataclass(frozen=True)
class Reference:
    """OpenAI's own client's reply to QUESTION, greedy, MAX_TOKENS, SEED."""

    text: str
    prompt_tokens: int
    completion_tokens: int


@pytest.fixture(scope="module")
def reference(server: str) -> Reference:
    with openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTION}], temperature=0,
            max_tokens=MAX_TOKENS, seed=SEED)
    text = reply.choices[0].message.content
    assert text
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= MAX_TOKENS
    return Reference(text, reply.usage.prompt_tokens, reply.usage.completion_tokens)


# --- LangChain ----------------------------------------------------------------------------


def langchain(server: str, *, model: str = MODEL, key: str = KEY,
              stream_usage: bool | None = None) -> ChatOpenAI:
    return ChatOpenAI(base_url=f"{server}/v1", api_key=key, model=model, temperature=0,
                      max_tokens=MAX_TOKENS, seed=SEED, max_retries=0,
                      stream_usage=stream_usage)


def usage_of(message: AIMessage | BaseMessageChunk) -> tuple[int, int, int]:
    assert isinstance(message, AIMessage)  # AIMessageChunk is one too
    usage = message.usage_metadata
    assert usage is not None, "no usage_metadata"
    return usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]


def joined(chunks: Sequence[BaseMessageChunk]) -> AIMessageChunk:
    assert chunks
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    return total


def test_langchain_invokes_and_streams_the_same_text_and_usage(
        server: str, reference: Reference) -> None:
    expected = (reference.prompt_tokens, reference.completion_tokens,
                reference.prompt_tokens + reference.completion_tokens)

    reply = langchain(server).invoke(QUESTION)
    assert isinstance(reply, AIMessage)
    assert reply.content == reference.text
    assert usage_of(reply) == expected
    assert reply.response_metadata["model_name"] == MODEL
    assert reply.response_metadata["finish_reason"] in ("stop", "length")

    chunks = list(langchain(server, stream_usage=True).stream(QUESTION))
    whole = joined(chunks)
    assert "".join(str(c.content) for c in chunks) == reference.text
    assert whole.content == reference.text
    assert usage_of(whole) == expected
    assert whole.response_metadata["finish_reason"] in ("stop", "length")


def test_langchain_async_invokes_and_streams_the_same_text(
        server: str, reference: Reference) -> None:
    async def run() -> tuple[AIMessage, list[AIMessageChunk]]:
        reply = await langchain(server).ainvoke(QUESTION)
        chunks = [c async for c in langchain(server, stream_usage=True).astream(QUESTION)]
        return reply, chunks

    reply, chunks = asyncio.run(run())
    assert reply.content == reference.text
    assert usage_of(reply)[:2] == (reference.prompt_tokens, reference.completion_tokens)
    whole = joined(chunks)
    assert whole.content == reference.text
    assert usage_of(whole)[:2] == (reference.prompt_tokens, reference.completion_tokens)


# --- LlamaIndex ---------------------------------------------------------------------------


def llamaindex(server: str, *, model: str = MODEL, key: str = KEY,
               stream_usage: bool = False) -> OpenAILike:
    extra: dict[str, object] = {"seed": SEED}
    if stream_usage:
        extra["stream_options"] = {"include_usage": True}  # dropped when not streaming
    return OpenAILike(model=model, api_base=f"{server}/v1", api_key=key, is_chat_model=True,
                      context_window=2048, temperature=0, max_tokens=MAX_TOKENS,
                      additional_kwargs=extra, max_retries=0)


def counts(response: ChatResponse) -> tuple[int, int, int]:
    extra = response.additional_kwargs
    return extra["prompt_tokens"], extra["completion_tokens"], extra["total_tokens"]


QUESTION_MESSAGES = [ChatMessage(role=MessageRole.USER, content=QUESTION)]


def test_llamaindex_chats_and_streams_the_same_text_and_usage(
        server: str, reference: Reference) -> None:
    expected = (reference.prompt_tokens, reference.completion_tokens,
                reference.prompt_tokens + reference.completion_tokens)

    reply = llamaindex(server).chat(QUESTION_MESSAGES)
    assert reply.message.role == MessageRole.ASSISTANT
    assert reply.message.content == reference.text
    assert isinstance(reply.raw, openai.types.chat.ChatCompletion)
    assert reply.raw.model == MODEL
    assert reply.raw.usage is not None
    assert (reply.raw.usage.prompt_tokens, reply.raw.usage.completion_tokens,
            reply.raw.usage.total_tokens) == expected
    assert counts(reply) == expected

    pieces = list(llamaindex(server, stream_usage=True).stream_chat(QUESTION_MESSAGES))
    assert "".join(p.delta or "" for p in pieces) == reference.text
    assert pieces[-1].message.content == reference.text
    last = pieces[-1].raw
    assert isinstance(last, openai.types.chat.ChatCompletionChunk)
    assert last.choices == []  # the usage chunk
    assert counts(pieces[-1]) == expected


def test_llamaindex_completes_through_chat_completions(
        server: str, reference: Reference) -> None:
    done = llamaindex(server).complete(QUESTION)
    assert done.text == reference.text
    assert isinstance(done.raw, openai.types.chat.ChatCompletion)  # not a text completion
    assert done.raw.usage is not None
    assert done.raw.usage.completion_tokens == reference.completion_tokens
    assert done.raw.usage.total_tokens == (done.raw.usage.prompt_tokens
                                           + done.raw.usage.completion_tokens)


# --- errors, through both -----------------------------------------------------------------


def ask_langchain(server: str, model: str, key: str) -> None:
    langchain(server, model=model, key=key).invoke(QUESTION)


def ask_llamaindex(server: str, model: str, key: str) -> None:
    llamaindex(server, model=model, key=key).chat(QUESTION_MESSAGES)


CLIENTS = pytest.mark.parametrize("ask", [ask_langchain, ask_llamaindex],
                                  ids=["langchain", "llamaindex"])


@CLIENTS
def test_an_unknown_model_is_the_clients_not_found_error(
        server: str, ask: Callable[[str, str, str], None]) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        ask(server, "no-such-model", KEY)
    assert raised.value.status_code == 404
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"


@CLIENTS
def test_a_wrong_key_is_the_clients_authentication_error(
        server: str, ask: Callable[[str, str, str], None]) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        ask(server, MODEL, "wrong-key")
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
