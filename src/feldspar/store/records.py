"""The values a store keeps and returns: collections, documents, chunks, hits and filters."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from feldspar.errors import UserError


@dataclass(frozen=True)
class Collection:
    """A named set of documents embedded with one model."""

    name: str
    embed_model: str
    """The embedding model every vector in the collection comes from."""
    dimension: int
    documents: int = 0
    chunks: int = 0
    created_at: float = 0.0


@dataclass(frozen=True)
class Document:
    """One ingested file, as the store knows it."""

    collection: str
    path: str
    """The file's absolute path (symlinks resolved)."""
    content_hash: str
    """sha256 of the file's bytes, hex."""
    size: int
    mtime: float
    type: str
    language: str | None = None
    title: str | None = None
    chunks: int = 0
    ingested_at: float = 0.0


@dataclass(frozen=True)
class Chunk:
    """A span of a document's text: what is embedded, indexed and cited."""

    text: str
    start: int
    """Offset of the first character in the document's extracted text."""
    end: int
    line_start: int
    """1-based line of `start` in the extracted text (for text and code, in the file)."""
    line_end: int
    page: int | None = None
    """1-based page (PDF), slide (PPTX) or sheet (XLSX)."""
    headings: tuple[str, ...] = ()
    """Heading path above the chunk; for code, the enclosing class and function."""
    tokens: int = 0
    """Tokens of the embedded text, counted with the collection's embedder."""
    id: int | None = None
    """Store id; None before the chunk is stored."""
    path: str | None = None
    """The document's path; filled in by the store."""
    ordinal: int = 0
    """Position of the chunk in its document."""

    def embed_text(self) -> str:
        """The text that is embedded: the heading path first, so that a chunk carries the
        context that its own words may lack."""
        if not self.headings:
            return self.text
        return " > ".join(self.headings) + "\n\n" + self.text


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, with its rank and the scores that placed it."""

    chunk: Chunk
    score: float
    """The final score (fused, or the reranker's); higher is better."""
    rank: int
    """1-based position in the results."""
    scores: dict[str, float] = field(default_factory=dict)
    """Per-method scores where the chunk was found: "lexical" (BM25), "dense" (cosine),
    "rerank"."""
    document_type: str | None = None


@dataclass(frozen=True)
class Where:
    """A filter on documents: a glob on the path and/or a document type.

    Example:
        >>> Where.parse(["path=*.md", "type=markdown"])
        Where(path='*.md', type='markdown')
    """

    path: str | None = None
    type: str | None = None

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...]) -> Where:
        """Build a filter from "key=value" strings (keys: path, type)."""
        values: dict[str, str] = {}
        for item in items:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in ("path", "type") or not value.strip():
                raise UserError(f"Invalid filter '{item}': use path=GLOB or type=TYPE")
            values[key] = value.strip()
        return cls(**values)

    def __bool__(self) -> bool:
        return self.path is not None or self.type is not None

    def matches(self, path: str, doc_type: str) -> bool:
        """Whether a document passes the filter (paths match anywhere, as `*.md` does)."""
        if self.type is not None and doc_type != self.type:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.glob())

    def glob(self) -> str:
        """The path glob, anchored so that a relative pattern matches at any depth."""
        assert self.path is not None
        return self.path if self.path.startswith(("/", "*")) else "*/" + self.path


def no_collection(name: str) -> UserError:
    """The error for a collection that does not exist, the same from every store."""
    return UserError(f"No collection named '{name}'; see 'feldspar collections list'")


DOCUMENT_COLUMNS = ("d.path, d.content_hash, d.size, d.mtime, d.type, d.language, d.title, "
                    "d.chunk_count, d.ingested_at")
"""The columns of `documents d` that `document_from_row` reads, in its order."""


def document_from_row(collection: str, r: Sequence[Any]) -> Document:
    """A Document from a row of DOCUMENT_COLUMNS."""
    return Document(collection=collection, path=r[0], content_hash=r[1], size=r[2],
                    mtime=r[3], type=r[4], language=r[5], title=r[6], chunks=r[7],
                    ingested_at=r[8])
