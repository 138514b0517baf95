"""Hybrid search: how the two lists are fused, filters, and bad queries."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from feldspar.errors import UserError
from feldspar.models.testing import HashEmbedder
from feldspar.retrieve import search
from feldspar.retrieve.searching import _reciprocal_rank, _relative_score
from feldspar.store import SqliteStore
from tests.store_contract import chunks, doc


def test_relative_score_keeps_the_gaps_that_ranks_lose() -> None:
    # BM25 is sure of chunk 1 (a wide gap); the vectors barely prefer 2 over 1.
    found = {"lexical": [(1, 12.0), (2, 2.0), (3, 1.0)],
             "dense": [(2, 0.80), (1, 0.79), (3, 0.10)]}
    relative = _relative_score(found, {"lexical": 0.5, "dense": 0.5})
    assert max(relative, key=relative.__getitem__) == 1
    assert relative[1] == pytest.approx(0.5 * 1.0 + 0.5 * (0.69 / 0.70))
    assert relative[3] == pytest.approx(0.5 * (1.0 / 12.0))  # BM25 scales from 0, not min
    ranks = _reciprocal_rank(found)
    assert ranks[1] == ranks[2]  # RRF sees a tie: first once, second once


def test_relative_score_handles_a_single_or_flat_list() -> None:
    assert _relative_score({"lexical": [(7, 3.0)], "dense": []},
                           {"lexical": 0.5, "dense": 0.5}) == {7: 0.5}
    flat = _relative_score({"dense": [(1, 0.5), (2, 0.5)]}, {"dense": 1.0})
    assert flat == {1: 1.0, 2: 1.0}
    two = _relative_score({"lexical": [(1, 4.0), (2, 3.0)]}, {"lexical": 1.0})
    assert two == {1: 1.0, 2: 0.75}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "f.db")
    embedder = HashEmbedder()
    s.create_collection("docs", embedder.spec.name, 16)
    texts = ["the quick brown fox", "a lazy dog sleeps", "foxes and dogs"]
    s.put_document(doc("/a.md", doc_type="markdown"), chunks(*texts[:2]),
                   embedder.embed(texts[:2]))
    s.put_document(doc("/b.txt"), chunks(texts[2]), embedder.embed(texts[2:]))
    yield s
    s.close()


@pytest.mark.parametrize("fusion", ["relative", "rrf"])
def test_hybrid_finds_exact_words_and_exact_vectors(store: SqliteStore, fusion: str) -> None:
    # HashEmbedder gives equal texts equal vectors: the dense list's top is exact.
    hits = search(store, HashEmbedder(), "docs", "a lazy dog sleeps", k=3,
                  fusion=fusion)  # type: ignore[arg-type]
    assert hits[0].chunk.text == "a lazy dog sleeps"
    assert set(hits[0].scores) == {"lexical", "dense"}
    assert hits[0].scores["dense"] == pytest.approx(1.0, abs=1e-5)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_modes_and_filters(store: SqliteStore) -> None:
    from feldspar.store import Where

    lexical = search(store, None, "docs", "fox", mode="lexical")
    assert [h.chunk.text for h in lexical] == ["the quick brown fox"]
    assert set(lexical[0].scores) == {"lexical"}
    only_b = search(store, HashEmbedder(), "docs", "dogs", where=Where(path="*.txt"))
    assert {h.chunk.path for h in only_b} == {"/b.txt"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"query": "  "}, "The query is empty"),
    ({"query": "x", "k": 0}, "k must be at least 1"),
    ({"query": "x", "mode": "fuzzy"}, "Unknown search mode 'fuzzy'"),
])
def test_bad_queries_are_user_errors(store: SqliteStore, kwargs: dict[str, object],
                                     message: str) -> None:
    with pytest.raises(UserError, match=message):
        search(store, HashEmbedder(), "docs", **kwargs)  # type: ignore[arg-type]


def test_dense_search_without_an_embedder_is_a_user_error(store: SqliteStore) -> None:
    with pytest.raises(UserError, match="need an embedding model"):
        search(store, None, "docs", "fox", mode="dense")
