"""Store: documents, chunks, vectors and a full-text index, behind one interface."""

from feldspar.store.base import Store
from feldspar.store.records import Chunk, Collection, Document, Hit, Where
from feldspar.store.sqlite import SqliteStore

__all__ = ["Chunk", "Collection", "Document", "Hit", "SqliteStore", "Store", "Where"]
