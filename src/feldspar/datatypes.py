"""Plain values that Feldspar's parts pass to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict


class Message(TypedDict):
    """One chat message in OpenAI's shape ("context" is Granite Guardian's role for the
    passages a RAG answer is judged against)."""

    role: Literal["system", "user", "assistant", "context"]
    content: str


class ChatDocument(TypedDict):
    """A passage for a chat template that takes `documents` (Hugging Face's convention for
    RAG templates, which Granite's follows)."""

    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    """Tokens in the rendered prompt."""
    completion_tokens: int = 0
    """Tokens the model generated."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of one generation, measured from the request."""

    first_token_s: float | None
    """From the request to the first generated token (None when nothing was generated)."""
    total_s: float
    """From the request to the last token."""


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one generated token, with the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    """The most likely tokens at this position and their log-probabilities, best first."""


@dataclass(frozen=True)
class Delta:
    """A piece of a generation as a backend produces it."""

    text: str = ""
    tokens: int = 0
    """How many generated tokens this piece accounts for."""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: str | None = None
    """Set on the last piece: "stop" (end of turn or stop string) or "length"."""
    prompt_tokens: int | None = None
    """Set once by the backend when it knows the prompt's size."""
    completion_tokens: int | None = None
    """Set by a backend whose server reports the true count (it replaces the running sum)."""


@dataclass(frozen=True)
class Completion:
    """A finished generation."""

    text: str
    model: str
    license: str
    finish_reason: str
    usage: Usage
    timings: Timings
    logprobs: tuple[TokenLogprob, ...] = field(default=())
