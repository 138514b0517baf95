"""Vector search over a collection: exact (numpy) when small, HNSW (usearch) when large.

SQLite holds every vector and stays the source of truth. These indexes are derived from
it: built on first use, kept in step by comparing ids with the database, and for HNSW saved
beside the database with the collection version they reflect, so a stale or damaged file
is repaired on open rather than trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

# Exact search costs ~0.1 ms per 1k vectors here; past this size HNSW is worth building.
HNSW_THRESHOLD = 50_000

class VectorSource(Protocol):
    """Where an index reads a collection's vectors from (the store)."""

    def ids(self) -> np.ndarray:
        """Every chunk id of the collection, sorted."""
        ...

    def vectors(self, ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for the given ids, or for every chunk when None."""
        ...


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest scores, best first."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


@dataclass
class ExactIndex:
    """Every vector in one matrix; a query is one matrix-vector product."""

    ids: np.ndarray
    matrix: np.ndarray

    @classmethod
    def build(cls, source: VectorSource) -> ExactIndex:
        ids, matrix = source.vectors()
        return cls(ids, matrix)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        scores = self.matrix @ vector
        if allowed is not None:
            scores = np.where(np.isin(self.ids, allowed), scores, -np.inf)
        best = [i for i in top_k(scores, k) if np.isfinite(scores[i])]
        return [(int(self.ids[i]), float(scores[i])) for i in best]


class HnswIndex:
    """An approximate nearest-neighbour graph (usearch), saved beside the database."""

    CONNECTIVITY = 16
    EXPANSION_ADD = 128
    EXPANSION_SEARCH = 256

    def __init__(self, path: Path, dimension: int) -> None:
        with contextlib.suppress(ImportError):
            # usearch 2.26's compiled module makes a later import of onnxruntime (the
            # default embedder) crash the process; imported first, both work.
            import onnxruntime  # type: ignore[import-untyped]  # noqa: F401
        from usearch.index import Index

        self.path = path
        self.dimension = dimension
        self.version = -1
        # Half precision: half the memory, a faster build, recall@10 0.999 against f32's
        # 1.000 at 100k (bench/search_latency.py); exact vectors stay in SQLite.
        self._index: Any = Index(ndim=dimension, metric="ip", dtype="f16",
                                 connectivity=self.CONNECTIVITY,
                                 expansion_add=self.EXPANSION_ADD,
                                 expansion_search=self.EXPANSION_SEARCH)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def _meta_path(self) -> Path:
        return self.path.with_suffix(".json")

    @classmethod
    def open(cls, path: Path, dimension: int, version: int, source: VectorSource) -> HnswIndex:
        """Load the saved index and bring it in step with the database."""
        index = cls(path, dimension)
        try:
            meta = json.loads(index._meta_path.read_text())
            if meta.get("dimension") == dimension and path.is_file():
                index._index.load(str(path))
                index._index.expansion_search = cls.EXPANSION_SEARCH  # not the file's
                index.version = int(meta["version"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            logger.info("Rebuilding vector index %s (%s)", path, exc)
            index = cls(path, dimension)
        if index.version != version:
            index.sync(source, version)
        return index

    def keys(self) -> np.ndarray:
        if len(self._index) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._index.keys[0 : len(self._index)], dtype=np.int64)

    def sync(self, source: VectorSource, version: int) -> None:
        """Add the database's vectors that the index lacks and drop the ones it no longer
        has, then save."""
        db_ids = source.ids()
        have = self.keys()
        stale = np.setdiff1d(have, db_ids, assume_unique=True)
        missing = np.setdiff1d(db_ids, have, assume_unique=True)
        if len(stale):
            self._index.remove(stale.astype(np.uint64))
        for start in range(0, len(missing), 50_000):
            ids, vectors = source.vectors(missing[start : start + 50_000].tolist())
            self._index.add(ids.astype(np.uint64), vectors, log=False)
        self.version = version
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        self._index.save(str(tmp))
        os.replace(tmp, self.path)
        meta = {"version": self.version, "dimension": self.dimension, "count": len(self)}
        tmp_meta = self._meta_path.with_suffix(".json.tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self._meta_path)

    def search(self, vector: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if len(self._index) == 0:
            return []
        want = k if allowed is None else k * 10
        matches = self._index.search(vector, min(want, len(self._index)))
        found = [(int(key), 1.0 - float(d))
                 for key, d in zip(matches.keys, matches.distances, strict=True)]
        if allowed is not None:
            keep = set(allowed.tolist())
            found = [pair for pair in found if pair[0] in keep]
        return found[:k]
