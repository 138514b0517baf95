"""The one place where backends register: built-ins below, third parties by entry point.

A third-party package adds a backend by exposing a `Backend` under the entry-point group
"feldspar.backends", e.g. in its pyproject.toml:

    [project.entry-points."feldspar.backends"]
    mlx = "feldspar_mlx:BACKEND"
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal

from feldspar.errors import UnknownModelError, UnsupportedOption
from feldspar.models.spec import Format, ModelSpec

if TYPE_CHECKING:
    from feldspar.models.base import ChatModel, Embedder

Kind = Literal["chat", "embed"]


@dataclass(frozen=True)
class Backend:
    """A way to run models: the formats it reads and its classes, as "module:Class" strings
    so that registering a backend imports nothing heavy."""

    name: str
    formats: tuple[Format, ...]
    chat: str | None = None
    embed: str | None = None

    def load_class(self, kind: Kind) -> type:
        target = self.chat if kind == "chat" else self.embed
        if target is None:
            raise UnsupportedOption(f"The '{self.name}' backend cannot run {kind} models")
        module, _, attr = target.partition(":")
        cls: type = getattr(importlib.import_module(module), attr)
        return cls


_PKG = "feldspar.models.backends"
BUILTIN_BACKENDS = (
    Backend("llamacpp", ("gguf",), chat=f"{_PKG}.llamacpp:LlamaCppChat"),
    Backend("sentence-transformers", ("hf",), embed=f"{_PKG}.sbert:SentenceTransformerEmbedder"),
    Backend("onnx", ("hf",), embed=f"{_PKG}.onnx_embed:OnnxEmbedder"),
    Backend(
        "transformers",
        ("hf",),
        chat=f"{_PKG}.hf_transformers:TransformersChat",
        embed=f"{_PKG}.hf_transformers:TransformersEmbedder",
    ),
    Backend(
        "openai",
        ("remote",),
        chat=f"{_PKG}.openai_api:OpenAIChat",
        embed=f"{_PKG}.openai_api:OpenAIEmbedder",
    ),
)

# The backend a format uses when its spec names none, per kind of model.
DEFAULTS: dict[tuple[Format, Kind], str] = {
    ("gguf", "chat"): "llamacpp",
    ("hf", "chat"): "transformers",
    ("hf", "embed"): "sentence-transformers",
    ("remote", "chat"): "openai",
    ("remote", "embed"): "openai",
}


@cache
def backends() -> dict[str, Backend]:
    """Every backend by name: built-ins first, then entry points (which cannot shadow them)."""
    found = {b.name: b for b in BUILTIN_BACKENDS}
    for ep in entry_points(group="feldspar.backends"):
        backend = ep.load()
        if isinstance(backend, Backend) and backend.name not in found:
            found[backend.name] = backend
    return found


def get_backend(name: str) -> Backend:
    known = backends()
    if name in known:
        return known[name]
    from feldspar.models.lookup import closest

    close = closest(name, list(known))
    hint = f" Did you mean '{close}'?" if close else ""
    raise UnknownModelError(f"Unknown backend '{name}'.{hint} Known: {', '.join(known)}")


def backend_for(spec: ModelSpec, kind: Kind) -> Backend:
    """The backend that runs `spec` as a chat model or an embedder."""
    name = spec.backend or DEFAULTS.get((spec.format, kind))
    if name is None:
        raise UnsupportedOption(
            f"No backend runs {spec.format} models as {kind} models ('{spec.name}')"
        )
    return get_backend(name)


def chat_class(spec: ModelSpec) -> type[ChatModel]:
    return backend_for(spec, "chat").load_class("chat")


def embed_class(spec: ModelSpec) -> type[Embedder]:
    return backend_for(spec, "embed").load_class("embed")
