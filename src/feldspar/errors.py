"""Feldspar's exceptions, one hierarchy for the whole package.

    FeldsparError                 anything Feldspar raises on purpose
    ├── UserError                 the user can fix it: the message says how
    │   ├── ConfigError           an invalid feldspar.toml or FELDSPAR_* variable
    │   ├── UnknownModelError     a model name that is not in the catalog
    │   ├── MissingDependency     an optional extra is not installed
    │   ├── LicenseRefused        the license policy does not allow the model
    │   ├── ModelNotDownloaded    a catalog model whose weights are not on disk yet
    │   ├── ContextOverflow       the prompt does not fit the model's context
    │   ├── UnsupportedOption     a backend cannot honour a requested option
    │   └── EmbeddingMismatch     a collection's vectors come from another embedding model
    ├── ModelError                a model file or backend failed (corrupt GGUF, refused template)
    │   └── RemoteError           an OpenAI-compatible server failed or could not be reached
    ├── DownloadError             a pull failed (network, interrupted, checksum mismatch)
    └── StoreError                the database failed (disk full, corrupt, locked too long)

Only the edges translate these: the CLI prints the message as one line and exits non-zero.
Callers match on types, never on message text.
"""

from __future__ import annotations


class FeldsparError(Exception):
    """Base class of every error Feldspar raises on purpose."""


class UserError(FeldsparError):
    """Something the user can fix; the message names the next step."""


class ConfigError(UserError):
    """Settings could not be read or validated."""


class UnknownModelError(UserError):
    """A model name that is neither in the catalog nor registered."""


class MissingDependency(UserError):
    """An optional dependency is missing; the message carries the pip command."""


class LicenseRefused(UserError):
    """The license policy does not allow loading this model."""


class ModelNotDownloaded(UserError):
    """A catalog model whose weights are not on this machine yet."""


class ContextOverflow(UserError):
    """The prompt plus the requested tokens do not fit the model's context window."""


class UnsupportedOption(UserError):
    """A backend was asked for an option it cannot honour (never silently ignored)."""


class EmbeddingMismatch(UserError):
    """A collection was embedded with another model; vector spaces never mix."""


class ModelError(FeldsparError):
    """A model could not be loaded or failed while generating."""


class RemoteError(ModelError):
    """An OpenAI-compatible server could not be reached or answered with an error."""


class DownloadError(FeldsparError):
    """Downloading model weights failed; nothing partial is registered."""


class StoreError(FeldsparError):
    """The store could not read or write; what was stored before is intact."""
