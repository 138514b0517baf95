"""Every test and doctest gets its own FELDSPAR_HOME and Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

collect_ignore = ["src/feldspar/__main__.py", "bench"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FELDSPAR_HOME, HF_HOME and the user cache at tmp_path, and forget any
    FELDSPAR_* variables."""
    for key in list(os.environ):
        if key.startswith("FELDSPAR_") or key in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("FELDSPAR_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return home
