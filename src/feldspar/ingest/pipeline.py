"""The ingest run: find files, skip what has not changed, parse, chunk, embed, store.

Each file is written in its own transaction, so an interrupted run leaves every file fully
in or fully out, and running it again finishes the job: files already stored have the
same content hash and are skipped without being parsed or embedded again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feldspar.errors import EmbeddingMismatch
from feldspar.ingest.chunking import ChunkOptions, chunk
from feldspar.ingest.files import Found, Skipped, find_files
from feldspar.ingest.worker import ParseFailed, ParserProcess
from feldspar.store.records import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

    from feldspar.models.base import Embedder
    from feldspar.store.base import Store

logger = logging.getLogger(__name__)

# Chunks embedded together: big enough to keep the embedder busy, small enough that an
# interrupted run loses little work.
EMBED_BATCH = 128


@dataclass(frozen=True)
class IngestOptions:
    """Limits and sizes for one run."""

    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    max_file_bytes: int = 50 * 1024 * 1024
    parse_timeout: float = 120.0
    parse_memory_mb: int = 2048
    prune: bool = False
    """Remove documents under the paths given whose files are gone or now ignored."""
    exclude: tuple[Path, ...] = ()
    """Folders never entered (the workspace's own home, with its database)."""


@dataclass
class IngestReport:
    """What a run did, file by file."""

    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    """Files that could not go in, each with its reason (the exit code says so)."""
    ignored: int = 0
    """Files of types Feldspar does not read (images, archives, binaries)."""
    chunks: int = 0
    """Chunks written in this run."""
    flagged: dict[str, int] = field(default_factory=dict)
    """Chunks the guard flagged, by risk (see the audit log for which)."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [asdict(s) for s in self.skipped]
        return data


Screen = Callable[[str, list[str]], list[tuple[str, ...]]]
"""Called with a document's path and its chunks' texts; returns each chunk's flagged risks
(the guard's document screening)."""

Progress = Callable[[str, str], None]
"""Called once per file with its path and what happened: added, updated, unchanged,
skipped, ignored."""


@dataclass
class _Pending:
    document: Document
    chunks: list[Chunk]
    status: str


def ingest(store: Store, embedder: Embedder, paths: Sequence[Path], collection: str,
           options: IngestOptions | None = None, *,
           on_file: Progress | None = None,
           on_total: Callable[[int], None] | None = None,
           screen: Screen | None = None) -> IngestReport:
    """Bring `collection` in step with the files under `paths`; `screen` flags chunks
    (prompt injection, secrets) before they are stored.

    Raises:
        EmbeddingMismatch: the collection holds vectors of another embedding model.
        UserError: a path does not exist.
        StoreError: the database could not be written (files already written are kept).
    """
    options = options or IngestOptions()
    began = time.monotonic()
    report = IngestReport(collection)
    _ensure_collection(store, embedder, collection)
    found: list[Found] = []
    for item in find_files(paths, options.exclude):
        if isinstance(item, Skipped):
            report.skipped.append(item)
        else:
            found.append(item)
    if on_total:
        on_total(len(found))
    notify = on_file or (lambda path, status: None)
    chunking = _fit(options.chunking, embedder)
    pending: list[_Pending] = []
    with ParserProcess(memory_mb=options.parse_memory_mb,
                       timeout=options.parse_timeout) as parser:
        for item in found:
            outcome = _prepare(store, parser, item, collection, options, embedder, chunking)
            if isinstance(outcome, _Pending):
                pending.append(outcome)
                if sum(len(p.chunks) for p in pending) >= EMBED_BATCH:
                    _write(store, embedder, pending, report, notify, screen)
            else:
                _note(report, str(item.path), outcome, notify)
        _write(store, embedder, pending, report, notify, screen)
    if options.prune:
        seen = {str(f.path) for f in found} | {s.path for s in report.skipped}
        report.removed = _prune(store, collection, paths, seen)
    if report.added or report.updated or report.removed:
        store.prepare_search(collection)
    report.seconds = time.monotonic() - began
    return report


def _note(report: IngestReport, path: str, outcome: Skipped | str, notify: Progress) -> None:
    """Count a file that was not written: unchanged, ignored or skipped."""
    if isinstance(outcome, Skipped):
        report.skipped.append(outcome)
        outcome = "skipped"
    elif outcome == "unchanged":
        report.unchanged.append(path)
    else:
        report.ignored += 1
    notify(path, outcome)


def _prune(store: Store, collection: str, paths: Sequence[Path], seen: set[str]
           ) -> list[str]:
    """Remove the documents under `paths` that this run did not see."""
    roots = [p.resolve() for p in paths]
    removed = []
    for document in store.documents(collection):
        path = Path(document.path)
        under = any(path == r or path.is_relative_to(r) for r in roots)
        if (under and document.path not in seen
                and store.remove_document(collection, document.path)):
            removed.append(document.path)
    return removed


def _ensure_collection(store: Store, embedder: Embedder, name: str) -> None:
    existing = store.collection(name)
    if existing is None:
        store.create_collection(name, embedder.spec.name, embedder.dimension)
    elif existing.embed_model != embedder.spec.name:
        raise EmbeddingMismatch(
            f"Collection '{name}' was embedded with '{existing.embed_model}', not "
            f"'{embedder.spec.name}'; vectors of two models cannot be mixed. Use "
            f"--embed-model {existing.embed_model}, or re-embed the collection with "
            f"'feldspar collections reembed {name} --embed-model {embedder.spec.name}'")


def _fit(options: ChunkOptions, embedder: Embedder) -> ChunkOptions:
    """Chunk options capped by what the embedder reads before it truncates."""
    most = embedder.max_tokens
    if options.max_tokens <= most:
        return options
    return ChunkOptions(max_tokens=most, overlap=min(options.overlap, most // 2 - 1))


def _prepare(store: Store, parser: ParserProcess, item: Found, collection: str,
             options: IngestOptions, embedder: Embedder,
             chunking: ChunkOptions) -> _Pending | Skipped | str:
    """A file parsed and chunked, or why not: "unchanged", "ignored" or a Skipped."""
    from feldspar.ingest.parsers import document_type

    path = str(item.path)
    try:
        stat = item.path.stat()
        if stat.st_size > options.max_file_bytes:
            return Skipped(path, f"larger than {options.max_file_bytes / 2**20:g} MB "
                                 "(max_file_mb)")
        with item.path.open("rb") as fh:
            head = fh.read(512)
        kind = document_type(item.path, head)
        if kind is None:
            return "ignored"
        digest = _sha256(item.path)
    except OSError as exc:
        return Skipped(path, f"unreadable: {exc.strerror or exc}")
    old = store.document(collection, path)
    if old is not None and old.content_hash == digest:
        return "unchanged"
    status = "added" if old is None else "updated"
    if stat.st_size <= len(head) and not head.strip():
        # An empty file (a bare __init__.py) is a document with no chunks, not an error.
        return _Pending(Document(collection=collection, path=path, content_hash=digest,
                                 size=stat.st_size, mtime=stat.st_mtime, type=kind), [], status)
    try:
        parsed, digest, size = parser.parse(item.path)
    except ParseFailed as exc:
        return Skipped(path, str(exc))
    chunks = chunk(parsed, embedder.token_spans, chunking)
    if not chunks:
        return Skipped(path, "no text")
    document = Document(collection=collection, path=path, content_hash=digest, size=size,
                        mtime=stat.st_mtime, type=parsed.type, language=parsed.language,
                        title=parsed.title)
    return _Pending(document, chunks, status)


def _write(store: Store, embedder: Embedder, pending: list[_Pending], report: IngestReport,
           notify: Progress, screen: Screen | None) -> None:
    """Embed the pending files' chunks together, then store each file in its own
    transaction."""
    if not pending:
        return
    vectors = embedder.embed([c.embed_text() for p in pending for c in p.chunks])
    offset = 0
    for item in pending:
        n = len(item.chunks)
        chunks = item.chunks
        if screen is not None:
            flags = screen(item.document.path, [c.text for c in chunks])
            chunks = [replace(c, flags=f) for c, f in zip(chunks, flags, strict=True)]
            for risk in (r for f in flags for r in f):
                report.flagged[risk] = report.flagged.get(risk, 0) + 1
        store.put_document(item.document, chunks, vectors[offset : offset + n])
        offset += n
        report.chunks += n
        (report.added if item.status == "added" else report.updated).append(
            item.document.path)
        notify(item.document.path, item.status)
    pending.clear()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reembed(store: Store, embedder: Embedder, collection: str, *,
            on_batch: Callable[[int], None] | None = None) -> int:
    """Embed every chunk of a collection again with `embedder` and switch the collection
    to it in one transaction; returns the number of chunks."""
    if store.collection(collection) is None:
        from feldspar.store.records import no_collection

        raise no_collection(collection)
    vectors: dict[int, np.ndarray] = {}
    for batch in store.iter_chunks(collection):
        embedded = embedder.embed([c.embed_text() for c in batch])
        vectors.update((c.id, embedded[i]) for i, c in enumerate(batch) if c.id is not None)
        if on_batch:
            on_batch(len(batch))
    store.replace_vectors(collection, embedder.spec.name, embedder.dimension, vectors)
    return len(vectors)
