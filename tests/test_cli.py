"""The command line as users see it."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from feldspar import __version__
from feldspar.cli import cli

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.stdout == f"feldspar, version {__version__}\n"


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "feldspar")
def test_every_command_has_short_help_with_examples(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "-h"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert "Example" in result.stdout


def test_cli_docs_are_in_step_with_help() -> None:
    from feldspar.cli.docs import render_cli_docs

    assert DOCS.read_text() == render_cli_docs(), (
        "docs/cli.md is stale: run 'python -m feldspar.cli.docs > docs/cli.md'")


@pytest.mark.integration
def test_chat_json_has_text_model_license_usage_timings() -> None:
    result = CliRunner().invoke(cli, ["chat", "Name three primary colors.", "--json",
                                      "--seed", "1", "--temperature", "0"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "smollm2-135m-instruct"
    assert data["license"] == "Apache-2.0"
    assert "red" in data["text"].lower()
    usage, timings = data["usage"], data["timings"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < timings["first_token_s"] <= timings["total_s"]
    expected = (usage["completion_tokens"] - 1) / (timings["total_s"] - timings["first_token_s"])
    assert timings["tokens_per_s"] == pytest.approx(expected)


@pytest.mark.integration
def test_chat_streams_plain_text_and_reads_stdin() -> None:
    argv = ["chat", "--temperature", "0", "--max-tokens", "16"]
    by_arg = CliRunner().invoke(cli, [*argv, "What is 2+2?"])
    by_stdin = CliRunner().invoke(cli, argv, input="What is 2+2?")
    assert by_arg.exit_code == 0
    assert by_stdin.exit_code == 0
    assert by_arg.stdout == by_stdin.stdout
    assert by_arg.stdout.strip()


@pytest.mark.integration
def test_interactive_conversation_keeps_history_and_ends_on_exit() -> None:
    result = CliRunner().invoke(
        cli, ["chat", "-i", "--temperature", "0", "--max-tokens", "12"],
        input="My name is Ada.\n\nWhat is my name?\nexit\n")
    assert result.exit_code == 0, result.output
    assert "Chatting with smollm2-135m-instruct (Apache-2.0)" in result.stderr
    assert result.stderr.count("> ") == 4  # two messages, one blank line, then exit
    replies = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(replies) >= 2


def test_empty_prompt_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["chat", "   "])
    assert result.exit_code == 2
    assert "The prompt is empty" in result.stderr


@pytest.mark.integration
def test_chat_with_too_long_prompt_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["chat", "word " * 6000])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: The prompt is ")
    assert result.stderr.count("\n") == 1


def test_chat_with_unknown_model_suggests() -> None:
    result = CliRunner().invoke(cli, ["chat", "-m", "smolm2", "hi"])
    assert result.exit_code == 1
    assert "Did you mean 'smollm2'?" in result.stderr


def test_chat_refuses_a_license_outside_policy() -> None:
    result = CliRunner().invoke(cli, ["chat", "-m", "llama-3.2-1b-instruct", "hi"])
    assert result.exit_code == 1
    assert "LicenseRef-Llama-3.2-Community" in result.stderr
    assert "allowed_licenses" in result.stderr


def test_chat_with_a_model_not_pulled() -> None:
    result = CliRunner().invoke(cli, ["chat", "-m", "qwen2.5-0.5b-instruct", "hi"])
    assert result.exit_code == 1
    assert result.stderr == ("Error: Model 'qwen2.5-0.5b-instruct' is not on this machine yet; "
                             "run 'feldspar models pull qwen2.5-0.5b-instruct'\n")


def test_chat_with_an_embedding_model_is_refused() -> None:
    result = CliRunner().invoke(cli, ["chat", "-m", "all-minilm-l6-v2", "hi"])
    assert result.exit_code == 1
    assert "is not a chat model" in result.stderr


@pytest.mark.parametrize("command", [["models", "add", "x", "--path", "README.md"],
                                     ["doctor"]])
def test_an_unusable_home_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      command: list[str]) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("I am a file")
    monkeypatch.setenv("FELDSPAR_HOME", str(not_a_folder))
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    assert not_a_folder.read_text() == "I am a file"
