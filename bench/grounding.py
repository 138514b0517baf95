"""Groundedness detector on the held-out test part of BEGIN, WiCE and ExpertQA (the groups
that bench/train_grounding.py never trains on), and its speed on this CPU.

Quality: `GroundednessDetector().check(context, response).score` with the packaged weights,
as a user gets it. BEGIN: ROC AUC over responses. WiCE: balanced accuracy per claim (its
highest score over the annotators' evidence chunks) at the packaged threshold. ExpertQA:
balanced accuracy per claim. Speed: check() on 5 SQuAD passages of about 200 words and a
3-sentence response, milliseconds per response sentence.

    python bench/grounding.py [--data ../shared/data] [--rounds 60]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import save
from train_grounding import DEFAULT_DATA, SETS, TEST_SHARE, balanced_accuracy, load, per_unit

TARGETS = {"begin roc_auc": 0.80, "wice balanced_accuracy": 0.72}


def quality(data: Path) -> dict[str, dict[str, float]]:
    from feldspar.grounding import GroundednessDetector

    detector = GroundednessDetector()
    examples = [ex for ex in load(data) if ex.test]
    began = time.perf_counter()
    scores = np.array([detector.check(list(ex.passages), ex.claim).score for ex in examples])
    print(f"{len(examples)} test examples scored in {time.perf_counter() - began:.0f} s",
          file=sys.stderr)
    labels = np.array([ex.label for ex in examples])
    from sklearn.metrics import roc_auc_score

    report = {}
    for name in SETS:
        mask = np.array([ex.dataset == name for ex in examples])
        y, s = per_unit([ex for ex, m in zip(examples, mask, strict=True) if m], labels[mask],
                        scores[mask])
        report[name] = {"roc_auc": float(roc_auc_score(y, s)),
                        "balanced_accuracy": balanced_accuracy(y, s >= detector.threshold),
                        "units": len(y), "positives": int(y.sum()),
                        "rows": int(mask.sum())}
    return report


def latency(data: Path, rounds: int) -> dict[str, float]:
    import json

    from feldspar.grounding import GroundednessDetector
    from feldspar.grounding.sentences import split_sentences

    with (data / "squad_v1_dev_subset_xquad_en" / "passages.jsonl").open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    passages = [" ".join(t.split()[:200]) for t in texts if len(t.split()) >= 150]
    detector = GroundednessDetector()
    rng = random.Random(0)
    timings = []
    for n in range(rounds + 3):
        context = rng.sample(passages, 5)
        # Two sentences from the context (one of them reworded a little) and one from elsewhere.
        own = [context[i][a:b] for i in (0, 2) for a, b in split_sentences(context[i])[:1]]
        other = rng.choice([p for p in passages if p not in context])
        a, b = split_sentences(other)[0]
        response = f"{own[0]} {own[1].replace(' the ', ' this ', 1)} {other[a:b]}"
        began = time.perf_counter()
        report = detector.check(context, response)
        elapsed = (time.perf_counter() - began) * 1000 / len(report.sentences)
        if n >= 3:  # the first calls warm up the model
            timings.append(elapsed)
    timings.sort()
    return {"p50_ms_per_sentence": statistics.median(timings),
            "p95_ms_per_sentence": timings[int(0.95 * (len(timings) - 1))],
            "rounds": rounds, "passages": 5, "words_per_passage": 200,
            "response_sentences": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("FELDSPAR_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    scores = quality(args.data)
    speed = latency(args.data, args.rounds)
    print(f"\n{'set':<10} {'units':>6} {'ROC AUC':>8} {'bal. acc.':>10}")
    for name, m in scores.items():
        print(f"{name:<10} {m['units']:>6} {m['roc_auc']:>8.3f} {m['balanced_accuracy']:>10.3f}")
    print(f"\ncheck(): p50 {speed['p50_ms_per_sentence']:.1f} ms, "
          f"p95 {speed['p95_ms_per_sentence']:.1f} ms per sentence "
          f"(5 passages of 200 words, 3-sentence responses, {os.cpu_count()} cores)")
    for key, target in TARGETS.items():
        name, metric = key.split()
        value = scores[name][metric]
        print(f"target {key} >= {target}: {value:.3f} {'met' if value >= target else 'MISSED'}")
    print(save("grounding", {"test_share_percent": TEST_SHARE, "quality": scores, "latency": speed,
                             "targets": TARGETS}))


if __name__ == "__main__":
    main()
