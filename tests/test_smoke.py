"""The one-token smoke test that reports a crashing backend instead of dying with it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from feldspar.cli import cli
from feldspar.errors import ModelError
from feldspar.models import smoke

pytestmark = pytest.mark.integration


def test_one_token_from_the_packaged_model() -> None:
    result = smoke.smoke_test()
    assert result.tokens == 1
    assert result.text


def test_doctor_reports_ok() -> None:
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["one_token"]


def test_a_backend_killed_by_sigill_is_reported_with_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A real child process that dies of SIGILL, as a llama.cpp built for AMX does here.
    monkeypatch.setattr(smoke, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    with pytest.raises(ModelError, match=r"crashed with SIGILL .*GGML_NATIVE=OFF"):
        smoke.smoke_test()
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: llama.cpp crashed with SIGILL (illegal instruction)")


def test_a_failing_backend_reports_its_last_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smoke, "_CHILD", "raise SystemExit('Error: something broke')")
    with pytest.raises(ModelError, match="The smoke test failed: Error: something broke"):
        smoke.smoke_test()
