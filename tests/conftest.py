"""Shared fixtures. Every test gets its own FELDSPAR_HOME and Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feldspar.config import Settings, load_settings


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FELDSPAR_HOME and HF_HOME at tmp_path, and forget any FELDSPAR_* variables."""
    for key in list(os.environ):
        if key.startswith("FELDSPAR_") or key in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("FELDSPAR_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return home


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to check that nothing changed."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}
