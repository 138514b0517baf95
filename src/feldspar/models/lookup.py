"""Turn a name the user typed into a model spec: catalog, registered models, or BACKEND:REF."""

from __future__ import annotations

import difflib
from pathlib import Path

from feldspar.config import Settings
from feldspar.errors import UnknownModelError, UserError
from feldspar.models.catalog import BUILTIN
from feldspar.models.registered import load_registered
from feldspar.models.spec import UNKNOWN_LICENSE, Format, ModelSpec, Provenance, Role, Source

_UNKNOWN = Provenance(trained_by="unknown", data="unknown", documentation="")


def all_specs(settings: Settings) -> list[ModelSpec]:
    """Built-in and catalog models, then the user's registered ones (which may shadow)."""
    registered = load_registered(settings.home)
    names = {spec.name for spec in registered}
    return [*(s for s in BUILTIN if s.name not in names), *registered]


def find_spec(name: str, settings: Settings) -> ModelSpec:
    """The spec for `name`: an exact name, an alias, or an ad-hoc "BACKEND:REF".

    Raises `UnknownModelError` naming the closest known model.
    """
    specs = all_specs(settings)
    for spec in specs:
        if name == spec.name:
            return spec
    folded = name.casefold()
    for spec in specs:
        if folded == spec.name.casefold() or folded in (a.casefold() for a in spec.aliases):
            return spec
    backend, sep, ref = name.partition(":")
    if Path(name).expanduser().exists():
        raise UnknownModelError(
            f"'{name}' is a file, not a model name; register it with its license first: "
            f"feldspar models add NAME --path {name} --license SPDX-ID"
        )
    if sep and backend and ref:
        return adhoc_spec(backend, ref, settings)
    close = closest(name, [s.name for s in specs] + [a for s in specs for a in s.aliases])
    hint = f" Did you mean '{close}'?" if close else ""
    raise UnknownModelError(f"Unknown model '{name}'.{hint} Run 'feldspar models list'")


_SUFFIXES = ("-instruct-hf", "-instruct", "-hf", "-english", "-multilingual")


def closest(name: str, known: list[str]) -> str | None:
    """The known name most like `name`, also comparing names without their usual suffixes
    (so 'granite-3-2b' finds 'granite-3.3-2b-instruct', not a guardian model).

    Example:
        >>> closest("granite-3-2b", ["granite-guardian-3.1-2b", "granite-3.3-2b-instruct"])
        'granite-3.3-2b-instruct'
    """

    def score(candidate: str) -> float:
        stem = candidate
        for suffix in _SUFFIXES:
            stem = stem.removesuffix(suffix)
        return max(difflib.SequenceMatcher(None, name.lower(), c.lower()).ratio()
                   for c in (candidate, stem))

    best = max(known, key=score, default=None)
    return best if best is not None and score(best) >= 0.5 else None


def adhoc_spec(backend: str, ref: str, settings: Settings) -> ModelSpec:
    """A spec for a model named by backend and reference, such as "openai:gpt-oss-20b".

    Its license is unknown, so the default policy refuses it: register it with
    `feldspar models add` and its license to use it.
    """
    from feldspar.models.registry import get_backend

    spec_backend = get_backend(backend)
    fmt: Format = spec_backend.formats[0]
    roles: tuple[Role, ...] = ("chat",) if spec_backend.chat else ("embed",)
    if fmt == "remote":
        if not settings.openai_base_url:
            raise UserError(
                f"'{backend}:{ref}' needs a server: set openai_base_url in "
                f"{settings.config_path} or FELDSPAR_OPENAI_BASE_URL"
            )
        source = Source(kind="remote", url=settings.openai_base_url, remote_model=ref)
    else:
        source = Source(kind="path", path=str(Path(ref).expanduser()))
    return ModelSpec(
        name=f"{backend}:{ref}",
        family="unknown",
        format=fmt,
        source=source,
        license=UNKNOWN_LICENSE,
        provenance=_UNKNOWN,
        roles=roles,
        context_length=settings.context_length,
        backend=backend,
        origin="adhoc",
    )
