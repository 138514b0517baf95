"""How well `ask`'s relevance check tells answerable questions from unanswerable ones.

Half of the articles of SQuAD (English) and PIAF (French) are ingested (by a hash of the
title); 400 seeded questions are searched, and a question is answerable when its gold
passage was ingested. Reported: ROC AUC of the best chunk's cosine alone and of the
relevance `ask` uses (cosine + share of the question's content words in the chunk), and
at the `rag_min_relevance` threshold, the share of answerable questions let through and
of unanswerable ones stopped.

    python bench/relevance.py [--data ../shared/data] [--questions 400]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np

from common import save
from retrieval import DATASETS, DEFAULT_DATA, load, write_corpus


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC: the chance that a random positive outscores a random negative."""
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((wins + 0.5 * ties) / (len(positive) * len(negative)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FELDSPAR_HOME"] = str(Path(tmp) / "home")
        from feldspar import Workspace
        from feldspar.rag.answering import relevance

        ws = Workspace()
        threshold = ws.settings.rag_min_relevance
        for name in DATASETS:
            passages, questions = load(args.data / name)
            kept = [p for p in passages
                    if int(hashlib.sha256(p["title"].encode()).hexdigest()[:8], 16) % 2 == 0]
            ingested = {p["passage_id"] for p in kept}
            ws.ingest([write_corpus(kept, Path(tmp) / name)], collection=name)
            rows = []
            for q in random.Random(0).sample(questions, args.questions):
                hits = ws.search(q["question"], k=ws.settings.rag_top_k, collection=name)
                cosine = max(h.scores.get("dense", 0.0) for h in hits)
                best = max(relevance(q["question"], h) for h in hits)
                rows.append((q["passage_id"] in ingested, cosine, best))
            answerable = np.array([r[0] for r in rows])
            cosine, best = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
            results[name] = {
                "answerable": int(answerable.sum()), "unanswerable": int((~answerable).sum()),
                "auc_cosine": auc(cosine[answerable], cosine[~answerable]),
                "auc_relevance": auc(best[answerable], best[~answerable]),
                "threshold": threshold,
                "answerable_let_through": float((best[answerable] >= threshold).mean()),
                "unanswerable_stopped": float((best[~answerable] < threshold).mean()),
            }
            r = results[name]
            print(f"{name}: AUC cosine {r['auc_cosine']:.3f}, relevance "
                  f"{r['auc_relevance']:.3f}; at {threshold}: answerable let through "
                  f"{r['answerable_let_through']:.3f}, unanswerable stopped "
                  f"{r['unanswerable_stopped']:.3f}")
        ws.close()
    save("relevance", {"questions": args.questions, "results": results})


if __name__ == "__main__":
    main()
