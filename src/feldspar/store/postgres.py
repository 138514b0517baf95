"""The server store: PostgreSQL with pgvector, for collections that many machines share.

The tables mirror the SQLite store's (collections, documents, chunks), in one schema of
their own. Each document is written in one transaction that first locks its collection's
row, so that writers of one collection queue instead of colliding, and readers see the old
version or the new one. Full text is a generated `tsvector` column under a GIN index, with
the 'simple' configuration: no stemming and no stop words, so any language is treated
alike. Vectors live in an untyped `vector` column, since collections differ in dimension;
each collection has its own partial HNSW index over the column cast to its dimension.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from feldspar.errors import StoreError, UserError
from feldspar.extras import require
from feldspar.store.records import (
    AUDIT_COLUMNS,
    DOCUMENT_COLUMNS,
    EXAMPLE_COLUMNS,
    LABELSET_COLUMNS,
    STUDENT_COLUMNS,
    AuditEntry,
    AuditQuery,
    Chunk,
    Collection,
    Document,
    Example,
    LabelSet,
    StoredStudent,
    Where,
    audit_conditions,
    audit_from_row,
    audit_row,
    document_from_row,
    example_from_row,
    example_rows,
    labelset_from_row,
    labelset_row,
    no_collection,
    no_labelset,
    student_from_row,
    student_row,
)

if TYPE_CHECKING:
    import psycopg

# pgvector's HNSW indexes `vector` columns of up to 2,000 dimensions; wider collections
# are searched exactly.
HNSW_MAX_DIMENSION = 2000
# An HNSW scan yields at most hnsw.ef_search rows (before filters), and takes at most 1,000.
EF_SEARCH_MAX = 1000

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    embed_model TEXT NOT NULL, dimension INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, version BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS documents (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL, content_hash TEXT NOT NULL, size BIGINT NOT NULL,
    mtime DOUBLE PRECISION NOT NULL, type TEXT NOT NULL, language TEXT, title TEXT,
    chunk_count INTEGER NOT NULL, ingested_at DOUBLE PRECISION NOT NULL,
    UNIQUE (collection_id, path), UNIQUE (id, collection_id));
-- collection_id repeats the document's (the foreign key keeps them equal) because a
-- partial index can only name its own table's columns.
CREATE TABLE IF NOT EXISTS chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id BIGINT NOT NULL, collection_id BIGINT NOT NULL, ordinal INTEGER NOT NULL,
    text TEXT NOT NULL, headings JSONB NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    line_start INTEGER NOT NULL, line_end INTEGER NOT NULL, page INTEGER,
    tokens INTEGER NOT NULL, vector vector NOT NULL, flags TEXT NOT NULL DEFAULT '',
    fts tsvector GENERATED ALWAYS AS (setweight(to_tsvector('simple', text), 'A')
                                      || setweight(to_tsvector('simple', headings), 'B')) STORED,
    FOREIGN KEY (document_id, collection_id) REFERENCES documents (id, collection_id)
        ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id, ordinal);
CREATE INDEX IF NOT EXISTS chunks_collection ON chunks (collection_id, id);
CREATE INDEX IF NOT EXISTS chunks_fts ON chunks USING gin (fts);
CREATE TABLE IF NOT EXISTS audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time DOUBLE PRECISION NOT NULL,
    direction TEXT NOT NULL, action TEXT NOT NULL, source TEXT NOT NULL,
    text_sha256 TEXT NOT NULL, chars BIGINT NOT NULL, flags TEXT NOT NULL,
    verdicts JSONB NOT NULL, model TEXT, text TEXT, ref TEXT);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
-- JSON is kept as text, as SQLite keeps it: descriptions keep their order (JSONB sorts keys).
CREATE TABLE IF NOT EXISTS labelsets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL, descriptions TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS label_examples (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    labelset_id BIGINT NOT NULL REFERENCES labelsets(id) ON DELETE CASCADE,
    text TEXT NOT NULL, label TEXT NOT NULL, source TEXT NOT NULL,
    confidence DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS label_examples_labelset ON label_examples (labelset_id, id);
CREATE TABLE IF NOT EXISTS students (
    labelset_id BIGINT PRIMARY KEY REFERENCES labelsets(id) ON DELETE CASCADE,
    weights BYTEA NOT NULL, info TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
"""

_CHUNK_COLUMNS = ('c.id, d.path, c.ordinal, c.text, c.headings, c.start, c."end", '
                  "c.line_start, c.line_end, c.page, c.tokens, c.flags")
_CHUNK_FROM = "FROM chunks c JOIN documents d ON d.id = c.document_id"


def ts_query(text: str) -> str:
    """A `to_tsquery('simple', ...)` query that matches any of the words in `text`.

    Each word is quoted, so that no user text is read as tsquery syntax.

    Example:
        >>> ts_query("What's NEAR(x) & !y?")
        "'What' | 's' | 'NEAR' | 'x' | 'y'"
    """
    # Case is left to the 'simple' dictionary, which folds it exactly as the index did.
    words = dict.fromkeys(re.findall(r"\w+", text))
    # \w+ holds no quote or backslash today; escaping anyway keeps this safe if it changes.
    return " | ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words)


def glob_regex(glob: str) -> str:
    r"""A PostgreSQL regular expression matching what `fnmatch.fnmatchcase` matches.

    Example:
        >>> print(glob_regex("*/src/[!a-c]?.py"))
        ^.*\/src\/[^a-c].\.py$
    """
    out, i = ["^"], 0
    while i < len(glob):
        char, i = glob[i], i + 1
        end = glob.find("]", i + (glob[i : i + 1] == "!") + 1) if char == "[" else -1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif end > 0:
            negate = glob[i] == "!"
            body, i, items = glob[i + negate : end], end + 1, []
            while body:
                # A reversed range (z-a) matches nothing in fnmatch, and is an error here.
                if len(body) > 2 and body[1] == "-":
                    items += [_literal(body[0]) + "-" + _literal(body[2])] * (body[0] <= body[2])
                    body = body[3:]
                else:
                    items, body = [*items, _literal(body[0])], body[1:]
            out.append(f"[{'^' * negate}{''.join(items)}]" if items else "." if negate else "(?!)")
        else:
            out.append(_literal(char))
    return "".join(out) + "$"


def _literal(char: str) -> str:
    # Letters and digits are literal; a backslash makes any other character literal, in
    # brackets too (where '[' could open a class and '^' negate).
    return char if char.isalnum() else "\\" + char


class PostgresStore:
    """A `Store` in one schema of a PostgreSQL database. Safe to share between threads.

    Args:
        dsn: A libpq connection string or URI, such as "postgresql://user@host/db".
        schema: The schema that holds the tables, created if missing; the pgvector
            extension is created too if the database lacks it (that needs the right).
    """

    def __init__(self, dsn: str, *, schema: str = "feldspar") -> None:
        require("psycopg", extra="postgres", purpose="The PostgreSQL store needs psycopg")
        require("pgvector", extra="postgres", purpose="The PostgreSQL store needs pgvector")
        self.dsn, self.schema = dsn, schema
        self._label = _label(dsn, schema)
        self._lock = threading.RLock()
        self._closed = False
        self._db = self._connect()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg
        from pgvector.psycopg import register_vector
        from psycopg.sql import SQL, Identifier

        try:
            db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise StoreError(f"Could not connect to {self._label}: {_first_line(exc)}; check "
                             "that the server is running and the DSN (host, port, user, "
                             "password, database) is right") from exc
        try:
            with db.transaction():
                # Two stores opening one database at once would race on the DDL.
                db.execute("SELECT pg_advisory_xact_lock(hashtext('feldspar.store.schema'))")
                try:
                    with db.transaction():
                        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.Error as exc:
                    raise StoreError(f"pgvector is missing in {self._label} ({_first_line(exc)});"
                                     " install it on the server, or have an administrator run "
                                     "CREATE EXTENSION vector in this database") from exc
                db.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(self.schema)))
                row = db.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                 "WHERE extname = 'vector'").fetchone()
                assert row is not None
                # For the whole session: every statement then reads our tables and pgvector's
                # type without naming their schemas.
                db.execute(SQL("SET search_path TO {}, {}").format(Identifier(self.schema),
                                                                   Identifier(row[0])))
                db.execute(SCHEMA)
                found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is not None and int(found[0]) > SCHEMA_VERSION:
                    raise StoreError(f"{self._label} was written by a newer Feldspar (schema "
                                     f"{found[0]}); upgrade Feldspar to open it")
                if found is not None and int(found[0]) < 2:  # schema 1: no chunk flags
                    db.execute("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS flags TEXT NOT "
                               "NULL DEFAULT ''")
                db.execute("INSERT INTO meta VALUES ('schema', %s) ON CONFLICT (key) DO UPDATE "
                           "SET value = excluded.value", (str(SCHEMA_VERSION),))
            register_vector(db)
        except BaseException as exc:
            db.close()
            if isinstance(exc, psycopg.Error):
                raise self._error(exc, db) from exc
            raise
        return db

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise StoreError(f"The store for {self._label} is closed")
        if self._db.broken or self._db.closed:
            # The server restarted or the network dropped: a fresh session carries on.
            self._db = self._connect()
        return self._db

    def _error(self, exc: psycopg.Error, db: psycopg.Connection[tuple[Any, ...]]
               ) -> StoreError:
        state = exc.sqlstate or ""
        if state == "53100":
            return StoreError(f"The disk holding {self._label} is full; free some space and "
                              "run the command again (what was stored before is intact)")
        if state.startswith("08") or db.broken:
            return StoreError(f"Lost the connection to {self._label} ({_first_line(exc)}); "
                              "check that the server is running, then run the command again")
        return StoreError(f"Database error in {self._label}: {_first_line(exc)}")

    @contextmanager
    def _write(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        """One transaction; any failure rolls it back whole."""
        import psycopg

        with self._lock:
            db = self._connection()
            try:
                with db.transaction(), db.cursor() as cur:
                    yield cur
            except psycopg.Error as exc:
                raise self._error(exc, db) from exc

    def _read(self, query: str, params: Sequence[Any] = (),
              ef_search: int | None = None) -> list[tuple[Any, ...]]:
        import psycopg

        if ef_search is not None:
            # SET LOCAL lasts only for a transaction, so this read gets one.
            with self._write() as cur:
                cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
                return cur.execute(query, params).fetchall()
        with self._lock:
            db = self._connection()
            try:
                cur = db.execute(query, params)
                return cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                raise self._error(exc, db) from exc

    # Collections

    def create_collection(self, name: str, embed_model: str, dimension: int) -> Collection:
        if not name or not re.fullmatch(r"[\w.-]{1,64}", name):
            raise UserError(f"Invalid collection name '{name}': use 1-64 letters, digits, "
                            "'_', '-' or '.'")
        with self._write() as cur:
            if cur.execute("SELECT 1 FROM collections WHERE name=%s", (name,)).fetchone():
                raise UserError(f"Collection '{name}' already exists")
            cur.execute("INSERT INTO collections (name, embed_model, dimension, "
                        "created_at) VALUES (%s, %s, %s, %s)",
                        (name, embed_model, dimension, time.time()))
        # Built while the collection is empty, inserts then keep the index current.
        self.prepare_search(name)
        found = self.collection(name)
        assert found is not None
        return found

    def collection(self, name: str) -> Collection | None:
        found = self._collections("WHERE c.name = %s", (name,))
        return found[0] if found else None

    def collections(self) -> list[Collection]:
        return self._collections("", ())

    def _collections(self, where: str, params: tuple[Any, ...]) -> list[Collection]:
        # COLLATE "C" orders by code point, as SQLite does, whatever the database's locale.
        rows = self._read(
            "SELECT c.name, c.embed_model, c.dimension, c.created_at, "
            "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id), "
            "(SELECT COALESCE(SUM(chunk_count), 0)::bigint FROM documents d "
            " WHERE d.collection_id = c.id) "
            f'FROM collections c {where} ORDER BY c.name COLLATE "C"', params)
        return [Collection(name=r[0], embed_model=r[1], dimension=r[2], created_at=r[3],
                           documents=r[4], chunks=r[5]) for r in rows]

    def delete_collection(self, name: str) -> bool:
        with self._write() as cur:
            row = cur.execute("DELETE FROM collections WHERE name=%s RETURNING id",
                              (name,)).fetchone()
        if row is None:
            return False
        # Its partial index now covers no rows; dropped after the commit, it holds no lock.
        self._drop_hnsw(row[0])
        return True

    def _collection_row(self, cur: psycopg.Cursor[tuple[Any, ...]] | None, name: str
                        ) -> tuple[int, int, int]:
        """(id, dimension, version) of a collection, or a UserError naming it.

        Given a writer's cursor, it also locks the row until the transaction ends, so that
        writers of one collection queue.
        """
        query = "SELECT id, dimension, version FROM collections WHERE name=%s"
        rows = (cur.execute(query + " FOR NO KEY UPDATE", (name,)).fetchall() if cur
                else self._read(query, (name,)))
        if not rows:
            raise no_collection(name)
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    # Documents

    def document(self, collection: str, path: str) -> Document | None:
        found = self._documents(collection, "AND d.path = %s", (path,))
        return found[0] if found else None

    def documents(self, collection: str, where: Where | None = None) -> list[Document]:
        sql, params = _where_sql(where)
        return self._documents(collection, sql, params)

    def _documents(self, collection: str, sql: str, params: tuple[Any, ...]) -> list[Document]:
        cid, _, _ = self._collection_row(None, collection)
        rows = self._read(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.collection_id = %s {sql} "
            'ORDER BY d.path COLLATE "C"', (cid, *params))
        return [document_from_row(collection, r) for r in rows]

    def put_document(self, document: Document, chunks: Sequence[Chunk],
                     vectors: np.ndarray) -> Document:
        from psycopg.types.json import Jsonb

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._write() as cur:
            cid, dimension, _ = self._collection_row(cur, document.collection)
            if vectors.shape != (len(chunks), dimension):
                raise UserError(f"Expected {len(chunks)} vectors of dimension {dimension} for "
                                f"{document.path}, got an array of shape {vectors.shape}")
            # The chunks go with their document (ON DELETE CASCADE).
            cur.execute("DELETE FROM documents WHERE collection_id=%s AND path=%s",
                        (cid, document.path))
            row = cur.execute(
                "INSERT INTO documents (collection_id, path, content_hash, size, mtime, type, "
                "language, title, chunk_count, ingested_at) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (cid, document.path, document.content_hash, document.size, document.mtime,
                 document.type, document.language, document.title, len(chunks), time.time()),
            ).fetchone()
            assert row is not None
            cur.executemany(
                'INSERT INTO chunks (document_id, collection_id, ordinal, text, headings, start, '
                '"end", line_start, line_end, page, tokens, vector, flags) '
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(row[0], cid, i, c.text, Jsonb(list(c.headings)), c.start, c.end,
                  c.line_start, c.line_end, c.page, c.tokens, vectors[i], ",".join(c.flags))
                 for i, c in enumerate(chunks)])
            cur.execute("UPDATE collections SET version = version + 1 WHERE id=%s", (cid,))
        stored = self.document(document.collection, document.path)
        assert stored is not None
        return stored

    def remove_document(self, collection: str, path: str) -> bool:
        with self._write() as cur:
            cid, _, _ = self._collection_row(cur, collection)
            if cur.execute("DELETE FROM documents WHERE collection_id=%s AND path=%s "
                           "RETURNING id", (cid, path)).fetchone() is None:
                return False
            cur.execute("UPDATE collections SET version = version + 1 WHERE id=%s", (cid,))
        return True

    # Chunks

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        rows = self._read(f"SELECT {_CHUNK_COLUMNS} {_CHUNK_FROM} WHERE c.id = ANY(%s)",
                          (list(ids),))
        found = {r[0]: _chunk(r) for r in rows}
        return [found[i] for i in ids if i in found]

    def document_chunks(self, collection: str, path: str) -> list[Chunk]:
        cid, _, _ = self._collection_row(None, collection)
        rows = self._read(f"SELECT {_CHUNK_COLUMNS} {_CHUNK_FROM} WHERE d.collection_id=%s "
                          "AND d.path=%s ORDER BY c.ordinal", (cid, path))
        return [_chunk(r) for r in rows]

    def iter_chunks(self, collection: str, batch: int = 256) -> Iterator[list[Chunk]]:
        cid, _, _ = self._collection_row(None, collection)
        last = 0
        while True:
            rows = self._read(f"SELECT {_CHUNK_COLUMNS} {_CHUNK_FROM} WHERE c.collection_id=%s "
                              "AND c.id > %s ORDER BY c.id LIMIT %s", (cid, last, batch))
            if not rows:
                return
            yield [_chunk(r) for r in rows]
            last = rows[-1][0]

    def replace_vectors(self, collection: str, embed_model: str, dimension: int,
                        vectors: dict[int, np.ndarray]) -> None:
        new = {i: np.asarray(v, dtype=np.float32).reshape(-1) for i, v in vectors.items()}
        if any(v.shape != (dimension,) for v in new.values()):
            raise UserError(f"Expected vectors of dimension {dimension} for collection "
                            f"'{collection}', got other shapes")
        # The old index casts to the old dimension, so it must go before the vectors change;
        # dropped outside the transaction, it does not block searches of other collections
        # while they do (and searches of this one are exact until prepare_search).
        self._drop_hnsw(self._collection_row(None, collection)[0])
        try:
            with self._write() as cur:
                cid, _, _ = self._collection_row(cur, collection)
                ids = {r[0] for r in cur.execute(
                    "SELECT id FROM chunks WHERE collection_id=%s", (cid,))}
                if ids != set(new):
                    raise StoreError(f"Collection '{collection}' changed while it was "
                                     "re-embedded; run the re-embed again")
                cur.executemany("UPDATE chunks SET vector=%s WHERE id=%s",
                                [(v, i) for i, v in new.items()])
                cur.execute("UPDATE collections SET embed_model=%s, dimension=%s, "
                            "version = version + 1 WHERE id=%s", (embed_model, dimension, cid))
        finally:
            # For the dimension the collection now has: the new one, or the old on failure.
            self.prepare_search(collection)

    # Search

    def lexical_search(self, collection: str, query: str, k: int,
                       where: Where | None = None) -> list[tuple[int, float]]:
        match = ts_query(query)
        if not match or k < 1:
            return []
        cid, _, _ = self._collection_row(None, collection)
        sql, params = _where_sql(where)
        # Weights {D, C, B, A}: heading words (B) count half as much as the chunk's own (A);
        # normalization 1 divides by 1 + log(length), so long chunks do not win by length.
        rows = self._read(
            "SELECT c.id, ts_rank_cd('{0, 0, 0.5, 1}', c.fts, q, 1) AS score "
            f"{_CHUNK_FROM}, to_tsquery('simple', %s) q "
            f"WHERE c.collection_id = %s AND c.fts @@ q {sql} "
            "ORDER BY score DESC, c.id LIMIT %s", (match, cid, *params, k))
        return [(int(r[0]), float(r[1])) for r in rows]

    def dense_search(self, collection: str, vector: np.ndarray, k: int,
                     where: Where | None = None) -> list[tuple[int, float]]:
        cid, dimension, _ = self._collection_row(None, collection)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape != (dimension,):
            raise UserError(f"Query vector has dimension {query.shape[0]}; collection "
                            f"'{collection}' holds vectors of dimension {dimension}")
        if k < 1:
            return []
        sql, params = _where_sql(where)
        # The collection id is written into the SQL, not bound: the planner proves that the
        # partial index applies only from a constant. The cast must match the index's.
        found: list[tuple[int, float]] = []
        for distance in (f"c.vector::vector({dimension}) <=> %s", "c.vector <=> %s"):
            rows = self._read(f"SELECT c.id, 1 - ({distance}) AS similarity {_CHUNK_FROM} "
                              f"WHERE c.collection_id = {cid:d} {sql} "
                              f"ORDER BY {distance} LIMIT %s", (query, *params, query, k),
                              ef_search=min(EF_SEARCH_MAX, max(40, 2 * k)))
            found = [(int(r[0]), float(r[1])) for r in rows]
            # HNSW drops what the filter rejects from its candidates and stops at ef_search
            # rows, so a short answer is asked again of the exact scan (no cast, no index).
            if len(found) >= k:
                break
        return found

    def prepare_search(self, collection: str) -> None:
        # PostgreSQL keeps indexes current as rows change: this only builds a collection's
        # HNSW index where it is missing (a new collection, a re-embed, a failed build).
        cid, dimension, _ = self._collection_row(None, collection)
        name = _hnsw_name(cid, dimension)
        found = self._read("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                           (name,))
        if (found and found[0][0]) or not 1 <= dimension <= HNSW_MAX_DIMENSION:
            return
        # CONCURRENTLY: writers of every collection go on while the index is built; a build
        # that fails leaves an invalid index, which the next call replaces.
        if found:
            self._read(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        self._read(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON chunks USING hnsw "
                   f"((vector::vector({dimension:d})) vector_cosine_ops) "
                   f"WHERE collection_id = {cid:d}")

    def _drop_hnsw(self, cid: int) -> None:
        pattern = f"chunks\\_hnsw\\_{cid:d}\\_%"  # '_' alone would match any character
        for (name,) in self._read("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' "
                                  "AND schemaname = current_schema() AND indexname LIKE %s",
                                  (pattern,)):
            self._read(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    # Audit log

    def add_audit(self, entries: Sequence[AuditEntry]) -> list[int]:
        columns = AUDIT_COLUMNS.removeprefix("id, ")
        marks = ", ".join(["%s"] * 11)
        ids: list[int] = []
        with self._write() as cur:
            for entry in entries:
                row = cur.execute(f"INSERT INTO audit ({columns}) VALUES ({marks}) RETURNING id",
                                  audit_row(entry)).fetchone()
                assert row is not None
                ids.append(int(row[0]))
        return ids

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        where, params = audit_conditions(query, "%s")
        limit = "" if query.limit is None else f" LIMIT {int(query.limit)}"
        rows = self._read(f"SELECT {AUDIT_COLUMNS} FROM audit{where} ORDER BY id DESC{limit}",
                          params)
        return [audit_from_row(r) for r in rows]

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        rows = self._read(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id = %s", (entry_id,))
        return audit_from_row(rows[0]) if rows else None

    # Classification

    def put_labelset(self, labelset: LabelSet) -> None:
        with self._write() as cur:
            cur.execute("INSERT INTO labelsets (name, labels, descriptions, created, updated) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                        "labels=excluded.labels, descriptions=excluded.descriptions, "
                        "updated=excluded.updated", labelset_row(labelset, time.time()))

    def labelset(self, name: str) -> LabelSet | None:
        rows = self._read(f"SELECT {LABELSET_COLUMNS} FROM labelsets l WHERE l.name=%s",
                          (name,))
        return labelset_from_row(rows[0]) if rows else None

    def labelsets(self) -> list[LabelSet]:
        rows = self._read(f'SELECT {LABELSET_COLUMNS} FROM labelsets l ORDER BY l.name COLLATE "C"')
        return [labelset_from_row(r) for r in rows]

    def delete_labelset(self, name: str) -> bool:
        with self._write() as cur:
            return cur.execute("DELETE FROM labelsets WHERE name=%s RETURNING id",
                               (name,)).fetchone() is not None

    def replace_examples(self, labelset: str, examples: Sequence[Example],
                         sources: Sequence[str]) -> int:
        with self._write() as cur:
            lid = self._labelset_id(cur, labelset)
            rows = example_rows(lid, examples)
            cur.execute("DELETE FROM label_examples WHERE labelset_id=%s AND source = ANY(%s)",
                        (lid, list(sources)))
            cur.executemany("INSERT INTO label_examples (labelset_id, "
                            f"{EXAMPLE_COLUMNS.removeprefix('id, ')}) "
                            "VALUES (%s, %s, %s, %s, %s)", rows)
        return len(rows)

    def examples(self, labelset: str, source: str | None = None) -> list[Example]:
        lid = self._labelset_id(None, labelset)
        where, params = ("", (lid,)) if source is None else (" AND source=%s", (lid, source))
        rows = self._read(f"SELECT {EXAMPLE_COLUMNS} FROM label_examples WHERE labelset_id=%s"
                          f"{where} ORDER BY id", params)
        return [example_from_row(r) for r in rows]

    def put_student(self, student: StoredStudent) -> None:
        with self._write() as cur:
            lid = self._labelset_id(cur, student.labelset)
            cur.execute("INSERT INTO students (labelset_id, weights, info, created) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (labelset_id) DO UPDATE SET "
                        "weights=excluded.weights, info=excluded.info, created=excluded.created",
                        (lid, *student_row(student, time.time())))

    def student(self, labelset: str) -> StoredStudent | None:
        rows = self._read(f"SELECT {STUDENT_COLUMNS} FROM students s JOIN labelsets l "
                          "ON l.id = s.labelset_id WHERE l.name=%s", (labelset,))
        return student_from_row(labelset, rows[0]) if rows else None

    def _labelset_id(self, cur: psycopg.Cursor[tuple[Any, ...]] | None, name: str) -> int:
        """The id of a label set, or a UserError naming it. Given a writer's cursor, it also
        locks the row until the transaction ends, so that writers of one label set queue."""
        query = "SELECT id FROM labelsets WHERE name=%s"
        rows = (cur.execute(query + " FOR NO KEY UPDATE", (name,)).fetchall() if cur
                else self._read(query, (name,)))
        if not rows:
            raise no_labelset(name)
        return int(rows[0][0])

    # Health

    def check(self) -> list[str]:
        problems = [f"document {r[0]} has {r[1]} chunks, expected {r[2]}" for r in self._read(
            "SELECT d.path, COUNT(c.id), d.chunk_count FROM documents d LEFT JOIN chunks c "
            "ON c.document_id = d.id GROUP BY d.id HAVING COUNT(c.id) != d.chunk_count")]
        problems += [f"chunk {r[0]} has a vector of dimension {r[1]}, expected {r[2]}"
                     for r in self._read(
            "SELECT c.id, vector_dims(c.vector), k.dimension FROM chunks c JOIN collections k "
            "ON k.id = c.collection_id WHERE vector_dims(c.vector) != k.dimension")]
        return problems

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()


def _hnsw_name(cid: int, dimension: int) -> str:
    return f"chunks_hnsw_{cid:d}_{dimension:d}"


def _chunk(row: Sequence[Any]) -> Chunk:
    # JSONB comes back as a list already (SQLite's store decodes a JSON string).
    return Chunk(id=row[0], path=row[1], ordinal=row[2], text=row[3], headings=tuple(row[4]),
                 start=row[5], end=row[6], line_start=row[7], line_end=row[8], page=row[9],
                 tokens=row[10], flags=tuple(f for f in row[11].split(",") if f))


def _where_sql(where: Where | None) -> tuple[str, tuple[Any, ...]]:
    """SQL conditions on `documents d` for a filter."""
    if not where:
        return "", ()
    sql = ""
    params: list[str] = []
    if where.path is not None:
        sql, params = sql + " AND d.path ~ %s", [*params, glob_regex(where.glob())]
    if where.type is not None:
        sql, params = sql + " AND d.type = %s", [*params, where.type]
    return sql, tuple(params)


def _label(dsn: str, schema: str) -> str:
    """Where the store lives, for messages: never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:
        return f"PostgreSQL schema '{schema}'"
    port = f":{info['port']}" if info.get("port") else ""
    return (f"PostgreSQL database '{info.get('dbname', '')}' on "
            f"{info.get('host') or 'localhost'}{port}, schema '{schema}'")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
