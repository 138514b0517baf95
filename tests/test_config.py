"""Settings precedence and bad settings files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from feldspar.cli import cli
from feldspar.config import PERMISSIVE_LICENSES, load_settings
from feldspar.errors import ConfigError

from .conftest import snapshot


def write_toml(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "feldspar.toml").write_text(text)


def test_defaults_are_permissive_licenses_and_the_packaged_models(isolated: Path) -> None:
    settings = load_settings()
    assert settings.home == isolated
    assert settings.chat_model == "smollm2-135m-instruct"
    assert settings.embed_model == "all-minilm-l6-v2"
    assert settings.allowed_licenses == list(PERMISSIVE_LICENSES)


def test_flag_beats_environment_beats_file(isolated: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(isolated, 'chat_model = "from-file"\nthreads = 3\ncontext_length = 1024\n')
    assert load_settings().chat_model == "from-file"
    monkeypatch.setenv("FELDSPAR_CHAT_MODEL", "from-env")
    monkeypatch.setenv("FELDSPAR_THREADS", "5")
    settings = load_settings(threads=7)
    assert (settings.chat_model, settings.threads, settings.context_length) == (
        "from-env", 7, 1024)


def test_allowed_licenses_from_environment_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FELDSPAR_ALLOWED_LICENSES", '["Apache-2.0", "LicenseRef-Gemma"]')
    assert load_settings().allowed_licenses == ["Apache-2.0", "LicenseRef-Gemma"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chat_model = [unclosed", "is not valid TOML"),
        ("chat_modle = 'x'\n", "Unknown setting 'chat_modle'"),
        ("threads = 'many'\n", "Invalid setting 'threads'"),
        ("context_length = 5\n", "Invalid setting 'context_length'"),
        ("home = '/elsewhere'\n", "'home' cannot be set in"),
    ],
)
def test_bad_settings_file_is_one_clear_error(isolated: Path, text: str, message: str) -> None:
    write_toml(isolated, text)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_cli_reports_bad_settings_in_one_line_and_changes_nothing(isolated: Path) -> None:
    write_toml(isolated, "allowed_licenses = 'Apache-2.0\n")
    before = snapshot(isolated)
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert "feldspar.toml is not valid TOML" in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(isolated) == before


def test_secret_key_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FELDSPAR_OPENAI_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert "sk-very-secret" not in repr(settings)
    assert "sk-very-secret" not in settings.model_dump_json()


def test_every_setting_is_documented() -> None:
    from feldspar.config import Settings

    docs = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"| `{name}` | `FELDSPAR_{name.upper()}` |" in docs, name
