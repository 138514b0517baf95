"""The store interface: what every store (SQLite, PostgreSQL) does, and nothing more.

A store keeps collections, documents, chunks with their vectors, and a full-text index.
Writing a document replaces all of its chunks in one transaction, so a reader sees the old
version or the new one, never half of either. One contract test suite
(tests/store_contract.py) holds every implementation to this.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from feldspar.store.records import (
    AuditEntry,
    AuditQuery,
    Chunk,
    Collection,
    Document,
    Example,
    LabelSet,
    StoredStudent,
    Where,
)

if TYPE_CHECKING:
    import numpy as np


class Store(Protocol):
    """Collections, documents, chunks, vectors and a full-text index."""

    def create_collection(self, name: str, embed_model: str, dimension: int) -> Collection:
        """Create a collection; an existing one with this name is an error."""
        ...

    def collection(self, name: str) -> Collection | None:
        """The collection with its document and chunk counts, or None."""
        ...

    def collections(self) -> list[Collection]:
        """Every collection, by name."""
        ...

    def delete_collection(self, name: str) -> bool:
        """Delete a collection and everything in it; False if there was none."""
        ...

    def document(self, collection: str, path: str) -> Document | None:
        ...

    def documents(self, collection: str, where: Where | None = None) -> list[Document]:
        """The collection's documents, by path."""
        ...

    def put_document(self, document: Document, chunks: Sequence[Chunk],
                     vectors: np.ndarray) -> Document:
        """Insert or replace a document with its chunks and their vectors, atomically.

        `vectors` has one unit-length float32 row per chunk, of the collection's dimension.
        """
        ...

    def remove_document(self, collection: str, path: str) -> bool:
        """Remove a document and its chunks; False if there was none."""
        ...

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """Chunks by id, in the order asked (unknown ids are left out)."""
        ...

    def document_chunks(self, collection: str, path: str) -> list[Chunk]:
        """A document's chunks in order."""
        ...

    def lexical_search(self, collection: str, query: str, k: int,
                       where: Where | None = None) -> list[tuple[int, float]]:
        """BM25 over chunk text: (chunk id, score) pairs, best first, higher is better."""
        ...

    def dense_search(self, collection: str, vector: np.ndarray, k: int,
                     where: Where | None = None) -> list[tuple[int, float]]:
        """Nearest chunks by cosine similarity: (chunk id, similarity), best first."""
        ...

    def prepare_search(self, collection: str) -> None:
        """Bring derived search indexes up to date after writes, so that the first search
        does not pay for it (searches would otherwise do it themselves)."""
        ...

    def iter_chunks(self, collection: str, batch: int = 256) -> Iterator[list[Chunk]]:
        """Every chunk of a collection, in batches (for re-embedding)."""
        ...

    def replace_vectors(self, collection: str, embed_model: str, dimension: int,
                        vectors: dict[int, np.ndarray]) -> None:
        """Switch a collection to another embedding model: every chunk's vector is
        replaced in one transaction, or nothing is."""
        ...

    def add_audit(self, entries: Sequence[AuditEntry]) -> list[int]:
        """Append guard decisions to the audit log; returns their ids."""
        ...

    def audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit log entries matching `query`, newest first."""
        ...

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        ...

    # Classification: label sets, their examples and their students

    def put_labelset(self, labelset: LabelSet) -> None:
        """Create a label set, or replace the labels and descriptions of an existing one
        (its `created` time, examples and student stay)."""
        ...

    def labelset(self, name: str) -> LabelSet | None:
        """The label set with its example count, or None."""
        ...

    def labelsets(self) -> list[LabelSet]:
        """Every label set, by name."""
        ...

    def delete_labelset(self, name: str) -> bool:
        """Delete a label set with its examples and student; False if there was none."""
        ...

    def replace_examples(self, labelset: str, examples: Sequence[Example],
                         sources: Sequence[str]) -> int:
        """In one transaction, remove the label set's examples from `sources` and add
        `examples`; returns how many were added. An unknown label set is a UserError."""
        ...

    def examples(self, labelset: str, source: str | None = None) -> list[Example]:
        """A label set's examples (of one source, if given), in the order they were added."""
        ...

    def put_student(self, student: StoredStudent) -> None:
        """Keep a label set's trained student, replacing the one before. An unknown label
        set is a UserError."""
        ...

    def student(self, labelset: str) -> StoredStudent | None:
        """A label set's student, or None."""
        ...

    def check(self) -> list[str]:
        """Problems found by an integrity check (empty when the store is consistent)."""
        ...

    def close(self) -> None:
        ...
