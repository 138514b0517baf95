"""Models: a catalog of specs (license, provenance, roles) and the backends that run them."""

from feldspar.models.base import ChatModel, Embedder, GenerationOptions, Stream
from feldspar.models.loading import get_embedder, get_model
from feldspar.models.spec import ModelSpec, Provenance, Source

__all__ = [
    "ChatModel",
    "Embedder",
    "GenerationOptions",
    "ModelSpec",
    "Provenance",
    "Source",
    "Stream",
    "get_embedder",
    "get_model",
]
