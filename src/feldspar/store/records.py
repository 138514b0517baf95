"""The values a store keeps and returns: collections, documents, chunks, hits, filters, the
audit log, and label sets with their examples and trained students."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
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
    flags: tuple[str, ...] = ()
    """Risks the guard flagged in the chunk at ingest (prompt_injection, secrets, ...)."""

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


@dataclass(frozen=True)
class AuditEntry:
    """One guard decision, as the audit log keeps it."""

    time: float
    """Unix time of the decision."""
    direction: str
    """input, output or document."""
    action: str
    """allow, flag, redact or block."""
    source: str
    """What asked: "guard", "chat", "ask", "ingest", "server", a library caller's name."""
    text_sha256: str
    chars: int
    flags: tuple[str, ...]
    """The risks flagged."""
    verdicts: tuple[dict[str, Any], ...]
    """Each risk's risk, score, flagged, threshold and detector."""
    model: str | None = None
    """The chat model the text went to or came from, if any."""
    text: str | None = None
    """The text itself, kept only when the guard_audit_text setting is on."""
    ref: str | None = None
    """What the text belongs to, if anything: a document's path, a request id."""
    id: int | None = None


@dataclass(frozen=True)
class AuditQuery:
    """A filter on the audit log; entries come newest first."""

    since: float | None = None
    until: float | None = None
    action: str | None = None
    direction: str | None = None
    risk: str | None = None
    """Only entries that flagged this risk."""
    source: str | None = None
    limit: int | None = 100
    """None: every matching entry."""


@dataclass(frozen=True)
class LabelSet:
    """A named set of labels that texts are classified into."""

    name: str
    labels: tuple[str, ...]
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """What each label means, for the LLM teacher (labels without one are left out)."""
    created: float = 0.0
    updated: float = 0.0
    """When the labels or descriptions last changed."""
    examples: int = 0
    """How many examples the store holds for it (filled in on reading)."""


EXAMPLE_SOURCES = ("human", "teacher")
"""Where an example's label comes from: a person (given or reviewed), or the LLM teacher."""


@dataclass(frozen=True)
class Example:
    """A text with its label, kept for training students and picking few-shot examples."""

    text: str
    label: str
    source: str = "human"
    """One of EXAMPLE_SOURCES."""
    confidence: float | None = None
    """The teacher's probability for its label (None for a person's label)."""
    id: int | None = None


@dataclass(frozen=True)
class StoredStudent:
    """A trained student of a label set: its weights (an .npz of numeric arrays, read
    without pickle) and what it was trained on, as JSON."""

    labelset: str
    weights: bytes
    info: Mapping[str, Any]
    created: float = 0.0


def no_labelset(name: str) -> UserError:
    """The error for a label set that does not exist, the same from every store."""
    return UserError(f"No label set named '{name}'; create it with "
                     f"'feldspar classify create {name} --labels a,b,c'")


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


AUDIT_COLUMNS = ("id, time, direction, action, source, text_sha256, chars, flags, verdicts, "
                 "model, text, ref")
"""The columns of the audit table that `audit_from_row` reads, in its order."""


def audit_row(entry: AuditEntry) -> tuple[Any, ...]:
    """The values to insert for an entry, in AUDIT_COLUMNS' order without the id. Flags
    are kept as ",a,b," so that a LIKE '%,a,%' finds one."""
    flags = "," + ",".join(entry.flags) + "," if entry.flags else ""
    return (entry.time, entry.direction, entry.action, entry.source, entry.text_sha256,
            entry.chars, flags, json.dumps(list(entry.verdicts)), entry.model, entry.text,
            entry.ref)


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    verdicts = row[8] if isinstance(row[8], list) else json.loads(row[8])
    return AuditEntry(id=row[0], time=row[1], direction=row[2], action=row[3],
                      source=row[4], text_sha256=row[5], chars=row[6],
                      flags=tuple(f for f in row[7].split(",") if f),
                      verdicts=tuple(verdicts), model=row[9], text=row[10], ref=row[11])


def audit_conditions(query: AuditQuery, mark: str = "?") -> tuple[str, list[Any]]:
    """A WHERE clause (possibly empty) and its parameters for a query, with `mark` as the
    parameter placeholder of the database driver."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, op, value in (("time", ">=", query.since), ("time", "<", query.until),
                              ("action", "=", query.action),
                              ("direction", "=", query.direction),
                              ("source", "=", query.source)):
        if value is not None:
            conditions.append(f"{column} {op} {mark}")
            params.append(value)
    if query.risk is not None:  # "_" and "%" in a name are literal, not wildcards
        conditions.append(f"flags LIKE {mark} ESCAPE '!'")
        escaped = query.risk.replace("!", "!!").replace("_", "!_").replace("%", "!%")
        params.append(f"%,{escaped},%")
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


LABELSET_COLUMNS = ("l.name, l.labels, l.descriptions, l.created, l.updated, "
                    "(SELECT COUNT(*) FROM label_examples e WHERE e.labelset_id = l.id)")
"""The columns of `labelsets l` that `labelset_from_row` reads, in its order."""


def labelset_row(labelset: LabelSet, now: float) -> tuple[Any, ...]:
    """The values to insert for a label set: name, labels, descriptions (both JSON), created
    and updated (`now` where they are unset)."""
    return (labelset.name, json.dumps(list(labelset.labels), ensure_ascii=False),
            json.dumps(dict(labelset.descriptions), ensure_ascii=False),
            labelset.created or now, labelset.updated or now)


def labelset_from_row(r: Sequence[Any]) -> LabelSet:
    """A LabelSet from a row of LABELSET_COLUMNS."""
    return LabelSet(name=r[0], labels=tuple(json.loads(r[1])), descriptions=json.loads(r[2]),
                    created=r[3], updated=r[4], examples=r[5])


EXAMPLE_COLUMNS = "id, text, label, source, confidence"
"""The columns of the examples table that `example_from_row` reads, in its order."""


def example_rows(labelset_id: int, examples: Sequence[Example]) -> list[tuple[Any, ...]]:
    """The rows to insert for examples, in EXAMPLE_COLUMNS' order with the label set's id
    for the example's. NUL is refused here, before anything changes: PostgreSQL cannot
    store it in text, and every store accepts the same examples."""
    for e in examples:
        if "\x00" in e.text or "\x00" in e.label:
            raise UserError(f"An example holds a NUL character (0x00): {e.text[:60]!r}; "
                            "remove it from the text and label")
    return [(labelset_id, e.text, e.label, e.source, e.confidence) for e in examples]


def example_from_row(r: Sequence[Any]) -> Example:
    return Example(id=r[0], text=r[1], label=r[2], source=r[3], confidence=r[4])


STUDENT_COLUMNS = "s.weights, s.info, s.created"
"""The columns of `students s` that `student_from_row` reads, in its order."""


def student_row(student: StoredStudent, now: float) -> tuple[Any, ...]:
    """The values to insert for a student, in STUDENT_COLUMNS' order (`now` where its
    created time is unset)."""
    return bytes(student.weights), json.dumps(dict(student.info)), student.created or now


def student_from_row(labelset: str, r: Sequence[Any]) -> StoredStudent:
    return StoredStudent(labelset=labelset, weights=bytes(r[0]), info=json.loads(r[1]),
                         created=r[2])
