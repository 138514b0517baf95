"""Embedding speed: all-MiniLM-L6-v2 through sentence-transformers, ONNX float32 and ONNX
int8 (the default), on chunks of SQuAD passages.

Same texts, thread count and batch size for each; rounds alternate the order so that the
shared machine's noise falls on all alike. Also reports how far the vectors move (cosine to
sentence-transformers) and, in fresh processes, how long loading the default embedder takes.

    python bench/embed_speed.py [--rounds 5] [--chunks 64] [--words 200] [--threads 2]
                                [--data ../shared/data/squad_v1_dev_subset_xquad_en]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from common import median, save
from feldspar.config import Settings
from feldspar.models.backends.onnx_embed import OnnxEmbedder
from feldspar.models.backends.sbert import SentenceTransformerEmbedder
from feldspar.models.base import Embedder
from feldspar.models.lookup import find_spec

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_v1_dev_subset_xquad_en"

LOAD = """
import sys, time
started = time.perf_counter()
from feldspar.config import Settings
from feldspar.models.lookup import find_spec
from feldspar.models.backends.{module} import {cls}
settings = Settings()
{cls}(find_spec("all-minilm-l6-v2", settings), settings).embed(["warm up"])
print(time.perf_counter() - started, "torch" in sys.modules)
"""


def chunks(data: Path, count: int, words: int) -> list[str]:
    """`count` chunks of `words` words, cut from the passages in order."""
    with (data / "passages.jsonl").open(encoding="utf-8") as f:
        text = " ".join(json.loads(line)["text"] for line in f)
    tokens = text.split()
    if len(tokens) < count * words:
        raise SystemExit(f"{data} has {len(tokens)} words, fewer than {count} x {words}")
    return [" ".join(tokens[i * words:(i + 1) * words]) for i in range(count)]


def speed(embedder: Embedder, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    embedder.embed(texts, batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started)


def load_seconds(module: str, cls: str, home: str, threads: int) -> tuple[float, bool]:
    """Seconds from a fresh interpreter to a first vector, and whether torch was imported."""
    env = {**os.environ, "FELDSPAR_HOME": home, "FELDSPAR_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", LOAD.format(module=module, cls=cls)],
                         capture_output=True, text=True, check=True, env=env)
    seconds, torch = out.stdout.split()
    return float(seconds), torch == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    texts = chunks(args.data, args.chunks, args.words)

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), threads=args.threads)
        spec = find_spec("all-minilm-l6-v2", settings)
        models: dict[str, Embedder] = {
            "sentence-transformers": SentenceTransformerEmbedder(spec, settings),
            "onnx-fp32": OnnxEmbedder(spec, settings, quantized=False),
            "onnx-int8": OnnxEmbedder(spec, settings),
        }
        build: dict[str, float] = {}
        for name, model in models.items():
            started = time.perf_counter()
            model.load()  # the onnx graphs are built and cached here
            build[name] = time.perf_counter() - started
        int8 = models["onnx-int8"]
        lengths = [min(len(int8.token_spans(t)), int8.max_tokens) + 2 for t in texts]

        vectors = {name: model.embed(texts) for name, model in models.items()}
        reference = vectors["sentence-transformers"]
        cosine = {name: np.sum(v * reference, axis=1) for name, v in vectors.items()}

        runners: dict[str, Callable[[], float]] = {
            name: partial(speed, model, texts, args.batch_size) for name, model in models.items()}
        speeds: dict[str, list[float]] = {name: [] for name in runners}
        for i in range(args.rounds):
            order = list(runners) if i % 2 == 0 else list(reversed(runners))
            for name in order:
                speeds[name].append(runners[name]())

        loads = {"sentence-transformers": load_seconds("sbert", "SentenceTransformerEmbedder",
                                                       home, args.threads),
                 "onnx-int8": load_seconds("onnx_embed", "OnnxEmbedder", home, args.threads)}

    med = {name: median(v) for name, v in speeds.items()}
    st = med["sentence-transformers"]
    result = {
        "model": spec.name, "threads": args.threads, "rounds": args.rounds,
        "chunks": args.chunks, "words_per_chunk": args.words, "batch_size": args.batch_size,
        "data": str(args.data), "mean_tokens_per_chunk": float(np.mean(lengths)),
        "chunks_per_s": speeds, "median_chunks_per_s": med,
        "ratio_to_sentence_transformers": {name: v / st for name, v in med.items()},
        "cosine_to_sentence_transformers": {
            name: {"mean": float(c.mean()), "min": float(c.min())}
            for name, c in cosine.items() if name != "sentence-transformers"},
        "first_load_s": build,
        "fresh_process_first_vector_s": {name: {"seconds": s, "imports_torch": torch}
                                         for name, (s, torch) in loads.items()},
    }
    save("embed_speed", result)
    print(json.dumps({k: result[k] for k in (
        "mean_tokens_per_chunk", "median_chunks_per_s", "ratio_to_sentence_transformers",
        "cosine_to_sentence_transformers", "first_load_s", "fresh_process_first_vector_s")},
        indent=2))


if __name__ == "__main__":
    main()
