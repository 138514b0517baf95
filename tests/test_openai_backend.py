"""The `openai` backend against a live OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import feldspar
from feldspar.cli import cli
from feldspar.config import Settings, load_settings
from feldspar.errors import RemoteError
from feldspar.models.adding import register_remote
from feldspar.models.backends.openai_api import OpenAIChat

from .conftest import snapshot
from .openai_server import KEY, Behaviour, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Behaviour]]:
    monkeypatch.setenv("TEST_SERVER_KEY", KEY)
    with serve() as running:
        yield running


def register(settings: Settings, url: str, name: str = "remote-smol", remote: str = "smol",
             role: str = "chat", key_env: str | None = "TEST_SERVER_KEY") -> None:
    register_remote(settings, name, url, remote_model=remote, license_id="Apache-2.0",
                    api_key_env=key_env, roles=(role,))


def test_remote_chat_equals_local_greedy(server: tuple[str, Behaviour],
                                         settings: Settings) -> None:
    url, behaviour = server
    register(settings, url)
    remote = feldspar.get_model("remote-smol", settings=settings)
    assert isinstance(remote, OpenAIChat)
    stream = remote.stream("Name three primary colors.", temperature=0, max_tokens=32, seed=1)
    pieces = list(stream)
    reply = stream.result()
    local = feldspar.get_model().complete("Name three primary colors.", temperature=0,
                                          max_tokens=32, seed=1)
    assert len(pieces) > 1
    assert reply.text == local.text
    assert reply.usage == local.usage
    assert reply.model == "remote-smol"
    assert reply.license == "Apache-2.0"
    sent = behaviour.requests[-1]["body"]
    assert sent["stream"] is True
    assert sent["max_tokens"] == 32
    assert sent["seed"] == 1
    assert sent["messages"] == [{"role": "user", "content": "Name three primary colors."}]


def test_remote_json_schema_and_choices(server: tuple[str, Behaviour],
                                        settings: Settings) -> None:
    url, behaviour = server
    register(settings, url)
    remote = feldspar.get_model("remote-smol", settings=settings)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}},
              "required": ["ok"], "additionalProperties": False}
    assert set(json.loads(remote.complete("Is it ok?", json_schema=schema, seed=2).text)) == {
        "ok"}
    choice = remote.complete("Billing or sales?", choices=("billing", "sales"), seed=3)
    assert choice.text in ("billing", "sales")
    sent = behaviour.requests[-1]["body"]["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["choice"]["enum"] == ["billing", "sales"]


def test_remote_logprobs(server: tuple[str, Behaviour], settings: Settings) -> None:
    url, _ = server
    register(settings, url)
    reply = feldspar.get_model("remote-smol", settings=settings).complete(
        "Say hi.", temperature=0, max_tokens=4, logprobs=2)
    assert len(reply.logprobs) == reply.usage.completion_tokens
    assert all(len(e.top) == 2 and e.logprob <= 0 for e in reply.logprobs)


def test_remote_embeddings_match_local(server: tuple[str, Behaviour],
                                       settings: Settings) -> None:
    url, _ = server
    register(settings, url, name="remote-minilm", remote="minilm", role="embed")
    texts = ["first text", "second, different text", "third"]
    remote = feldspar.get_embedder("remote-minilm", settings=settings).embed(texts,
                                                                             batch_size=2)
    assert np.allclose(remote, feldspar.get_embedder().embed(texts), atol=1e-5)


def test_wrong_key_is_reported(server: tuple[str, Behaviour], settings: Settings,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = server
    register(settings, url, key_env="WRONG_KEY")
    monkeypatch.setenv("WRONG_KEY", "nope")
    with pytest.raises(RemoteError, match="answered 401: Incorrect API key provided; "
                                          "check the API key"):
        feldspar.get_model("remote-smol", settings=settings).complete("hi")


def test_unknown_remote_model_is_reported(server: tuple[str, Behaviour],
                                          settings: Settings) -> None:
    url, _ = server
    register(settings, url, remote="nonexistent")
    with pytest.raises(RemoteError, match=r"404.*check that the server serves model "
                                          "'nonexistent'"):
        feldspar.get_model("remote-smol", settings=settings).complete("hi")


@pytest.mark.parametrize(("mode", "message"), [
    ("fail", "answered 500: The model crashed"),
    ("drop", "closed the stream before the reply ended|Cannot reach"),
    ("ignore-format", "ignored the output constraint"),
])
def test_server_faults_are_errors_not_crashes(server: tuple[str, Behaviour], settings: Settings,
                                              mode: str, message: str) -> None:
    url, behaviour = server
    register(settings, url)
    behaviour.mode = mode
    remote = feldspar.get_model("remote-smol", settings=settings)
    with pytest.raises(RemoteError, match=message):
        remote.complete("Pick one.", choices=("a", "b"), max_tokens=40, temperature=0)


def test_slow_server_times_out(server: tuple[str, Behaviour], isolated: Path) -> None:
    url, behaviour = server
    isolated.mkdir(parents=True)
    (isolated / "feldspar.toml").write_text("request_timeout = 0.5\n")
    settings = load_settings()
    register(settings, url)
    behaviour.mode = "hang"
    with pytest.raises(RemoteError, match="did not answer in time"):
        feldspar.get_model("remote-smol", settings=settings).complete("hi")


def test_unreachable_server_is_one_line_and_changes_nothing(isolated: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    settings = load_settings()
    register(settings, f"http://127.0.0.1:{port}/v1", key_env=None)
    before = snapshot(isolated)
    result = CliRunner().invoke(cli, ["chat", "-m", "remote-smol", "hello"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Cannot reach http://127.0.0.1:{port}/v1 (")
    assert result.stderr.count("\n") == 1
    assert snapshot(isolated) == before


def test_models_add_base_url_on_the_cli(server: tuple[str, Behaviour]) -> None:
    url, _ = server
    runner = CliRunner()
    added = runner.invoke(cli, ["models", "add", "smol-server", "--base-url", url,
                                "--remote-model", "smol", "--api-key-env", "TEST_SERVER_KEY",
                                "--license", "Apache-2.0"])
    assert added.exit_code == 0, added.output
    result = runner.invoke(cli, ["chat", "-m", "smol-server", "--temperature", "0", "--json",
                                 "--max-tokens", "8", "Hello"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "smol-server"
    bad = runner.invoke(cli, ["models", "add", "x", "--base-url", "ftp://nowhere"])
    assert bad.exit_code == 1
    assert "Invalid server URL" in bad.stderr


def test_a_key_variable_that_is_not_set_is_reported(server: tuple[str, Behaviour],
                                                    settings: Settings) -> None:
    url, _ = server
    register(settings, url, key_env="FELDSPAR_TEST_UNSET_KEY")
    with pytest.raises(RemoteError, match=r"\$FELDSPAR_TEST_UNSET_KEY, which is not set"):
        feldspar.get_model("remote-smol", settings=settings)


def test_the_global_key_goes_only_to_its_own_server(server: tuple[str, Behaviour],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = server
    monkeypatch.setenv("FELDSPAR_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FELDSPAR_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    settings = load_settings()
    register(settings, url, key_env=None)
    with pytest.raises(RemoteError, match="401"):
        feldspar.get_model("remote-smol", settings=settings).complete("hi")
    monkeypatch.setenv("FELDSPAR_OPENAI_BASE_URL", url)
    settings = load_settings()
    register(settings, url, name="own-server", key_env=None)
    reply = feldspar.get_model("own-server", settings=settings).complete("hi", max_tokens=2)
    assert reply.usage.completion_tokens > 0


def test_a_remote_teacher_reads_its_labels_log_probabilities(server: tuple[str, Behaviour],
                                                             settings: Settings) -> None:
    """Through the wire, a choice comes back as JSON: the teacher finds its label's own
    tokens in it and reads their probabilities, in both of its modes."""
    from feldspar.classify.teacher import Teacher

    url, behaviour = server
    register(settings, url)
    remote = feldspar.get_model("remote-smol", settings=settings)
    labels = ["billing", "shipping", "bug"]
    texts = ["Where is my parcel?", "I was charged twice.", "The app crashes."]
    for mode in ("generate", "score"):
        predictions = Teacher(remote, labels, mode=mode).classify(  # type: ignore[arg-type]
            texts)
        assert all(p.label in labels for p in predictions)
        assert all(0 < p.confidence <= 1 for p in predictions)
        assert any(p.confidence < 0.999 for p in predictions), mode  # read, not defaulted
    body = behaviour.requests[-1]["body"]
    assert body["logprobs"] is True
    assert body["response_format"]["json_schema"]["schema"]["properties"]["choice"]["enum"] \
        == ["bug"]  # scoring forces one label at a time
