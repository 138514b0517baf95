"""The embedded store: one SQLite file in WAL mode with FTS5, vectors as float32 blobs.

Each document is written in one transaction (BEGIN IMMEDIATE ... COMMIT), so a crash
leaves it fully in or fully out, and readers never see half of it. Chunks live in one
table with their vector, so no vector can outlive its chunk; the FTS5 index is kept in
step by triggers. Vector search runs on an index derived from the table (see vectors.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from feldspar.errors import StoreError, UserError
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
from feldspar.store.vectors import HNSW_THRESHOLD, ExactIndex, HnswIndex

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    embed_model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    type TEXT NOT NULL,
    language TEXT,
    title TEXT,
    chunk_count INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    UNIQUE (collection_id, path)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    headings TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end INTEGER NOT NULL,
    page INTEGER,
    tokens INTEGER NOT NULL,
    vector BLOB NOT NULL,
    flags TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id, ordinal);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    direction TEXT NOT NULL,
    action TEXT NOT NULL,
    source TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    chars INTEGER NOT NULL,
    flags TEXT NOT NULL,
    verdicts TEXT NOT NULL,
    model TEXT,
    text TEXT,
    ref TEXT
);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
CREATE TABLE IF NOT EXISTS labelsets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    descriptions TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS label_examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    labelset_id INTEGER NOT NULL REFERENCES labelsets(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    confidence REAL
);
CREATE INDEX IF NOT EXISTS label_examples_labelset ON label_examples(labelset_id, id);
CREATE TABLE IF NOT EXISTS students (
    labelset_id INTEGER PRIMARY KEY REFERENCES labelsets(id) ON DELETE CASCADE,
    weights BLOB NOT NULL,
    info TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, headings, content='chunks', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
-- Heading words count half as much as the chunk's own words. As the table's rank
-- function (not a bm25() call per query) it takes FTS5's faster ORDER BY rank path.
INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(1.0, 0.5)');
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, headings) VALUES (new.id, new.text, new.headings);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, headings)
    VALUES ('delete', old.id, old.text, old.headings);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE OF text, headings ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, headings)
    VALUES ('delete', old.id, old.text, old.headings);
    INSERT INTO chunks_fts(rowid, text, headings) VALUES (new.id, new.text, new.headings);
END;
"""

_CHUNK_COLUMNS = ('c.id, d.path, c.ordinal, c.text, c.headings, c.start, c."end", '
                  "c.line_start, c.line_end, c.page, c.tokens, c.flags")


# Words in more chunks than this, and than this share of them, are left out of lexical
# queries: they weigh little in BM25 and scoring their postings is most of the cost.
COMMON_MIN_CHUNKS = 10_000
COMMON_SHARE = 0.05


def query_words(text: str) -> list[str]:
    """The distinct words of a query, lower-cased; FTS5 gets each one quoted, so no user
    text is read as FTS5 syntax.

    Example:
        >>> query_words('What is "NEAR"(x)? what')
        ['what', 'is', 'near', 'x']
    """
    return list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", text)))


class SqliteStore:
    """A `Store` in one SQLite file. Safe to share between threads (one lock)."""

    def __init__(self, path: Path, *, hnsw_threshold: int = HNSW_THRESHOLD) -> None:
        self.path = path
        self.hnsw_threshold = hnsw_threshold
        self._lock = threading.RLock()
        self._indexes: dict[int, tuple[int, ExactIndex | HnswIndex]] = {}
        # Reads run on one connection per thread, so that searches in parallel (the two
        # halves of a hybrid search, a server's requests) do not wait for each other.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Could not open the database {path}: {exc}; move it aside to "
                             "start afresh, or restore a backup") from exc

    def _migrate(self) -> None:
        row = None
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer Feldspar (schema {row[0]}); "
                             "upgrade Feldspar to open it")
        if row is not None and int(row[0]) == SCHEMA_VERSION:
            return  # nothing to write: opening for a search takes no write lock
        self._add_chunk_flags()
        # The script is idempotent, so it also upgrades any older schema.
        # executescript commits on its own, so the script carries its transaction.
        self._db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} INSERT OR REPLACE INTO meta "
                               f"VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;")

    def _add_chunk_flags(self) -> None:
        """Schema 2 to 3: chunks get their guard flags (the one change CREATE ... IF NOT
        EXISTS cannot make)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(chunks)")}
            if columns and "flags" not in columns:
                self._db.execute("ALTER TABLE chunks ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any failure rolls it back whole."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _store_error(exc, self.path) from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _store_error(exc, self.path) from exc
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path) from exc

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=30.0)
            reader.execute("PRAGMA query_only=ON")
            with self._lock:
                self._readers.append(reader)
            self._local.reader = reader
        return reader

    # Collections

    def create_collection(self, name: str, embed_model: str, dimension: int) -> Collection:
        if not name or not re.fullmatch(r"[\w.-]{1,64}", name):
            raise UserError(f"Invalid collection name '{name}': use 1-64 letters, digits, "
                            "'_', '-' or '.'")
        with self._write() as db:
            if db.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone():
                raise UserError(f"Collection '{name}' already exists")
            db.execute("INSERT INTO collections (name, embed_model, dimension, created_at) "
                       "VALUES (?, ?, ?, ?)", (name, embed_model, dimension, time.time()))
        found = self.collection(name)
        assert found is not None
        return found

    def collection(self, name: str) -> Collection | None:
        found = self._collections("WHERE c.name = ?", (name,))
        return found[0] if found else None

    def collections(self) -> list[Collection]:
        return self._collections("", ())

    def _collections(self, where: str, params: tuple[Any, ...]) -> list[Collection]:
        rows = self._read(
            "SELECT c.name, c.embed_model, c.dimension, c.created_at, "
            "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id), "
            "(SELECT COALESCE(SUM(chunk_count), 0) FROM documents d "
            " WHERE d.collection_id = c.id) "
            f"FROM collections c {where} ORDER BY c.name", params)
        return [Collection(name=r[0], embed_model=r[1], dimension=r[2], created_at=r[3],
                           documents=r[4], chunks=r[5]) for r in rows]

    def delete_collection(self, name: str) -> bool:
        with self._write() as db:
            row = db.execute("SELECT id FROM collections WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            # Chunks first, in bulk: the FTS delete trigger needs each row's old text.
            db.execute("DELETE FROM chunks WHERE document_id IN "
                       "(SELECT id FROM documents WHERE collection_id=?)", (row[0],))
            db.execute("DELETE FROM collections WHERE id=?", (row[0],))
        self._drop_index(row[0])
        return True

    def _collection_row(self, db: sqlite3.Connection | None, name: str) -> tuple[int, int, int]:
        """(id, dimension, version) of a collection, or a UserError naming it."""
        sql = "SELECT id, dimension, version FROM collections WHERE name=?"
        rows = db.execute(sql, (name,)).fetchall() if db else self._read(sql, (name,))
        if not rows:
            raise no_collection(name)
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    # Documents

    def document(self, collection: str, path: str) -> Document | None:
        found = self._documents(collection, "AND d.path = ?", (path,))
        return found[0] if found else None

    def documents(self, collection: str, where: Where | None = None) -> list[Document]:
        sql, params = _where_sql(where)
        return self._documents(collection, sql, params)

    def _documents(self, collection: str, sql: str, params: tuple[Any, ...]) -> list[Document]:
        cid, _, _ = self._collection_row(None, collection)
        rows = self._read(
            f"SELECT {DOCUMENT_COLUMNS} FROM documents d WHERE d.collection_id = ? {sql} "
            "ORDER BY d.path", (cid, *params))
        return [document_from_row(collection, r) for r in rows]

    def put_document(self, document: Document, chunks: Sequence[Chunk],
                     vectors: np.ndarray) -> Document:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        now = time.time()
        with self._write() as db:
            cid, dimension, _ = self._collection_row(db, document.collection)
            if vectors.shape != (len(chunks), dimension):
                raise UserError(f"Expected {len(chunks)} vectors of dimension {dimension} for "
                                f"{document.path}, got an array of shape {vectors.shape}")
            old = db.execute("SELECT id FROM documents WHERE collection_id=? AND path=?",
                             (cid, document.path)).fetchone()
            if old is not None:
                db.execute("DELETE FROM chunks WHERE document_id=?", (old[0],))
                db.execute("DELETE FROM documents WHERE id=?", (old[0],))
            doc_id = db.execute(
                "INSERT INTO documents (collection_id, path, content_hash, size, mtime, type, "
                "language, title, chunk_count, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (cid, document.path, document.content_hash, document.size, document.mtime,
                 document.type, document.language, document.title, len(chunks), now),
            ).lastrowid
            db.executemany(
                'INSERT INTO chunks (document_id, ordinal, text, headings, start, "end", '
                "line_start, line_end, page, tokens, vector, flags) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(doc_id, i, c.text, json.dumps(list(c.headings), ensure_ascii=False),
                  c.start, c.end, c.line_start, c.line_end, c.page, c.tokens,
                  vectors[i].tobytes(), ",".join(c.flags)) for i, c in enumerate(chunks)])
            db.execute("UPDATE collections SET version = version + 1 WHERE id=?", (cid,))
        stored = self.document(document.collection, document.path)
        assert stored is not None
        return stored

    def remove_document(self, collection: str, path: str) -> bool:
        with self._write() as db:
            cid, _, _ = self._collection_row(db, collection)
            row = db.execute("SELECT id FROM documents WHERE collection_id=? AND path=?",
                             (cid, path)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM chunks WHERE document_id=?", (row[0],))
            db.execute("DELETE FROM documents WHERE id=?", (row[0],))
            db.execute("UPDATE collections SET version = version + 1 WHERE id=?", (cid,))
        return True

    # Chunks

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        found: dict[int, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            rows = self._read(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d "
                              f"ON d.id = c.document_id WHERE c.id IN ({marks})", part)
            found.update((r[0], _chunk(r)) for r in rows)
        return [found[i] for i in ids if i in found]

    def document_chunks(self, collection: str, path: str) -> list[Chunk]:
        cid, _, _ = self._collection_row(None, collection)
        rows = self._read(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d "
                          "ON d.id = c.document_id WHERE d.collection_id=? AND d.path=? "
                          "ORDER BY c.ordinal", (cid, path))
        return [_chunk(r) for r in rows]

    def iter_chunks(self, collection: str, batch: int = 256) -> Iterator[list[Chunk]]:
        cid, _, _ = self._collection_row(None, collection)
        last = 0
        while True:
            rows = self._read(f"SELECT {_CHUNK_COLUMNS} FROM chunks c JOIN documents d "
                              "ON d.id = c.document_id WHERE d.collection_id=? AND c.id > ? "
                              "ORDER BY c.id LIMIT ?", (cid, last, batch))
            if not rows:
                return
            yield [_chunk(r) for r in rows]
            last = rows[-1][0]

    def replace_vectors(self, collection: str, embed_model: str, dimension: int,
                        vectors: dict[int, np.ndarray]) -> None:
        with self._write() as db:
            cid, _, _ = self._collection_row(db, collection)
            ids = [r[0] for r in db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE d.collection_id=?", (cid,))]
            if set(ids) != set(vectors):
                raise StoreError(f"Collection '{collection}' changed while it was re-embedded; "
                                 "run the re-embed again")
            db.executemany("UPDATE chunks SET vector=? WHERE id=?",
                           [(np.asarray(v, dtype=np.float32).tobytes(), i)
                            for i, v in vectors.items()])
            db.execute("UPDATE collections SET embed_model=?, dimension=?, "
                       "version = version + 1 WHERE id=?", (embed_model, dimension, cid))
        self._drop_index(cid)

    # Search

    def lexical_search(self, collection: str, query: str, k: int,
                       where: Where | None = None) -> list[tuple[int, float]]:
        words = self._informative(query_words(query))
        if not words or k < 1:
            return []
        cid, _, _ = self._collection_row(None, collection)
        sql, params = _where_sql(where)
        match = " OR ".join(f'"{w}"' for w in words)
        # FTS5 ranks the matches of every collection; take its best first and filter them,
        # going deeper only when the filter left too few.
        alone = not where and len(self._read("SELECT id FROM collections LIMIT 2")) == 1
        depth = k if alone else 4 * k
        while True:
            rows = self._read(
                "WITH top AS (SELECT rowid AS id, rank FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) "
                "SELECT top.id, -top.rank FROM top JOIN chunks c ON c.id = top.id "
                f"JOIN documents d ON d.id = c.document_id WHERE d.collection_id = ? {sql} "
                "ORDER BY top.rank LIMIT ?", (match, depth, cid, *params, k))
            if len(rows) >= k or depth >= self._read(
                    "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,))[0][0]:
                return [(int(r[0]), float(r[1])) for r in rows]
            depth *= 8

    def _informative(self, words: list[str]) -> list[str]:
        """The query's words less those in so many chunks that they weigh little in BM25
        (at 5% of a million chunks, a third of a rare word) yet cost the most to score;
        the rarest word always stays.

        Only large stores are affected: a word is dropped when it is in more than
        COMMON_MIN_CHUNKS chunks and more than COMMON_SHARE of them.
        """
        if len(words) < 2:
            return words
        newest = self._read("SELECT MAX(id) FROM chunks")[0][0] or 0
        if newest <= COMMON_MIN_CHUNKS:
            return words
        marks = ",".join("?" * len(words))
        counts = dict(self._read(f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})",
                                 words))
        limit = max(COMMON_MIN_CHUNKS, COMMON_SHARE * newest)  # ids approximate the count
        kept = [w for w in words if counts.get(w, 0) <= limit]
        return kept or [min(words, key=lambda w: counts.get(w, 0))]

    def dense_search(self, collection: str, vector: np.ndarray, k: int,
                     where: Where | None = None) -> list[tuple[int, float]]:
        cid, dimension, version = self._collection_row(None, collection)
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape != (dimension,):
            raise UserError(f"Query vector has dimension {query.shape[0]}; collection "
                            f"'{collection}' holds vectors of dimension {dimension}")
        if k < 1:
            return []
        allowed = None
        if where:
            sql, params = _where_sql(where)
            allowed = np.array([r[0] for r in self._read(
                "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                f"WHERE d.collection_id = ? {sql}", (cid, *params))], dtype=np.int64)
            if len(allowed) == 0:
                return []
        index = self._index(cid, dimension, version)
        found = index.search(query, k, allowed)
        if allowed is not None and len(found) < min(k, len(allowed)):
            # The graph's neighbourhood held too few allowed chunks: search them exactly.
            return ExactIndex.build(_Vectors(self, cid, allowed.tolist())).search(query, k)
        if isinstance(index, HnswIndex) and found:
            # The graph is approximate (and half precision): score its finds exactly.
            exact = ExactIndex.build(_Vectors(self, cid, [i for i, _ in found]))
            found = exact.search(query, len(found))
        return found

    def prepare_search(self, collection: str) -> None:
        cid, dimension, version = self._collection_row(None, collection)
        self._index(cid, dimension, version)

    def _index(self, cid: int, dimension: int, version: int) -> ExactIndex | HnswIndex:
        with self._lock:
            cached = self._indexes.get(cid)
            if cached and cached[0] == version:
                return cached[1]
            source = _Vectors(self, cid)
            count = self._read("SELECT COUNT(*) FROM chunks c JOIN documents d ON "
                               "d.id = c.document_id WHERE d.collection_id=?", (cid,))[0][0]
            index: ExactIndex | HnswIndex
            if count >= self.hnsw_threshold:
                index = HnswIndex.open(self._hnsw_path(cid), dimension, version, source)
            else:
                index = ExactIndex.build(source)
            self._indexes[cid] = (version, index)
            return index

    def _hnsw_path(self, cid: int) -> Path:
        return self.path.parent / "index" / f"{self.path.stem}-{cid}.usearch"

    def _drop_index(self, cid: int) -> None:
        with self._lock:
            self._indexes.pop(cid, None)
        for suffix in (".usearch", ".json"):
            self._hnsw_path(cid).with_suffix(suffix).unlink(missing_ok=True)

    # Audit log

    def add_audit(self, entries: Sequence[AuditEntry]) -> list[int]:
        marks = ",".join("?" * 11)
        with self._write() as db:
            return [db.execute(f"INSERT INTO audit ({AUDIT_COLUMNS.removeprefix('id, ')}) "
                               f"VALUES ({marks})", audit_row(e)).lastrowid or 0
                    for e in entries]

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        where, params = audit_conditions(query)
        limit = "" if query.limit is None else f" LIMIT {int(query.limit)}"
        rows = self._read(f"SELECT {AUDIT_COLUMNS} FROM audit{where} ORDER BY id DESC{limit}",
                          params)
        return [audit_from_row(r) for r in rows]

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        rows = self._read(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id=?", (entry_id,))
        return audit_from_row(rows[0]) if rows else None

    # Classification

    def put_labelset(self, labelset: LabelSet) -> None:
        with self._write() as db:
            db.execute("INSERT INTO labelsets (name, labels, descriptions, created, updated) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                       "labels=excluded.labels, descriptions=excluded.descriptions, "
                       "updated=excluded.updated", labelset_row(labelset, time.time()))

    def labelset(self, name: str) -> LabelSet | None:
        rows = self._read(f"SELECT {LABELSET_COLUMNS} FROM labelsets l WHERE l.name=?", (name,))
        return labelset_from_row(rows[0]) if rows else None

    def labelsets(self) -> list[LabelSet]:
        rows = self._read(f"SELECT {LABELSET_COLUMNS} FROM labelsets l ORDER BY l.name")
        return [labelset_from_row(r) for r in rows]

    def delete_labelset(self, name: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM labelsets WHERE name=?", (name,)).rowcount > 0

    def replace_examples(self, labelset: str, examples: Sequence[Example],
                         sources: Sequence[str]) -> int:
        with self._write() as db:
            lid = self._labelset_id(db, labelset)
            rows = example_rows(lid, examples)
            db.execute(f"DELETE FROM label_examples WHERE labelset_id=? AND source IN "
                       f"({','.join('?' * len(sources))})", (lid, *sources))
            db.executemany("INSERT INTO label_examples (labelset_id, "
                           f"{EXAMPLE_COLUMNS.removeprefix('id, ')}) VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def examples(self, labelset: str, source: str | None = None) -> list[Example]:
        lid = self._labelset_id(None, labelset)
        where, params = ("", (lid,)) if source is None else (" AND source=?", (lid, source))
        rows = self._read(f"SELECT {EXAMPLE_COLUMNS} FROM label_examples WHERE labelset_id=?"
                          f"{where} ORDER BY id", params)
        return [example_from_row(r) for r in rows]

    def put_student(self, student: StoredStudent) -> None:
        with self._write() as db:
            lid = self._labelset_id(db, student.labelset)
            db.execute("INSERT OR REPLACE INTO students (labelset_id, weights, info, created) "
                       "VALUES (?, ?, ?, ?)", (lid, *student_row(student, time.time())))

    def student(self, labelset: str) -> StoredStudent | None:
        rows = self._read(f"SELECT {STUDENT_COLUMNS} FROM students s JOIN labelsets l "
                          "ON l.id = s.labelset_id WHERE l.name=?", (labelset,))
        return student_from_row(labelset, rows[0]) if rows else None

    def _labelset_id(self, db: sqlite3.Connection | None, name: str) -> int:
        """The id of a label set, or a UserError naming it."""
        sql = "SELECT id FROM labelsets WHERE name=?"
        rows = db.execute(sql, (name,)).fetchall() if db else self._read(sql, (name,))
        if not rows:
            raise no_labelset(name)
        return int(rows[0][0])

    # Health

    def check(self) -> list[str]:
        problems: list[str] = []
        result = self._read("PRAGMA integrity_check")
        if result != [("ok",)]:
            problems += [f"integrity: {r[0]}" for r in result]
        problems += [f"foreign key: {r}" for r in self._read("PRAGMA foreign_key_check")]
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
            except sqlite3.Error as exc:
                problems.append(f"full-text index: {exc}")
        problems += [f"document {r[0]} has {r[1]} chunks, expected {r[2]}" for r in self._read(
            "SELECT d.path, COUNT(c.id), d.chunk_count FROM documents d LEFT JOIN chunks c "
            "ON c.document_id = d.id GROUP BY d.id HAVING COUNT(c.id) != d.chunk_count")]
        problems += [f"chunk {r[0]} has a vector of {r[1]} bytes, expected {r[2]}"
                     for r in self._read(
            "SELECT c.id, LENGTH(c.vector), 4 * k.dimension FROM chunks c "
            "JOIN documents d ON d.id = c.document_id JOIN collections k "
            "ON k.id = d.collection_id WHERE LENGTH(c.vector) != 4 * k.dimension")]
        return problems

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()


class _Vectors:
    """A collection's vectors as the derived indexes read them."""

    def __init__(self, store: SqliteStore, cid: int, only: list[int] | None = None) -> None:
        self.store, self.cid, self.only = store, cid, only

    def ids(self) -> np.ndarray:
        rows = self.store._read("SELECT c.id FROM chunks c JOIN documents d ON "
                                "d.id = c.document_id WHERE d.collection_id=? ORDER BY c.id",
                                (self.cid,))
        return np.array([r[0] for r in rows], dtype=np.int64)

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        wanted = ids if ids is not None else self.only
        if wanted is None:
            rows = self.store._read("SELECT c.id, c.vector FROM chunks c JOIN documents d ON "
                                    "d.id = c.document_id WHERE d.collection_id=?", (self.cid,))
        else:
            rows = []
            for start in range(0, len(wanted), 500):
                part = list(wanted[start : start + 500])
                rows += self.store._read(
                    f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                    part)
        _, dimension, _ = self.store._read(
            "SELECT id, dimension, version FROM collections WHERE id=?", (self.cid,))[0]
        ids_out = np.array([r[0] for r in rows], dtype=np.int64)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids_out, matrix.reshape(len(rows), dimension)


def _chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(id=row[0], path=row[1], ordinal=row[2], text=row[3],
                 headings=tuple(json.loads(row[4])), start=row[5], end=row[6],
                 line_start=row[7], line_end=row[8], page=row[9], tokens=row[10],
                 flags=tuple(f for f in row[11].split(",") if f))


def _where_sql(where: Where | None) -> tuple[str, tuple[Any, ...]]:
    """SQL conditions on `documents d` for a filter."""
    if not where:
        return "", ()
    sql = ""
    params: list[str] = []
    if where.path is not None:
        sql, params = sql + " AND d.path GLOB ?", [*params, where.glob()]
    if where.type is not None:
        sql, params = sql + " AND d.type = ?", [*params, where.type]
    return sql, tuple(params)


def _store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    code = getattr(exc, "sqlite_errorname", "")
    if code.startswith("SQLITE_FULL") or code == "SQLITE_IOERR_WRITE":
        return StoreError(f"The disk holding {path} is full; free some space and run the "
                          "command again (what was stored before is intact)")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(f"The database {path} is busy (another ingest?); try again when "
                          "it finishes")
    return StoreError(f"Database error in {path}: {exc}")
