"""What every backend is: a chat model implements `generate`, an embedder `embed_batch`.

The base classes build the public surface on those: `stream()` and `complete()` share one
path, so streamed and non-streamed text are the same by construction.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feldspar.datatypes import (
    ChatDocument,
    Completion,
    Delta,
    Message,
    Timings,
    TokenLogprob,
    Usage,
)
from feldspar.errors import UnsupportedOption, UserError

if TYPE_CHECKING:
    import numpy as np

    from feldspar.config import Settings
    from feldspar.models.spec import ModelSpec


@dataclass(frozen=True)
class GenerationOptions:
    """How to generate. Backends raise `UnsupportedOption` for what they cannot honour."""

    max_tokens: int | None = 512
    """Most tokens to generate; None means until the context is full."""
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    """Constrain the output to JSON matching this schema."""
    choices: tuple[str, ...] | None = None
    """Constrain the output to exactly one of these strings."""
    logprobs: int | None = None
    """Return each token's log-probability and this many top alternatives (0: none)."""
    documents: tuple[ChatDocument, ...] = ()
    """Passages for the chat template's own `documents` slot (a native RAG template, as
    Granite's); only for a model whose `takes_documents` is true."""
    template_vars: Mapping[str, Any] | None = None
    """More variables for the model's chat template, such as Granite Guardian's
    `guardian_config` (an OpenAI-compatible server gets them as `chat_template_kwargs`)."""

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UserError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise UserError(f"temperature must be 0 or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise UserError("stop strings must not be empty")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise UserError(f"logprobs must be between 0 and 20, got {self.logprobs}")
        if self.choices is not None:
            if not self.choices or any(not c for c in self.choices):
                raise UserError("choices must be a non-empty list of non-empty strings")
            if self.json_schema is not None:
                raise UserError("Give either choices or json_schema, not both")


def as_messages(prompt: str | Sequence[Message], system: str | None = None) -> list[Message]:
    """A prompt string or a message list, with an optional system message in front."""
    messages: list[Message] = (
        [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    )
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant", "context") or not isinstance(
            message.get("content"), str
        ):
            raise UserError(f"Invalid chat message {message!r}: need a role and text content")
        try:
            message["content"].encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UserError("A message is not valid UTF-8 text (undecodable bytes at "
                            f"position {exc.start}); check the input's encoding") from exc
    return messages


class Stream(Iterator[str]):
    """The text of a generation as it arrives; `result()` gives the finished `Completion`.

    Example:
        >>> from feldspar.models.testing import EchoChat
        >>> stream = EchoChat().stream("hi there")
        >>> "".join(stream)
        'hi there'
        >>> stream.result().usage.completion_tokens
        2
    """

    def __init__(self, model: ChatModel, deltas: Iterator[Delta], started: float) -> None:
        self._model = model
        self._deltas = deltas
        self._started = started
        self._parts: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._first: float | None = None
        self._end: float | None = None
        self._finish = "stop"
        # Start the backend now, so that a bad request (a prompt longer than the context,
        # an unreachable server) raises here rather than at the first iteration.
        self._pending: list[Delta] = []
        try:
            self._pending.append(next(deltas))
        except StopIteration:
            self._end = time.perf_counter()

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        while True:
            if self._end is not None and not self._pending:
                raise StopIteration
            if self._pending:
                delta = self._pending.pop()
            else:
                try:
                    delta = next(self._deltas)
                except StopIteration:
                    self._end = time.perf_counter()
                    raise
            if delta.prompt_tokens is not None:
                self._prompt_tokens = delta.prompt_tokens
            if delta.tokens and self._first is None:
                self._first = time.perf_counter()
            self._completion_tokens += delta.tokens
            if delta.completion_tokens is not None:
                self._completion_tokens = delta.completion_tokens
            self._logprobs.extend(delta.logprobs)
            if delta.finish_reason is not None:
                self._finish = delta.finish_reason
            if delta.text:
                self._parts.append(delta.text)
                return delta.text

    @property
    def logprobs(self) -> tuple[TokenLogprob, ...]:
        """The log-probabilities of the tokens generated so far (when asked for)."""
        return tuple(self._logprobs)

    def close(self) -> None:
        """Stop generating early (the backend frees the model for the next request)."""
        close = getattr(self._deltas, "close", None)
        if close is not None:
            close()
        if self._end is None:
            self._end = time.perf_counter()
            self._finish = "cancelled"
        self._pending.clear()

    def result(self) -> Completion:
        """Finish the generation (if not finished) and return it whole."""
        for _ in self:
            pass
        end = self._end if self._end is not None else time.perf_counter()
        return Completion(
            text="".join(self._parts),
            model=self._model.spec.name,
            license=self._model.spec.license,
            finish_reason=self._finish,
            usage=Usage(self._prompt_tokens, self._completion_tokens),
            timings=Timings(
                first_token_s=None if self._first is None else self._first - self._started,
                total_s=end - self._started,
            ),
            logprobs=tuple(self._logprobs),
        )


class Model(ABC):
    """What every backend shares: a spec, settings, and weights loaded once on demand.

    `__init__` is cheap; `load()` does the work (the first time only).
    """

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded = False

    def load(self) -> None:
        """Load the weights once; later calls return at once."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    @abstractmethod
    def _load(self) -> None: ...

    def close(self, wait: bool = True) -> None:  # noqa: B027 - most backends hold nothing
        """Free native resources now rather than at interpreter shutdown; with wait=False,
        leave a model that is busy generating alone."""


class ChatModel(Model):
    """A chat model. Subclasses implement `_load()` and `generate()`."""

    @abstractmethod
    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        """Yield the generation piece by piece; the last piece carries `finish_reason`."""

    def stream(
        self,
        prompt: str | Sequence[Message],
        *,
        system: str | None = None,
        options: GenerationOptions | None = None,
        **option_values: Any,
    ) -> Stream:
        """Start generating; iterate the result for text, then call `.result()`.

        Options are a `GenerationOptions` or its fields as keywords
        (`max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `json_schema`, `choices`,
        `logprobs`).
        """
        started = time.perf_counter()
        if options is None:
            if isinstance(option_values.get("stop"), str):
                option_values["stop"] = (option_values["stop"],)
            if isinstance(option_values.get("choices"), str):
                raise UserError("choices must be a list of strings, not one string")
            for key in ("stop", "choices"):
                if option_values.get(key) is not None:
                    option_values[key] = tuple(option_values[key])
            options = GenerationOptions(**option_values)
        elif option_values:
            raise UserError("Pass either options= or option keywords, not both")
        messages = as_messages(prompt, system)
        self.load()
        if options.documents and not self.takes_documents:
            raise UnsupportedOption(f"The chat template of '{self.spec.name}' takes no "
                                    "documents; put the passages in the prompt instead")
        return Stream(self, self.generate(messages, options), started)

    @property
    def takes_documents(self) -> bool:
        """Whether the model's chat template has its own slot for RAG documents (known once
        the model is loaded)."""
        return False

    @property
    def context_window(self) -> int:
        """Tokens the model can attend to: prompt and reply together."""
        return min(self.settings.context_length, self.spec.context_length)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model reads it; backends without a tokenizer at hand
        estimate on the safe side (one token per three bytes)."""
        return len(text.encode("utf-8")) // 3 + 1

    def complete(
        self,
        prompt: str | Sequence[Message],
        *,
        system: str | None = None,
        options: GenerationOptions | None = None,
        **option_values: Any,
    ) -> Completion:
        """Generate the whole reply at once (the same path as `stream`)."""
        return self.stream(prompt, system=system, options=options, **option_values).result()


class Embedder(Model):
    """An embedding model. Subclasses implement `_load()` and `embed_batch()`."""

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; return a (len(texts), dim) array (normalization happens above)."""

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        if self.spec.embedding_dim is not None:
            return self.spec.embedding_dim
        return int(self.embed(["dimension probe"]).shape[1])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) spans of the tokens this embedder sees in `text`.

        Special tokens are excluded. This default approximates tokens by words and
        punctuation; backends with a tokenizer give its tokens.

        Example:
            >>> from feldspar.models.testing import HashEmbedder
            >>> HashEmbedder().token_spans("Hi, you.")
            [(0, 2), (2, 3), (4, 7), (7, 8)]
        """
        import re

        return [match.span() for match in re.finditer(r"\w+|[^\w\s]", text)]

    def input_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for `texts` (for usage counts); backends with a tokenizer
        count its ids, special tokens and truncation included."""
        return sum(len(self.token_spans(text)) for text in texts)

    @property
    def max_tokens(self) -> int:
        """Most tokens of text one input can hold before truncation, special tokens excluded."""
        return self.spec.context_length or 512

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, computed in batches.

        Example:
            >>> from feldspar.models.testing import HashEmbedder
            >>> HashEmbedder().embed(["a", "b"]).shape
            (2, 16)
        """
        import numpy as np

        if isinstance(texts, str):
            raise UserError("embed() takes a list of texts, not one string")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.load()
        rows = [
            np.asarray(self.embed_batch(list(texts[i : i + batch_size])), dtype=np.float32)
            for i in range(0, len(texts), batch_size)
        ]
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.concatenate(rows)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
