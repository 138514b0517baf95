"""Fixtures and helpers for the tests (isolation itself is in the top-level conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feldspar.config import Settings, load_settings


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to check that nothing changed."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}
