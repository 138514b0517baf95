"""Fixtures and helpers for the tests (isolation itself is in the top-level conftest)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from feldspar.config import Settings, load_settings


@pytest.fixture
def settings() -> Settings:
    return load_settings()


DATABASE_FILES = {"feldspar.db", "feldspar.db-wal", "feldspar.db-shm"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, to check that nothing changed. The
    workspace database counts by what it holds (collections, documents, chunks), since
    the guard's audit log grows in it with every decision, failed requests' too."""
    if not folder.exists():
        return {}
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name not in DATABASE_FILES}
    if documents := _documents(folder / "feldspar.db"):
        files["feldspar.db: documents"] = documents
    return files


def _documents(path: Path) -> bytes:
    if not path.exists():
        return b""
    db = sqlite3.connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name='chunks'").fetchone():
            return b""
        rows = db.execute(
            "SELECT k.name, k.embed_model, d.path, d.content_hash, c.ordinal, c.text, c.vector "
            "FROM collections k LEFT JOIN documents d ON d.collection_id = k.id "
            "LEFT JOIN chunks c ON c.document_id = d.id ORDER BY k.name, d.path, c.ordinal"
        ).fetchall()
    finally:
        db.close()
    return repr(rows).encode() if rows else b""
