"""Guard classifier speed on this CPU: latency of one ~50-word prompt, batch throughput over
the held-out test texts, and a 1 MB text; with --options, the same for each candidate
feature set alone (MiniLM, static embeddings, n-grams, static + n-grams).

Latency: GuardClassifier.score([prompt]) for each of the test split's prompts of 40-60
words in turn (one call per prompt, as a server screens a request), after 20 warm-up
calls; p50 and p95 over >= 200 calls, and how many of them went to MiniLM. Throughput:
score() over all test texts in batches of --batch.

    python bench/guard_speed.py [--data ../shared/data] [--runs 400] [--batch 64] [--options]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import guard_data as gd
from common import save
from feldspar.guard.classifier import LONG, GuardClassifier, ngram_features, pieces

FILLER = "The quarterly report lists revenue, costs and the hiring plan of each team in the area."


def fifty_word_prompts(data: Path) -> list[str]:
    test = [ex.text for ex in gd.examples(data) if ex.test]
    return [t for t in test if 40 <= len(t.split()) <= 60]


def percentiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"p50_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))], "calls": len(times)}


def latency(score: Callable[[list[str]], Any], prompts: Sequence[str], runs: int,
            escalated: Callable[[], int] | None = None) -> dict[str, Any]:
    for prompt in prompts[:20]:
        score([prompt])
    times, slow, fast = [], [], []
    for n in range(runs):
        prompt = prompts[n % len(prompts)]
        before = escalated() if escalated else 0
        began = time.perf_counter()
        score([prompt])
        elapsed = time.perf_counter() - began
        times.append(elapsed)
        (slow if escalated and escalated() > before else fast).append(elapsed)
    out = percentiles(times)
    if escalated:
        out["escalated_share"] = len(slow) / len(times)
        out["fast_path"] = percentiles(fast) if fast else None
        out["escalated_path"] = percentiles(slow) if slow else None
    return out


def throughput(score: Callable[[list[str]], Any], texts: Sequence[str], batch: int
               ) -> float:
    score(list(texts[:batch]))  # warm up
    began = time.perf_counter()
    for i in range(0, len(texts), batch):
        score(list(texts[i:i + batch]))
    return len(texts) / (time.perf_counter() - began)


def long_text(classifier: GuardClassifier) -> dict[str, Any]:
    words = FILLER.split()
    text = " ".join(words[i % len(words)] for i in range(180_000))[:1_000_000]
    tracemalloc.start()
    began = time.perf_counter()
    classifier.score([text])
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"chars": len(text), "seconds": elapsed, "peak_python_mb": peak / 1e6}


class Alone:
    """Each feature set of the classifier alone on the runtime's windows (the head's
    product included), for the comparison of options; the packaged classifier is option
    (d), static + n-grams, timed by main()."""

    def __init__(self, classifier: GuardClassifier) -> None:
        self.c = classifier
        self.w = classifier.weights

    def pieces(self, texts: list[str]) -> list[tuple[str, np.ndarray, int]]:
        return [(text[a:b], ids, scale) for text in texts
                for a, b, ids, scale in pieces(text, self.c.tokenizer, self.w.config)]

    def minilm(self, texts: list[str]) -> None:
        long = [p[0] for p in self.pieces(texts) if p[2] == LONG]
        if long:
            self.c._minilm().embed(long, batch_size=64) @ self.w.slow_coef[:384]

    def static(self, texts: list[str]) -> None:
        w = self.w
        for _, ids, _ in self.pieces(texts):
            vector = (w.norm_table[ids].astype(np.float32) * w.norm_scale[ids, None]).sum(0)
            w.token_scores[ids].sum(0) / max(float(np.sqrt(vector @ vector)), 1e-9)

    def ngram(self, texts: list[str]) -> None:
        for text, _, _ in self.pieces(texts):
            index, values = ngram_features(text, self.w.config)
            values @ self.w.ngram_weights[index]


def options(classifier: GuardClassifier, prompts: Sequence[str], texts: Sequence[str],
            runs: int, batch: int) -> dict[str, Any]:
    alone = Alone(classifier)
    out = {}
    for name, fn in (("a_minilm", alone.minilm), ("b_static", alone.static),
                     ("c_ngram", alone.ngram)):
        out[name] = {"latency": latency(fn, prompts, runs),
                     "prompts_per_s": throughput(fn, texts, batch)}
        print(f"{name:16s} p50 {out[name]['latency']['p50_ms']:.2f} ms  "
              f"{out[name]['prompts_per_s']:.0f} prompts/s", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=gd.DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--options", action="store_true",
                        help="Also time each feature set alone.")
    args = parser.parse_args()

    began = time.perf_counter()
    classifier = GuardClassifier.load()
    load_s = time.perf_counter() - began
    prompts = fifty_word_prompts(args.data)
    texts = [ex.text for ex in gd.examples(args.data) if ex.test]
    classifier.score(["warm up the embedder with " + p for p in prompts[:8]])
    result: dict[str, Any] = {"load_seconds": load_s, "prompts": len(prompts),
                              "prompt_words_mean": float(np.mean([len(p.split())
                                                                  for p in prompts]))}
    result["latency"] = latency(classifier.score, prompts, args.runs,
                                lambda: classifier.escalated)
    start = classifier.escalated
    result["throughput"] = {"prompts_per_s": throughput(classifier.score, texts, args.batch),
                            "texts": len(texts), "batch": args.batch,
                            "escalated_windows": classifier.escalated - start}
    short = [t for t in texts if len(t.split()) <= 60]
    result["throughput_short"] = {"prompts_per_s": throughput(classifier.score, short,
                                                              args.batch),
                                  "texts": len(short)}
    result["one_megabyte"] = long_text(classifier)
    lat = result["latency"]
    print(f"latency p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms over "
          f"{lat['calls']} calls ({lat['escalated_share']:.0%} escalated to MiniLM); "
          f"throughput {result['throughput']['prompts_per_s']:.0f} prompts/s over "
          f"{len(texts)} test texts, {result['throughput_short']['prompts_per_s']:.0f}/s over "
          f"{len(short)} of <= 60 words; 1 MB text {result['one_megabyte']['seconds']:.1f} s")
    if args.options:
        result["options"] = options(classifier, prompts, texts, args.runs, args.batch)
    print(save("guard_speed", result))


if __name__ == "__main__":
    main()
