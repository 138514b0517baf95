"""The SQLite store: the shared contract, plus what only SQLite has (files, WAL, HNSW)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from feldspar.errors import StoreError
from feldspar.store import SqliteStore
from feldspar.store.records import AuditEntry, AuditQuery, Example, LabelSet
from tests.store_contract import DIM, StoreContract, chunks, doc, vectors


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        store = SqliteStore(tmp_path / "feldspar.db")
        yield store
        store.close()


class TestSqliteStoreWithHnsw(StoreContract):
    """The same contract with the HNSW index forced on, however small the collection."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        store = SqliteStore(tmp_path / "feldspar.db", hnsw_threshold=1)
        yield store
        store.close()


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "f.db").close()
    with sqlite3.connect(tmp_path / "f.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_hnsw_index_is_saved_and_repaired_when_stale(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "f.db", hnsw_threshold=1)
    store.create_collection("docs", "m", DIM)
    store.put_document(doc("/a.txt"), chunks("a", "b", "c"), vectors(3))
    query = vectors(3)[1]
    first = store.dense_search("docs", query, 1)
    saved = list((tmp_path / "index").glob("*.usearch"))
    assert len(saved) == 1
    store.close()
    # Another process changes the collection; the saved index is now stale.
    other = SqliteStore(tmp_path / "f.db", hnsw_threshold=1)
    other.put_document(doc("/b.txt"), chunks("d"), vectors(1, seed=9))
    other.remove_document("docs", "/a.txt")
    other.close()
    reopened = SqliteStore(tmp_path / "f.db", hnsw_threshold=1)
    found = reopened.dense_search("docs", vectors(1, seed=9)[0], 5)
    assert [c.text for c in reopened.chunks([i for i, _ in found])] == ["d"]
    assert first[0][0] not in [i for i, _ in found]
    # A damaged index file is rebuilt, not trusted.
    reopened.close()
    saved[0].write_bytes(b"garbage")
    again = SqliteStore(tmp_path / "f.db", hnsw_threshold=1)
    again._indexes.clear()
    meta = saved[0].with_suffix(".json")
    meta.write_text('{"version": -5, "dimension": 8}')
    assert [c.text for c in again.chunks(
        [i for i, _ in again.dense_search("docs", vectors(1, seed=9)[0], 5)])] == ["d"]
    again.close()


def test_a_full_disk_is_one_clear_error_and_keeps_what_was_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "f.db")
    store.create_collection("docs", "m", DIM)
    store.put_document(doc("/a.txt"), chunks("kept"), vectors(1))
    # SQLite's own page limit raises SQLITE_FULL exactly as a full disk does.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count={pages + 2}")
    big = chunks(*["word " * 2000 for _ in range(20)])
    with pytest.raises(StoreError, match=r"disk holding .* is full"):
        store.put_document(doc("/b.txt"), big, vectors(20))
    assert [c.text for c in store.document_chunks("docs", "/a.txt")] == ["kept"]
    assert store.document("docs", "/b.txt") is None
    assert store.check() == []
    store.close()


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="Could not open the database"):
        SqliteStore(path)
    assert path.read_bytes().startswith(b"not a database")


def test_check_finds_a_document_missing_chunks(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "f.db")
    store.create_collection("docs", "m", DIM)
    store.put_document(doc("/a.txt"), chunks("a", "b"), vectors(2))
    store._db.execute("DELETE FROM chunks WHERE ordinal = 1")
    assert any("expected 2" in p for p in store.check())
    store.close()


def test_vectors_are_stored_as_float32(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "f.db")
    store.create_collection("docs", "m", DIM)
    v = vectors(1)
    store.put_document(doc("/a.txt"), chunks("a"), v)
    blob = store._db.execute("SELECT vector FROM chunks").fetchone()[0]
    assert np.array_equal(np.frombuffer(blob, dtype=np.float32), v[0])
    store.close()


@pytest.mark.integration
def test_the_hnsw_index_and_the_default_embedder_live_in_one_process(tmp_path: Path) -> None:
    """usearch loaded first once made importing onnxruntime segfault (see vectors.py)."""
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path\n"
        "from tests.store_contract import DIM, chunks, doc, vectors\n"
        "from feldspar.store import SqliteStore\n"
        "s = SqliteStore(Path(sys.argv[1]), hnsw_threshold=1)\n"
        "s.create_collection('docs', 'm', DIM)\n"
        "s.put_document(doc('/a.txt'), chunks('a'), vectors(1))\n"
        "assert s.dense_search('docs', vectors(1)[0], 1)\n"
        "import feldspar\n"
        "print(feldspar.get_embedder().embed(['hello']).shape)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "f.db")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(1, 384)"


def test_a_schema_2_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    store.create_collection("docs", "m", DIM)
    store.put_document(doc("/a.txt"), chunks("kept words"), vectors(1))
    store.close()
    # What a schema-2 database looks like: no chunk flags, no audit table.
    with sqlite3.connect(path) as db:
        db.executescript(_DROP_CLASSIFICATION)
        db.execute("ALTER TABLE chunks DROP COLUMN flags")
        db.execute("DROP TABLE audit")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    store = SqliteStore(path)
    got = store.document_chunks("docs", "/a.txt")
    assert [(c.text, c.flags) for c in got] == [("kept words", ())]
    assert store.add_audit([]) == []
    assert store.audit(AuditQuery()) == []
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("4",)


# What schema 4 added: label sets, their examples and students.
_DROP_CLASSIFICATION = "DROP TABLE students; DROP TABLE label_examples; DROP TABLE labelsets;"


def test_a_schema_3_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    store.create_collection("docs", "m", DIM)
    store.put_document(doc("/a.txt"), chunks("kept words"), vectors(1))
    store.add_audit([AuditEntry(time=1.0, direction="input", action="block", source="guard",
                                text_sha256="ab" * 32, chars=5, flags=("harm",),
                                verdicts=())])
    store.close()
    with sqlite3.connect(path) as db:
        db.executescript(_DROP_CLASSIFICATION)
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    store = SqliteStore(path)
    assert [c.text for c in store.document_chunks("docs", "/a.txt")] == ["kept words"]
    assert [(e.time, e.flags) for e in store.audit(AuditQuery())] == [(1.0, ("harm",))]
    assert store.labelsets() == []
    store.put_labelset(LabelSet("topics", ("a", "b")))
    assert store.replace_examples("topics", [Example("x", "a")], ["human"]) == 1
    assert store.check() == []
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("4",)
