"""get_model and get_embedder: name -> spec -> license check -> backend, loaded once."""

from __future__ import annotations

import atexit
import threading
from typing import Any

from feldspar.config import Settings, load_settings
from feldspar.errors import UserError
from feldspar.models.base import ChatModel, Embedder
from feldspar.models.licenses import check_license
from feldspar.models.lookup import find_spec
from feldspar.models.registry import chat_class, embed_class

# Models stay loaded for the life of the process, so each loads once.
_loaded: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


@atexit.register
def _close_all() -> None:
    """Free native models before the interpreter tears down the modules they need."""
    with _lock:
        for model in _loaded.values():
            model.close(wait=False)  # a stream left open must not hold up the exit
        _loaded.clear()


def _get(kind: str, name: str | None, settings: Settings | None) -> Any:
    settings = settings or load_settings()
    spec = find_spec(name or (settings.chat_model if kind == "chat" else settings.embed_model),
                     settings)
    roles = {"chat", "guard"} if kind == "chat" else {"embed"}
    if not roles & set(spec.roles):
        what = "a chat model" if kind == "chat" else "an embedding model"
        raise UserError(
            f"'{spec.name}' ({', '.join(spec.roles)}) is not {what}; "
            "see 'feldspar models list' for each model's roles"
        )
    check_license(spec, settings)
    key = (kind, spec, settings.context_length, settings.threads, settings.request_timeout,
           settings.llama_parallel, settings.flash_attention)
    with _lock:
        model = _loaded.get(key)
        if model is None:
            cls = chat_class(spec) if kind == "chat" else embed_class(spec)
            model = _loaded[key] = cls(spec, settings)
    model.load()
    return model


def get_model(name: str | None = None, *, settings: Settings | None = None) -> ChatModel:
    """The chat model called `name` (default: settings.chat_model), loaded and ready.

    Raises `UnknownModelError`, `LicenseRefused`, `MissingDependency`, `ModelNotDownloaded`
    or `ModelError`, each with a message that says what to do.

    Example:
        >>> import feldspar
        >>> reply = feldspar.get_model().complete("Say hi.", max_tokens=8, seed=1)
        >>> reply.usage.completion_tokens <= 8
        True
    """
    model: ChatModel = _get("chat", name, settings)
    return model


def get_embedder(name: str | None = None, *, settings: Settings | None = None) -> Embedder:
    """The embedding model called `name` (default: settings.embed_model), loaded and ready.

    Example:
        >>> import feldspar
        >>> feldspar.get_embedder().embed(["hello"]).shape
        (1, 384)
    """
    embedder: Embedder = _get("embed", name, settings)
    return embedder
