"""The workspace: one store in FELDSPAR_HOME, and the operations on documents that the CLI,
the server and library users share.

Example:
    >>> from feldspar import Workspace
    >>> from feldspar.models.testing import HashEmbedder
    >>> ws = Workspace(embedder=HashEmbedder())
    >>> [c.name for c in ws.collections()]
    []
    >>> ws.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from feldspar.config import Settings, load_settings
from feldspar.errors import UserError
from feldspar.store.records import Chunk, Collection, Document, Hit, Where, no_collection

if TYPE_CHECKING:
    from feldspar.classify.classifier import Classifier
    from feldspar.datatypes import Message
    from feldspar.grounding.detector import GroundednessDetector
    from feldspar.guard.screen import Guard
    from feldspar.ingest.pipeline import IngestReport, Progress
    from feldspar.models.base import ChatModel, Embedder, GenerationOptions
    from feldspar.rag.answer import Answer
    from feldspar.rag.answering import AnswerStream
    from feldspar.retrieve.searching import Mode, Reranker
    from feldspar.store.base import Store

DATABASE = "feldspar.db"


class Workspace:
    """Collections of documents in one store, searched with one embedding model.

    Args:
        settings: defaults for the collection, chunk sizes and limits.
        store: where documents live (default: PostgreSQL at settings.database_url if set,
            else SQLite at FELDSPAR_HOME/feldspar.db).
        embedder: the embedding model (default: settings.embed_model, loaded on first use).
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, embed_model: str | None = None) -> None:
        self.settings = settings or load_settings()
        if store is None and self.settings.database_url is not None:
            from feldspar.store.postgres import PostgresStore

            store = PostgresStore(self.settings.database_url.get_secret_value())
        elif store is None:
            from feldspar.store.sqlite import SqliteStore

            store = SqliteStore(self.settings.home / DATABASE)
        self.store: Store = store
        self._embedder = embedder
        self._embed_model = embed_model
        self._reranker: Reranker | None = None
        self._grounding: GroundednessDetector | None = None
        self._guard: Guard | None = None

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded when first needed."""
        if self._embedder is None:
            from feldspar.models.loading import get_embedder

            self._embedder = get_embedder(self._embed_model, settings=self.settings)
        return self._embedder

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def _name(self, collection: str | None) -> str:
        return collection or self.settings.collection

    # Documents in

    def ingest(self, paths: Sequence[str | Path], collection: str | None = None, *,
               prune: bool = False, on_file: Progress | None = None,
               on_total: Callable[[int], None] | None = None) -> IngestReport:
        """Add, update (and with `prune`, remove) the documents under `paths`."""
        from feldspar.ingest.chunking import ChunkOptions
        from feldspar.ingest.pipeline import IngestOptions, ingest

        s = self.settings
        options = IngestOptions(
            chunking=ChunkOptions(s.chunk_tokens, s.chunk_overlap),
            max_file_bytes=int(s.max_file_mb * 1024 * 1024), parse_timeout=s.parse_timeout,
            parse_memory_mb=s.parse_memory_mb, prune=prune, exclude=(s.home,))
        screen = None
        if s.guard and s.guard_policy.get("document"):
            screen = self.guard.screen_document
        return ingest(self.store, self.embedder, [Path(p).expanduser() for p in paths],
                      self._name(collection), options, on_file=on_file, on_total=on_total,
                      screen=screen)

    def reembed(self, collection: str | None = None, *,
                on_batch: Callable[[int], None] | None = None) -> int:
        """Embed a collection again with this workspace's embedder; returns the chunks."""
        from feldspar.ingest.pipeline import reembed

        return reembed(self.store, self.embedder, self._name(collection), on_batch=on_batch)

    # Search

    def search(self, query: str, *, k: int = 10, collection: str | None = None,
               mode: Mode = "hybrid", where: Where | None = None) -> list[Hit]:
        """The `k` best chunks for `query` (see `feldspar.retrieve.search`)."""
        from feldspar.retrieve.searching import search

        name = self._name(collection)
        if self.store.collection(name) is None:
            raise UserError(f"No collection named '{name}'; ingest some files first: "
                            f"feldspar ingest PATH --collection {name}")
        # Lexical search needs no model: don't load one.
        embedder = self.embedder if mode != "lexical" else None
        return search(self.store, embedder, name, query, k=k, mode=mode, where=where,
                      reranker=self.reranker, fusion=self.settings.hybrid_fusion,
                      dense_weight=self.settings.hybrid_dense_weight)

    @property
    def reranker(self) -> Reranker | None:
        """The cross-encoder named by settings.rerank_model, if any."""
        if self._reranker is None and self.settings.rerank_model:
            from feldspar.retrieve.reranking import CrossEncoderReranker

            self._reranker = CrossEncoderReranker(self.settings.rerank_model, self.settings)
        return self._reranker

    # Answers

    def ask(self, question: str, *, collection: str | None = None,
            model: str | ChatModel | None = None,
            history: Sequence[Message] = (), k: int | None = None, where: Where | None = None,
            options: GenerationOptions | None = None) -> Answer:
        """Answer `question` from a collection's documents, with checked citations.

        `history` is the conversation so far (user and assistant messages): a follow-up
        question is rewritten into a standalone one before searching. The answer abstains
        (`Answer.abstained`) when no chunk is relevant enough or the model's answer is not
        supported by the sources. See `feldspar.rag`.
        """
        return self.ask_stream(question, collection=collection, model=model, history=history,
                               k=k, where=where, options=options).result()

    def ask_stream(self, question: str, *, collection: str | None = None,
                   model: str | ChatModel | None = None, history: Sequence[Message] = (),
                   k: int | None = None, where: Where | None = None,
                   options: GenerationOptions | None = None) -> AnswerStream:
        """`ask`, streamed: iterate for the text, then call `.result()` for the `Answer`."""
        from feldspar.rag.answering import ask_stream

        return ask_stream(self, question, collection=collection, model=model,
                          history=history, k=k, where=where, options=options)

    @property
    def grounding(self) -> GroundednessDetector:
        """The groundedness detector that checks answers (on this workspace's embedder)."""
        if self._grounding is None:
            from feldspar.grounding.detector import GroundednessDetector

            self._grounding = GroundednessDetector(self.embedder, settings=self.settings)
        return self._grounding

    @property
    def guard(self) -> Guard:
        """The guard, with this workspace's policy and audit log (see `feldspar.guard`)."""
        if self._guard is None:
            from feldspar.guard.screen import Guard

            self._guard = Guard(self.settings, store=self.store)
        return self._guard

    # Classification

    def classifier(self, labelset: str) -> Classifier:
        """A label set's student, teacher and cascade (see `feldspar.classify`)."""
        from feldspar.classify.classifier import Classifier

        return Classifier(self, labelset)

    # Collections and documents

    def collections(self) -> list[Collection]:
        return self.store.collections()

    def collection(self, name: str | None = None) -> Collection:
        found = self.store.collection(self._name(name))
        if found is None:
            raise no_collection(self._name(name))
        return found

    def delete_collection(self, name: str) -> None:
        if not self.store.delete_collection(name):
            raise no_collection(name)

    def documents(self, collection: str | None = None,
                  where: Where | None = None) -> list[Document]:
        return self.store.documents(self._name(collection), where)

    def document(self, path: str | Path, collection: str | None = None
                 ) -> tuple[Document, list[Chunk]]:
        """A document and its chunks, by path (as given or as stored)."""
        name = self._name(collection)
        key = self._key(path, name)
        found = self.store.document(name, key)
        if found is None:
            raise UserError(f"No document '{path}' in collection '{name}'; see "
                            f"'feldspar documents list --collection {name}'")
        return found, self.store.document_chunks(name, key)

    def remove_document(self, path: str | Path, collection: str | None = None) -> str:
        """Remove a document; returns the stored path removed."""
        name = self._name(collection)
        key = self._key(path, name)
        if not self.store.remove_document(name, key):
            raise UserError(f"No document '{path}' in collection '{name}'; see "
                            f"'feldspar documents list --collection {name}'")
        return key

    def _key(self, path: str | Path, collection: str) -> str:
        """The stored path for a path as a user typed it (relative, or through a link)."""
        text = str(path)
        if self.store.document(collection, text) is not None:
            return text
        return str(Path(text).expanduser().resolve())

