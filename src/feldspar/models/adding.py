"""Registering local model files: read what the file says about itself, then record it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

from feldspar.config import Settings
from feldspar.errors import UserError
from feldspar.models.catalog import BUILTIN
from feldspar.models.gguf import check_gguf
from feldspar.models.registered import load_registered, registry_lock, save_registered
from feldspar.models.spec import ROLES, UNKNOWN_LICENSE, Format, ModelSpec, Provenance, Role, Source

# Hugging Face license tags (as GGUF files and model cards write them) to SPDX ids.
_LICENSE_TAGS = {
    "apache-2.0": "Apache-2.0",
    "mit": "MIT",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-nc-4.0": "CC-BY-NC-4.0",
    "llama3": "LicenseRef-Llama-3-Community",
    "llama3.1": "LicenseRef-Llama-3.1-Community",
    "llama3.2": "LicenseRef-Llama-3.2-Community",
    "llama3.3": "LicenseRef-Llama-3.3-Community",
    "gemma": "LicenseRef-Gemma",
    "qwen": "LicenseRef-Qwen",
    "qwen-research": "LicenseRef-Qwen-Research",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def normalize_license(tag: str) -> str:
    """An SPDX id or LicenseRef- name for a license tag, keeping unknown ones as given.

    Example:
        >>> normalize_license("apache-2.0"), normalize_license("llama3.2")
        ('Apache-2.0', 'LicenseRef-Llama-3.2-Community')
    """
    tag = tag.strip()
    return _LICENSE_TAGS.get(tag.lower(), tag)


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The scalar key-value metadata of a GGUF file (architecture, context, license...)."""
    from feldspar.extras import require

    gguf = require("gguf", extra="llamacpp", purpose="Reading GGUF metadata needs gguf")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as exc:
        raise UserError(f"{path} is not a readable GGUF file ({exc}); check the file") from exc
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml."):
            continue  # vocabularies: large and not needed here
        try:
            meta[key] = field.contents()
        except (ValueError, IndexError, TypeError):
            continue
    return meta


def _describe_gguf(path: Path) -> tuple[int | None, str | None, str]:
    meta = gguf_metadata(path)
    arch = str(meta.get("general.architecture", "unknown"))
    context = meta.get(f"{arch}.context_length")
    license_tag = meta.get("general.license")
    return (int(context) if context else None,
            str(license_tag) if license_tag else None, arch)


def _describe_folder(path: Path) -> tuple[int | None, str | None, str]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} has no readable config.json ({exc}); is it a Hugging Face "
                        "model folder?") from exc
    context = config.get("max_position_embeddings")
    license_tag = None
    readme = path / "README.md"
    if readme.is_file():
        match = re.search(r"^license:\s*(\S+)", readme.read_text(encoding="utf-8",
                                                                 errors="replace"), re.M)
        license_tag = match.group(1) if match else None
    return (int(context) if context else None, license_tag,
            str(config.get("model_type", "unknown")))


def register_local(settings: Settings, name: str, path: Path, *, license_id: str | None,
                   roles: tuple[str, ...] = (), context_length: int | None = None,
                   force: bool = False) -> ModelSpec:
    """Record a local model under `name` in FELDSPAR_HOME/models.json and return its spec."""
    _check_name(name)
    path = path.expanduser().resolve()
    if not path.exists():
        raise UserError(f"No such file or folder: {path}")
    fmt: Format
    if path.is_file():
        check_gguf(path)
        fmt = "gguf"
        found_context, found_license, family = _describe_gguf(path)
    elif (path / "config.json").is_file():
        fmt = "hf"
        found_context, found_license, family = _describe_folder(path)
    else:
        raise UserError(f"{path} is neither a .gguf file nor a Hugging Face model folder")
    chosen = _roles(roles)
    spec = ModelSpec(
        name=name,
        family=family,
        format=fmt,
        source=Source(kind="path", path=str(path)),
        license=license_id or (normalize_license(found_license) if found_license
                               else UNKNOWN_LICENSE),
        provenance=Provenance(trained_by="unknown", data="unknown", documentation=""),
        roles=chosen,
        context_length=context_length or found_context or settings.context_length,
        origin="registered",
        description=f"registered from {path}",
    )
    _save(settings, spec, force)
    return spec


def register_remote(settings: Settings, name: str, base_url: str, *, remote_model: str | None,
                    license_id: str | None, api_key_env: str | None = None,
                    roles: tuple[str, ...] = (), context_length: int | None = None,
                    force: bool = False) -> ModelSpec:
    """Record a model served by an OpenAI-compatible server (vLLM, Ollama, llama.cpp...)."""
    from urllib.parse import urlparse

    _check_name(name)
    url = urlparse(base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise UserError(f"Invalid server URL '{base_url}': give http(s)://HOST[:PORT]/v1")
    chosen = _roles(roles)
    spec = ModelSpec(
        name=name,
        family="remote",
        format="remote",
        source=Source(kind="remote", url=base_url.rstrip("/"), remote_model=remote_model or name,
                      api_key_env=api_key_env),
        license=license_id or UNKNOWN_LICENSE,
        provenance=Provenance(trained_by="unknown", data="unknown", documentation=""),
        roles=chosen,
        context_length=context_length or settings.context_length,
        origin="registered",
        description=f"served by {base_url}",
    )
    _save(settings, spec, force)
    return spec


def register_url(settings: Settings, name: str, url: str, *, sha256: str | None,
                 license_id: str | None, roles: tuple[str, ...] = (),
                 context_length: int | None = None, force: bool = False) -> ModelSpec:
    """Record a GGUF file to download from a plain URL, verified against its sha256."""
    from urllib.parse import urlsplit

    _check_name(name)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"Invalid URL '{url}': give http(s)://HOST/PATH/FILE.gguf")
    if not parts.path.endswith(".gguf"):
        raise UserError(f"'{url}' does not name a .gguf file; only single GGUF files can be "
                        "pulled from a URL")
    if not sha256 or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise UserError("A model from a URL needs its --sha256 (64 hex digits), so that the "
                        "download can be verified")
    spec = ModelSpec(
        name=name,
        family="unknown",
        format="gguf",
        source=Source(kind="url", url=url, sha256=sha256.lower()),
        license=license_id or UNKNOWN_LICENSE,
        provenance=Provenance(trained_by="unknown", data="unknown", documentation=url),
        roles=_roles(roles),
        context_length=context_length or settings.context_length,
        origin="registered",
        description=f"downloaded from {url}",
    )
    _save(settings, spec, force)
    return spec


def _roles(roles: tuple[str, ...]) -> tuple[Role, ...]:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise UserError(f"Unknown role {sorted(unknown)[0]!r}; use one of {', '.join(ROLES)}")
    return cast(tuple[Role, ...], tuple(roles)) or ("chat",)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UserError(f"Invalid model name '{name}': use letters, digits, '.', '_' and '-'")
    if any(name == s.name or name in s.aliases for s in BUILTIN):
        raise UserError(f"'{name}' is a catalog model's name; choose another name")


def _save(settings: Settings, spec: ModelSpec, force: bool) -> None:
    with registry_lock(settings.home):
        registered = load_registered(settings.home)
        if any(s.name == spec.name for s in registered) and not force:
            raise UserError(f"'{spec.name}' is already registered; use --force to replace it")
        save_registered(settings.home, [s for s in registered if s.name != spec.name] + [spec])


def unregister(settings: Settings, name: str) -> None:
    with registry_lock(settings.home):
        registered = load_registered(settings.home)
        if not any(s.name == name for s in registered):
            raise UserError(f"'{name}' is not a registered model; see 'feldspar models list'")
        save_registered(settings.home, [s for s in registered if s.name != name])
