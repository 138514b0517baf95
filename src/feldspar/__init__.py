"""Feldspar: open-weight language models at work on a company's own hardware.

`import feldspar` is cheap: the names below load on first use.

Example:
    >>> import feldspar
    >>> feldspar.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "get_model": "feldspar.models",
    "get_embedder": "feldspar.models",
    "GenerationOptions": "feldspar.models",
    "load_settings": "feldspar.config",
    "Settings": "feldspar.config",
    "Workspace": "feldspar.workspace",
}

if TYPE_CHECKING:
    from feldspar.config import Settings, load_settings
    from feldspar.models import GenerationOptions, get_embedder, get_model
    from feldspar.workspace import Workspace

__all__ = ["GenerationOptions", "Settings", "Workspace", "__version__", "get_embedder",
           "get_model", "load_settings"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'feldspar' has no attribute {name!r}")
