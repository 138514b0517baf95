"""Hybrid top-10 query latency at 10k, 100k and 1M chunks, and the vector part's recall@10
against exact search, on a synthetic corpus (clustered 384-d vectors, Zipf-distributed
words) stored in Feldspar's SQLite store.

Query embedding is left out (it is the same at every size): each query's vector is made
with the corpus. Medians and p95 over --queries queries, after one warm-up query.

    python bench/search_latency.py [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import save

DIM = 384
PER_DOCUMENT = 1000


class QueryVectors:
    """Stands in for the embedder: returns each query's precomputed vector."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        from feldspar.models.testing import HashEmbedder

        self.spec = HashEmbedder().spec
        self.vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def corpus(n: int, rng: np.random.Generator, vocab: list[str], centers: np.ndarray
           ) -> tuple[list[str], np.ndarray]:
    labels = rng.integers(0, len(centers), n)
    vectors = centers[labels] + rng.normal(scale=0.6 / np.sqrt(DIM), size=(n, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ranks = np.minimum(rng.zipf(1.3, size=(n, 30)), len(vocab)) - 1
    texts = [" ".join(vocab[i] for i in row) for row in ranks]
    return texts, vectors


def build(store_path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    from feldspar.store import Chunk, Document, SqliteStore

    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(50_000)]
    centers = rng.normal(size=(2000, DIM))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    store = SqliteStore(store_path)
    store.create_collection("bench", "hash", DIM)
    all_vectors = []
    for d in range(0, n, PER_DOCUMENT):
        m = min(PER_DOCUMENT, n - d)
        texts, vectors = corpus(m, rng, vocab, centers)
        chunks = [Chunk(text=t, start=0, end=len(t), line_start=1, line_end=1) for t in texts]
        store.put_document(Document("bench", f"/synthetic/{d}.txt", str(d), 0, 0.0, "text"),
                           chunks, vectors)
        all_vectors.append(vectors)
    store.close()
    queries = [" ".join(rng.choice(vocab[:5000], 4)) for _ in range(1000)]
    return np.concatenate(all_vectors), queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    from feldspar.retrieve import search
    from feldspar.store import SqliteStore

    results = {}
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "feldspar.db"
            began = time.perf_counter()
            vectors, texts = build(path, n)
            built = time.perf_counter() - began
            rng = np.random.default_rng(1)
            picks = rng.integers(0, n, args.queries + 1)
            noise = rng.normal(scale=0.3 / np.sqrt(DIM), size=(len(picks), DIM))
            qv = vectors[picks] + noise
            qv = (qv / np.linalg.norm(qv, axis=1, keepdims=True)).astype(np.float32)
            queries = {texts[i]: qv[i] for i in range(len(picks))}
            store = SqliteStore(path)
            embedder = QueryVectors(queries)
            began = time.perf_counter()
            store.dense_search("bench", qv[0], 10)  # builds or loads the vector index
            index_s = time.perf_counter() - began
            ids = np.arange(1, n + 1)  # chunk ids follow insertion order from 1
            # Each kind of query is timed in its own loop: the exact search that measures
            # recall sweeps every vector through the CPU caches, and a query timed right
            # after it would pay for that.
            latencies, dense_ms, recalls = [], [], []
            for text in list(queries)[1:]:
                began = time.perf_counter()
                search(store, embedder, "bench", text, k=10)  # type: ignore[arg-type]
                latencies.append((time.perf_counter() - began) * 1000)
            for vector in list(queries.values())[1:]:
                began = time.perf_counter()
                store.dense_search("bench", vector, 10)
                dense_ms.append((time.perf_counter() - began) * 1000)
            for vector in list(queries.values())[1:]:
                found = store.dense_search("bench", vector, 10)
                exact = set(ids[np.argpartition(-(vectors @ vector), 10)[:10]].tolist())
                recalls.append(len(exact & {i for i, _ in found}) / 10)
            lexical_ms = []
            for text in list(queries)[1:]:
                began = time.perf_counter()
                store.lexical_search("bench", text, 50)
                lexical_ms.append((time.perf_counter() - began) * 1000)
            store.close()
            row = {"build_s": built, "index_s": index_s,
                   "hybrid_p50_ms": float(np.percentile(latencies, 50)),
                   "hybrid_p95_ms": float(np.percentile(latencies, 95)),
                   "dense_p50_ms": float(np.percentile(dense_ms, 50)),
                   "lexical_p50_ms": float(np.percentile(lexical_ms, 50)),
                   "dense_recall@10": float(np.mean(recalls)),
                   "db_mb": path.stat().st_size / 2**20}
            results[n] = row
            print(f"{n:>8}: {row}", file=sys.stderr, flush=True)
    print(f"\n{'chunks':>8} {'hybrid p50':>11} {'p95':>8} {'dense p50':>10} "
          f"{'lexical p50':>12} {'recall@10':>10} {'index s':>8}")
    for n, r in results.items():
        print(f"{n:>8} {r['hybrid_p50_ms']:>9.1f}ms {r['hybrid_p95_ms']:>6.1f}ms "
              f"{r['dense_p50_ms']:>8.2f}ms {r['lexical_p50_ms']:>10.2f}ms "
              f"{r['dense_recall@10']:>10.3f} {r['index_s']:>8.1f}")
    print(save("search_latency", {"queries": args.queries, "results": results}))


if __name__ == "__main__":
    main()
