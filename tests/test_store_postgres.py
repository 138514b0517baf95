"""The PostgreSQL store: the shared contract against a real server, plus what only a server
has (several clients, server-side refusals, connection failures).

pgserver starts PostgreSQL with pgvector from its wheel, so no database needs installing.
Run as root, it runs the server as a system user 'pgserver' (PostgreSQL refuses root),
which it creates with useradd the first time.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feldspar.errors import StoreError
from tests.store_contract import DIM, StoreContract, chunks, doc, vectors

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A PostgreSQL server for the whole session, in a temporary directory."""
    # A missing or broken server must fail the run: a skip would pass CI unnoticed.
    try:
        with warnings.catch_warnings():
            # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (CI).
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        pytest.fail(f"pgserver is not installed ({exc}); pip install -e '.[test,postgres]'")
    root = Path(tempfile.mkdtemp(prefix="feldspar-pg-"))
    try:
        server = pgserver.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:
        log = root / "data" / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pgserver could not start PostgreSQL: {exc!r}\n{tail}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _drop_schema(uri: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def schema(postgres_uri: str) -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    _drop_schema(postgres_uri, name)


@pytest.fixture
def pg(postgres_uri: str, schema: str) -> Iterator[Any]:
    from feldspar.store.postgres import PostgresStore

    store = PostgresStore(postgres_uri, schema=schema)
    yield store
    store.close()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg: Any) -> Any:
        return pg


def test_two_stores_on_one_database_see_each_others_writes(postgres_uri: str, schema: str,
                                                          pg: Any) -> None:
    from feldspar.store.postgres import PostgresStore

    other = PostgresStore(postgres_uri, schema=schema)
    try:
        pg.create_collection("docs", "m", DIM)
        other.put_document(doc("/a.txt"), chunks("written by the other"), vectors(1))
        assert [c.text for c in pg.document_chunks("docs", "/a.txt")] == [
            "written by the other"]
        assert pg.lexical_search("docs", "other", 5) != []
        assert other.remove_document("docs", "/a.txt")
        assert pg.documents("docs") == []
    finally:
        other.close()


def test_a_write_refused_midway_keeps_the_previous_version(pg: Any) -> None:
    pg.create_collection("docs", "m", DIM)
    pg.put_document(doc("/a.txt"), chunks("kept", "also kept"), vectors(2))
    # PostgreSQL text cannot hold NUL: the second chunk fails after the old rows are deleted.
    with pytest.raises(StoreError, match="NUL"):
        pg.put_document(doc("/a.txt", "h2"), chunks("new", "bad \x00 byte"), vectors(2))
    assert [c.text for c in pg.document_chunks("docs", "/a.txt")] == ["kept", "also kept"]
    found = pg.document("docs", "/a.txt")
    assert found is not None
    assert found.content_hash == "h1"
    assert pg.check() == []


def test_an_unreachable_server_is_one_store_error(tmp_path: Path) -> None:
    from feldspar.store.postgres import PostgresStore

    with pytest.raises(StoreError, match=r"Could not connect .* check that the server"):
        PostgresStore(f"postgresql://nobody:secret@/nodb?host={tmp_path}")


def test_dense_search_uses_the_collections_hnsw_index(pg: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pg.create_collection("docs", "m", DIM)
    pg.create_collection("wide", "m", 2 * DIM)
    for n in range(10):
        pg.put_document(doc(f"/{n}.txt"), chunks(*[f"c{i}" for i in range(100)]),
                        vectors(100, seed=n))
    pg.put_document(doc("/w.txt", collection="wide"), chunks("w"),
                    np.ones((1, 2 * DIM), dtype=np.float32) / 4)
    pg._db.execute("ANALYZE chunks")
    # Run the store's own query, then ask PostgreSQL how it plans that very statement.
    seen: list[tuple[str, Any]] = []
    read = pg._read

    def spy(sql: str, params: Any = (), ef_search: int | None = None) -> Any:
        seen.append((sql, params))
        return read(sql, params, ef_search)

    monkeypatch.setattr(pg, "_read", spy)
    query = vectors(1, seed=99)[0]
    found = pg.dense_search("docs", query, 5)
    sql, params = next((s, p) for s, p in seen if "<=>" in s)
    plan = "\n".join(r[0] for r in read("EXPLAIN " + sql, params))
    assert "Index Scan using chunks_hnsw_" in plan
    every = np.concatenate([vectors(100, seed=n) for n in range(10)]) @ query
    assert [s for _, s in found] == pytest.approx(sorted(every)[::-1][:5], abs=1e-5)
    # Re-embedding to another dimension swaps the collection's index for one of that size.
    wide = pg.document_chunks("wide", "/w.txt")[0].id
    pg.replace_vectors("wide", "m2", DIM, {wide: vectors(1)[0]})
    names = {r[0] for r in read("SELECT indexname FROM pg_indexes WHERE schemaname = "
                                "current_schema() AND indexname LIKE %s", ("chunks_hnsw%",))}
    assert names == {"chunks_hnsw_1_8", "chunks_hnsw_2_8"}


def test_the_cli_ingests_into_and_searches_postgres(postgres_uri: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """FELDSPAR_DATABASE_URL moves the workspace to PostgreSQL; the commands are the same."""
    import json

    import psycopg
    from click.testing import CliRunner

    from feldspar.cli import cli
    from tests.test_ingest import MIXED, write

    database = f"w_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_uri, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{database}"')
    base, _, query = postgres_uri.partition("?")
    monkeypatch.setenv("FELDSPAR_DATABASE_URL",
                       f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else ""))
    write(tmp_path / "corpus", MIXED)
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", str(tmp_path / "corpus"), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["added"]) == 6
    result = runner.invoke(cli, ["search", "how long is parental leave", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["source"] == str(tmp_path / "corpus" / "notes.txt")
    assert not (Path(tmp_path / "home") / "feldspar.db").exists()
