"""Bad model files: corrupt, truncated, missing, hostile chat templates; `models add`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from feldspar.cli import cli
from feldspar.errors import ModelError
from feldspar.models.templates import ChatTemplate
from feldspar.models.weights import locate

from .conftest import snapshot

pytestmark = pytest.mark.integration

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{% set x = messages.append({'role': 'user', 'content': 'x'}) %}{{ x }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
]


def smollm_path() -> Path:
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec

    return locate(find_spec("smollm2-135m-instruct", load_settings()))


def with_template(tmp_path: Path, template: str) -> Path:
    """A copy of the packaged GGUF whose chat template is replaced in place (same length)."""
    data = smollm_path().read_bytes()
    from feldspar.models.adding import gguf_metadata

    original = gguf_metadata(smollm_path())["tokenizer.chat_template"].encode()
    assert len(template.encode()) <= len(original)
    patched = template.encode().ljust(len(original), b" ")
    assert data.count(original) == 1
    path = tmp_path / "patched.gguf"
    path.write_bytes(data.replace(original, patched))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process (llama.cpp failures included)."""
    return subprocess.run([sys.executable, "-m", "feldspar", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escapes_are_refused(template: str) -> None:
    with pytest.raises(ModelError, match="tried to leave the sandbox"):
        ChatTemplate(template, name="hostile").check()


def test_gguf_with_hostile_template_is_refused_at_load(tmp_path: Path, isolated: Path) -> None:
    path = with_template(tmp_path, ESCAPES[0])
    assert CliRunner().invoke(cli, ["models", "add", "hostile", "--path", str(path),
                                    "--license", "Apache-2.0"]).exit_code == 0
    done = run_cli("chat", "-m", "hostile", "hello")
    assert_one_line_error(done, "Refusing the chat template of 'hostile'",
                          "tried to leave the sandbox")


def test_corrupt_gguf_is_a_clear_error(tmp_path: Path, isolated: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 100)
    result = CliRunner().invoke(cli, ["models", "add", "junk", "--path", str(junk)])
    assert result.exit_code == 1
    assert "is not a GGUF file" in result.stderr
    assert not (isolated / "models.json").exists()


def test_truncated_gguf_is_refused_at_add(tmp_path: Path, isolated: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm_path().read_bytes()[: 30_000_000])
    result = CliRunner().invoke(cli, ["models", "add", "cut", "--path", str(cut)])
    assert result.exit_code == 1
    assert "is not a readable GGUF file" in result.stderr
    assert not (isolated / "models.json").exists()


def test_gguf_truncated_after_registration_fails_to_load_cleanly(tmp_path: Path,
                                                                 isolated: Path) -> None:
    cut = tmp_path / "cut.gguf"
    data = smollm_path().read_bytes()
    cut.write_bytes(data)
    assert CliRunner().invoke(cli, ["models", "add", "cut", "--path", str(cut), "--license",
                                    "Apache-2.0"]).exit_code == 0
    cut.write_bytes(data[: 30_000_000])
    before = snapshot(isolated)
    done = run_cli("chat", "-m", "cut", "hello")
    assert_one_line_error(done, "llama.cpp could not load", "re-download it")
    assert snapshot(isolated) == before


def test_registered_file_that_disappeared(tmp_path: Path) -> None:
    copy = tmp_path / "gone.gguf"
    copy.write_bytes(smollm_path().read_bytes())
    CliRunner().invoke(cli, ["models", "add", "gone", "--path", str(copy)])
    copy.unlink()
    result = CliRunner().invoke(cli, ["chat", "-m", "gone", "hi"])
    assert result.exit_code == 1
    assert "Model file for 'gone' not found" in result.stderr


def test_models_add_reads_license_and_context_from_the_file(tmp_path: Path,
                                                            isolated: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "add", "my-smol", "--path",
                                      str(smollm_path())])
    assert result.exit_code == 0, result.output
    shown = json.loads(CliRunner().invoke(cli, ["models", "show", "my-smol", "--json"]).stdout)
    assert shown["license"] == "Apache-2.0"
    assert shown["context_length"] == 8192
    assert shown["family"] == "llama"
    assert shown["origin"] == "registered"
    assert shown["allowed"] is True
    again = CliRunner().invoke(cli, ["models", "add", "my-smol", "--path", str(smollm_path())])
    assert again.exit_code == 1
    assert "already registered" in again.stderr
    reply = CliRunner().invoke(cli, ["chat", "-m", "my-smol", "--max-tokens", "4", "--json",
                                     "Hi"])
    assert reply.exit_code == 0, reply.output
    assert json.loads(reply.stdout)["model"] == "my-smol"
    assert CliRunner().invoke(cli, ["models", "remove", "my-smol"]).exit_code == 0
    assert json.loads((isolated / "models.json").read_text()) == {"models": []}


def test_models_add_refuses_catalog_names_and_bad_paths(tmp_path: Path) -> None:
    runner = CliRunner()
    taken = runner.invoke(cli, ["models", "add", "smollm2-135m-instruct", "--path",
                                str(smollm_path())])
    assert taken.exit_code == 1
    assert "catalog model's name" in taken.stderr
    missing = runner.invoke(cli, ["models", "add", "x", "--path", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "No such file or folder" in missing.stderr


def test_damaged_registry_file_is_reported_not_erased(isolated: Path) -> None:
    isolated.mkdir(parents=True)
    (isolated / "models.json").write_text("{broken")
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 1
    assert "models.json is damaged" in result.stderr
    assert (isolated / "models.json").read_text() == "{broken"
