"""Stand-ins for real models, for testing what surrounds a model (never the model path)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from feldspar.config import Settings
from feldspar.datatypes import Delta, Message
from feldspar.models.base import ChatModel, Embedder, GenerationOptions
from feldspar.models.spec import ModelSpec, Provenance, Source

_FAKE = Provenance(trained_by="nobody", data="none", documentation="")


def _spec(name: str, role: str) -> ModelSpec:
    return ModelSpec(name=name, family="fake", format="remote", source=Source(kind="remote"),
                     license="Apache-2.0", provenance=_FAKE, roles=(role,),  # type: ignore[arg-type]
                     context_length=1024, embedding_dim=16 if role == "embed" else None)


class EchoChat(ChatModel):
    """Replies with the last user message, one word per token."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(_spec("echo", "chat"), settings or Settings())

    def _load(self) -> None:
        pass

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        words = messages[-1]["content"].split(" ")
        yield Delta(prompt_tokens=sum(len(m["content"].split()) for m in messages))
        limit = options.max_tokens or len(words)
        for i, word in enumerate(words[:limit]):
            yield Delta(text=word if i == 0 else " " + word, tokens=1)
        yield Delta(finish_reason="stop" if limit >= len(words) else "length")


class HashEmbedder(Embedder):
    """Deterministic 16-d vectors from a hash of the text: equal texts, equal vectors."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(_spec("hash", "embed"), settings or Settings())

    def _load(self) -> None:
        pass

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8)
                for t in texts]
        return np.asarray(rows, dtype=np.float32) - 127.5
