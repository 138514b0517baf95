"""`feldspar models ...`: the catalog, registered models, and downloads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.output import print_json, print_table

if TYPE_CHECKING:
    from feldspar.config import Settings
    from feldspar.models.spec import ModelSpec


@click.group(epilog="""\b
Examples:
  feldspar models list
  feldspar models show smollm2-135m-instruct
  feldspar models add my-model --path ./model.gguf --license Apache-2.0
  feldspar models pull qwen2.5-0.5b-instruct
""")
def models() -> None:
    """List, inspect, register and download models."""


def _status(spec: ModelSpec) -> str:
    """Whether the weights are here: installed, downloaded, not pulled, or missing."""
    from feldspar.errors import FeldsparError, MissingDependency, ModelNotDownloaded
    from feldspar.models.weights import locate

    if spec.source.kind == "remote":
        return "remote"
    try:
        locate(spec)
    except ModelNotDownloaded:
        return "not pulled"
    except MissingDependency:
        return "needs extra"
    except FeldsparError:
        return "missing"
    return "installed" if spec.origin == "builtin" else "ready"


def _row(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    from feldspar.models.licenses import is_allowed

    data = spec.to_dict()
    data["allowed"] = is_allowed(spec, settings)
    data["status"] = _status(spec)
    return data


@models.command("list", epilog="""\b
Examples:
  feldspar models list
  feldspar models list --role embed --json
""")
@click.option("--role", type=click.Choice(["chat", "embed", "guard", "rerank"]),
              help="Only models with this role.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_models(role: str | None, as_json: bool) -> None:
    """Every known model with its license and whether the license policy allows it."""
    from feldspar.config import load_settings
    from feldspar.models.lookup import all_specs

    settings = load_settings()
    rows = [_row(s, settings) for s in all_specs(settings) if role is None or role in s.roles]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["NAME", "FORMAT", "PARAMS", "ROLES", "LICENSE", "POLICY", "STATUS"],
        [[r["name"], r["format"], f"{r['params_b']}B" if r["params_b"] else "-",
          ",".join(r["roles"]), r["license"], "allowed" if r["allowed"] else "refused",
          r["status"]] for r in rows],
    )


@models.command("show", epilog="""\b
Examples:
  feldspar models show smollm2-135m-instruct
  feldspar models show granite-3.3-8b-instruct --json
""")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool) -> None:
    """Everything Feldspar knows about one model: source, license, provenance, status."""
    from feldspar.config import load_settings
    from feldspar.errors import FeldsparError
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    settings = load_settings()
    spec = find_spec(name, settings)
    data = _row(spec, settings)
    try:
        data["path"] = str(locate(spec))
    except FeldsparError:
        data["path"] = None
    if as_json:
        print_json(data)
        return
    prov = spec.provenance
    lines = [
        ("name", spec.name), ("description", spec.description), ("family", spec.family),
        ("parameters", f"{spec.params_b}B" if spec.params_b else "unknown"),
        ("format", spec.format + (f" ({spec.quantization})" if spec.quantization else "")),
        ("roles", ", ".join(spec.roles)), ("context", f"{spec.context_length} tokens"),
        ("license", f"{spec.license} ({'allowed' if data['allowed'] else 'refused'} by policy)"),
        ("trained by", prov.trained_by), ("training data", prov.data),
        ("documentation", prov.documentation), ("source", spec.source.describe()),
        ("status", data["status"]), ("path", data["path"] or "-"),
    ]
    for key, value in lines:
        if value:
            click.echo(f"{key + ':':<15}{value}")


@models.command("add", epilog="""\b
Examples:
  feldspar models add my-granite --path ~/models/granite.gguf --license Apache-2.0
  feldspar models add my-embedder --path ~/models/bge-small --role embed --license MIT
  feldspar models add team-model --url https://artifacts.example/m.gguf --sha256 HEX
  feldspar models add granite-vllm --base-url http://gpu-box:8000/v1 \\
      --remote-model ibm-granite/granite-3.3-8b-instruct --license Apache-2.0
""")
@click.argument("name")
@click.option("--path", "path", type=click.Path(path_type=Path, exists=False),
              help="A .gguf file, or a folder of safetensors (Hugging Face layout).")
@click.option("--base-url", help="An OpenAI-compatible server's base URL, instead of --path.")
@click.option("--url", help="A .gguf file to download with 'models pull', instead of --path.")
@click.option("--sha256", help="The --url file's sha256, to verify the download.")
@click.option("--remote-model", help="The model id the server knows (default: NAME).")
@click.option("--api-key-env", help="Environment variable that holds the server's API key.")
@click.option("--license", "license_id",
              help="SPDX id (e.g. Apache-2.0) or LicenseRef-...; read from the file if absent.")
@click.option("--role", "roles", multiple=True,
              type=click.Choice(["chat", "embed", "guard", "rerank"]),
              help="What the model is for (repeatable; default chat).")
@click.option("--context-length", type=click.IntRange(min=16),
              help="Context window in tokens (read from the file if absent).")
@click.option("--force", is_flag=True, help="Replace a registered model of the same name.")
def add(name: str, path: Path | None, base_url: str | None, url: str | None,
        sha256: str | None, remote_model: str | None, api_key_env: str | None,
        license_id: str | None, roles: tuple[str, ...], context_length: int | None,
        force: bool) -> None:
    """Register a local model file or folder, a file to download, or a model on a server."""
    from feldspar.config import load_settings
    from feldspar.models.adding import register_local, register_remote, register_url
    from feldspar.models.spec import UNKNOWN_LICENSE

    if sum(x is not None for x in (path, base_url, url)) != 1:
        raise click.UsageError("Give exactly one of --path, --url and --base-url")
    settings = load_settings()
    if url is not None:
        spec = register_url(settings, name, url, sha256=sha256, license_id=license_id,
                            roles=roles, context_length=context_length, force=force)
    elif base_url is not None:
        spec = register_remote(settings, name, base_url, remote_model=remote_model,
                               license_id=license_id, api_key_env=api_key_env, roles=roles,
                               context_length=context_length, force=force)
    else:
        assert path is not None
        spec = register_local(settings, name, path, license_id=license_id, roles=roles,
                              context_length=context_length, force=force)
    click.echo(f"Registered '{spec.name}' ({spec.format}, {spec.license}, "
               f"{spec.context_length} tokens of context) from {spec.source.describe()}")
    from feldspar.models.licenses import is_allowed

    if spec.license == UNKNOWN_LICENSE:
        click.echo("Note: the file names no license, so the license policy refuses it; "
                   "add it again with --force --license SPDX-ID.", err=True)
    elif not is_allowed(spec, settings):
        click.echo(f"Note: the license policy does not allow {spec.license}; "
                   f"add it to allowed_licenses in {settings.config_path} to use this model.",
                   err=True)


@models.command("remove", epilog="""\b
Example:
  feldspar models remove my-granite
""")
@click.argument("name")
def remove(name: str) -> None:
    """Forget a registered model (its files stay where they are)."""
    from feldspar.config import load_settings
    from feldspar.models.adding import unregister

    unregister(load_settings(), name)
    click.echo(f"Removed '{name}'")


@models.command("pull", epilog="""\b
Examples:
  feldspar models pull granite-3.3-2b-instruct
  HF_ENDPOINT=https://hf-mirror.example feldspar models pull qwen2.5-0.5b-instruct
""")
@click.argument("name")
def pull(name: str) -> None:
    """Download a catalog model from Hugging Face (resumable, checksum verified)."""
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.pull import pull as pull_model

    settings = load_settings()
    spec = find_spec(name, settings)
    with _ProgressBars() as progress:
        path = pull_model(spec, progress=progress)
    click.echo(f"Pulled '{spec.name}' to {path}")


class _ProgressBars:
    """A tqdm bar on stderr per file, fed by pull's progress callback."""

    def __enter__(self) -> Any:
        from tqdm import tqdm

        self._bars: dict[str, Any] = {}
        self._tqdm = tqdm
        return self

    def __call__(self, done: int, total: int, name: str) -> None:
        bar = self._bars.get(name)
        if bar is None:
            bar = self._bars[name] = self._tqdm(total=total or None, initial=0, desc=name,
                                                unit="B", unit_scale=True, leave=True)
        bar.update(done - bar.n)

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars.values():
            bar.close()
