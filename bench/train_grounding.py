"""Train the groundedness scorer (src/feldspar/grounding/weights.json) on the train part of
BEGIN, WiCE and ExpertQA; choose its threshold by cross-validation on that part alone.

The held-out test part (about 30%, by a hash of each example's group: BEGIN's knowledge
text, WiCE's claim, ExpertQA's question) is never read here; bench/grounding.py scores it.
scikit-learn is used here only; the packaged detector evaluates the weights with numpy.

    python bench/train_grounding.py [--data ../shared/data] [--model trees|logistic|mlp] [--compare]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import save

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEST_SHARE = 30  # percent of groups held out
SETS = ("begin", "wice", "expertqa")
CANDIDATES_PER_PASSAGE = 2
TREE_DEPTH = 2
EMBED_CACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "feldspar-grounding-embeddings"


@dataclass(frozen=True)
class Example:
    dataset: str
    group: str
    """Examples of one group (a BEGIN document, a WiCE claim, an ExpertQA question) are all
    in train or all in test."""
    unit: str
    """What a score is reported for: a WiCE claim has one row per annotator's evidence."""
    passages: tuple[str, ...]
    claim: str
    label: int

    @property
    def test(self) -> bool:
        digest = hashlib.sha256(f"{self.dataset}\0{self.group}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % 100 < TEST_SHARE


def load(data: Path) -> list[Example]:
    def rows(path: Path) -> list[dict[str, Any]]:
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    examples = [Example("begin", r["knowledge"], r["id"], (r["knowledge"],), r["response"],
                        int(r["grounded"]))
                for r in rows(data / "begin_groundedness" / "begin_dev.jsonl")]
    # WiCE evidence is a list of sentences of one page, one per line.
    examples += [Example("wice", r["claim_id"], r["claim_id"], ("\n".join(r["evidence"]),),
                         r["claim"], int(r["supported"]))
                 for r in rows(data / "wice_groundedness" /
                               "wice_oracle_chunks_claim_dev.jsonl")]
    examples += [Example("expertqa", r["question"], r["id"], tuple(r["evidence"]), r["claim"],
                         int(r["supported"]))
                 for r in rows(data / "expertqa_attribution" /
                               "expertqa_claims_rand_val.jsonl")]
    return examples


class CachingEmbedder:
    """The default embedder with a disk cache of vectors by text (JSON + .npy, no pickle),
    so that feature experiments do not re-embed the same sentences."""

    def __init__(self, cache: Path | None) -> None:
        import feldspar

        self.inner = feldspar.get_embedder()
        self.cache = cache
        self.vectors: dict[str, np.ndarray] = {}
        if cache is not None and cache.with_suffix(".json").exists():
            texts = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
            matrix = np.load(cache.with_suffix(".npy"))
            self.vectors = dict(zip(texts, matrix, strict=True))

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.inner.embed(missing, batch_size=batch_size),
                                    strict=True))
        return np.vstack([self.vectors[t] for t in texts])

    def save(self) -> None:
        if self.cache is None:
            return
        texts = list(self.vectors)
        self.cache.with_suffix(".json").write_text(json.dumps(texts), encoding="utf-8")
        np.save(self.cache.with_suffix(".npy"), np.vstack([self.vectors[t] for t in texts]))


def placeholder_model() -> Any:
    """A scorer that only carries the settings the features need (for featurising)."""
    from feldspar.grounding.features import FEATURES
    from feldspar.grounding.model import GroundingModel

    n = len(FEATURES)
    return GroundingModel(np.zeros(n), np.ones(n), ((np.zeros((n, 1)), np.zeros(1)),), None, 0.5,
                          CANDIDATES_PER_PASSAGE, {})


@dataclass(frozen=True)
class Features:
    units: np.ndarray
    """One row per example: the claim's features."""
    sentences: np.ndarray
    """One row per counted sentence of each claim, each scored alone (as check() does)."""
    owner: np.ndarray
    """The example each row of `sentences` belongs to."""

    def subset(self, mask: np.ndarray) -> Features:
        index = np.flatnonzero(mask)
        renumber = np.full(len(mask), -1)
        renumber[index] = np.arange(len(index))
        keep = mask[self.owner]
        return Features(self.units[index], self.sentences[keep], renumber[self.owner[keep]])

    def scores(self, predict: Any) -> np.ndarray:
        """What check() reports: the claim's score, capped by its weakest sentence's."""
        units = predict(self.units)
        alone = predict(self.sentences)
        np.minimum.at(units, self.owner, alone)
        return np.asarray(units)


def featurise(examples: list[Example], embedder: Any) -> Features:
    from feldspar.grounding.detector import GroundednessDetector
    from feldspar.grounding.features import claim_features

    detector = GroundednessDetector(embedder, model=placeholder_model())
    began = time.perf_counter()
    units, sentences, owner = [], [], []
    for n, ex in enumerate(examples):
        rows, counted = detector.sentence_features(ex.passages, ex.claim)
        units.append(claim_features([rows[i] for i in counted]))
        sentences.extend(claim_features([rows[i]]) for i in counted)
        owner.extend([n] * len(counted))
        if n % 500 == 499:
            print(f"  {n + 1}/{len(examples)} featurised, {time.perf_counter() - began:.0f} s",
                  file=sys.stderr)
    return Features(np.vstack(units), np.vstack(sentences), np.array(owner))


# --- metrics ---------------------------------------------------------------------------

def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    positives, negatives = labels == 1, labels == 0
    return float((predicted[positives].mean() + (1 - predicted[negatives]).mean()) / 2)


def per_unit(examples: Sequence[Example], labels: np.ndarray, scores: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores per reported unit; a WiCE claim takes its highest row score."""
    best: dict[str, tuple[int, float]] = {}
    for ex, label, score in zip(examples, labels, scores, strict=True):
        old = best.get(ex.unit)
        best[ex.unit] = (label, score if old is None else max(old[1], score))
    values = list(best.values())
    return np.array([v[0] for v in values]), np.array([v[1] for v in values])


def metrics(examples: Sequence[Example], scores: np.ndarray, threshold: float
            ) -> dict[str, dict[str, float]]:
    labels = np.array([ex.label for ex in examples])
    report = {}
    for name in SETS:
        mask = np.array([ex.dataset == name for ex in examples])
        if not mask.any():
            continue
        y, s = per_unit([ex for ex, m in zip(examples, mask, strict=True) if m], labels[mask],
                        scores[mask])
        report[name] = {"roc_auc": auc(y, s),
                        "balanced_accuracy": balanced_accuracy(y, (s >= threshold)),
                        "units": len(y), "positives": int(y.sum())}
    return report


def best_threshold(examples: Sequence[Example], scores: np.ndarray) -> float:
    """The threshold with the highest mean balanced accuracy over the three sets."""
    grid = np.linspace(0.05, 0.95, 181)
    labels = np.array([ex.label for ex in examples])
    units = {}
    for name in SETS:
        mask = np.array([ex.dataset == name for ex in examples])
        units[name] = per_unit([ex for ex, m in zip(examples, mask, strict=True) if m],
                               labels[mask], scores[mask])
    means = [np.mean([balanced_accuracy(y, s >= t) for y, s in units.values()]) for t in grid]
    return float(grid[int(np.argmax(means))])


# --- models ------------------------------------------------------------------------------

def make(kind: str, seed: int = 0) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if kind == "trees":
        return GradientBoostingClassifier(max_depth=TREE_DEPTH, n_estimators=300,
                                          learning_rate=0.05, subsample=0.8, random_state=seed)
    if kind == "logistic":
        return LogisticRegression(C=1.0, max_iter=5000)
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(16,), alpha=1e-2, max_iter=2000,
                             early_stopping=False, random_state=seed)
    raise SystemExit(f"unknown model kind {kind!r}")


def weights_for(examples: Sequence[Example]) -> np.ndarray:
    """Each set weighs the same in total, whatever its size."""
    counts = {name: sum(ex.dataset == name for ex in examples) for name in SETS}
    return np.array([len(examples) / (len(SETS) * counts[ex.dataset]) for ex in examples])


def fit(kind: str, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[Any, np.ndarray,
                                                                         np.ndarray]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = make(kind)
    z = (x - mean) / scale
    if kind == "mlp":  # MLPClassifier takes no sample weights: resample by weight instead
        rng = np.random.default_rng(0)
        pick = rng.choice(len(z), size=len(z) * 2, p=w / w.sum())
        model.fit(z[pick], y[pick])
    else:
        model.fit(z, y, sample_weight=w)
    return model, mean, scale


def cross_validate(kind: str, examples: list[Example], x: Features, folds: int = 5
                   ) -> np.ndarray:
    """Out-of-fold scores on the train part, folds by group."""
    y = np.array([ex.label for ex in examples])
    fold = np.array([int(hashlib.sha256(f"cv\0{ex.dataset}\0{ex.group}".encode())
                         .hexdigest(), 16) % folds for ex in examples])
    w = weights_for(examples)
    out = np.zeros(len(examples))
    for k in range(folds):
        train = fold != k
        model, mean, scale = fit(kind, x.units[train], y[train], w[train])
        out[~train] = x.subset(~train).scores(
            lambda rows, model=model, mean=mean, scale=scale:
            model.predict_proba((rows - mean) / scale)[:, 1])
    return out


def export(kind: str, model: Any, x: np.ndarray) -> dict[str, Any]:
    if kind == "trees":
        trees = []
        for estimator in model.estimators_[:, 0]:
            tree = estimator.tree_
            leaf = tree.children_left == -1
            nodes = np.arange(tree.node_count)
            trees.append({"feature": np.where(leaf, 0, tree.feature),
                          "threshold": np.where(leaf, 0.0, tree.threshold),
                          "left": np.where(leaf, nodes, tree.children_left),
                          "right": np.where(leaf, nodes, tree.children_right),
                          "value": tree.value[:, 0, 0] * model.learning_rate})
        return {"bias": float(model._raw_predict_init(x[:1])[0, 0]), "depth": TREE_DEPTH,
                "trees": trees}
    if kind == "logistic":
        return {"coef": model.coef_[0], "intercept": float(model.intercept_[0])}
    return {"layers": [{"weight": w, "bias": b}
                       for w, b in zip(model.coefs_, model.intercepts_, strict=True)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("FELDSPAR_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--model", choices=("trees", "logistic", "mlp"), default="trees")
    parser.add_argument("--compare", action="store_true",
                        help="Only print cross-validated figures of each model kind.")
    parser.add_argument("--no-cache", action="store_true",
                        help="Do not keep embeddings in $TMPDIR between runs.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] /
                        "src" / "feldspar" / "grounding" / "weights.json")
    args = parser.parse_args()

    examples = [ex for ex in load(args.data) if not ex.test]
    print(f"{len(examples)} training examples: " + ", ".join(
        f"{n} {sum(ex.dataset == n for ex in examples)}" for n in SETS), file=sys.stderr)
    embedder = CachingEmbedder(None if args.no_cache else EMBED_CACHE)
    x = featurise(examples, embedder)
    embedder.save()
    y = np.array([ex.label for ex in examples])

    kinds = ("trees", "logistic", "mlp") if args.compare else (args.model,)
    cv: dict[str, Any] = {}
    for kind in kinds:
        oof = cross_validate(kind, examples, x)
        threshold = best_threshold(examples, oof)
        cv[kind] = {"threshold": threshold, "metrics": metrics(examples, oof, threshold)}
        print(f"{kind:<9} cv threshold {threshold:.3f}  " + "  ".join(
            f"{name} auc {m['roc_auc']:.3f} bacc {m['balanced_accuracy']:.3f}"
            for name, m in cv[kind]["metrics"].items()))
    if args.compare:
        return

    from feldspar.grounding.model import dump

    model, mean, scale = fit(args.model, x.units, y, weights_for(examples))
    threshold = cv[args.model]["threshold"]
    info = {"data": [ "BEGIN dev", "WiCE dev (oracle chunks, claim)", "ExpertQA rand val"],
            "train_examples": len(examples), "test_share_percent": TEST_SHARE,
            "cross_validation": cv[args.model], "kind": args.model}
    text = dump(mean, scale, args.model, export(args.model, model, (x.units - mean) / scale),
                threshold, CANDIDATES_PER_PASSAGE, info)
    # The packaged numpy scorer must give what scikit-learn gives.
    from feldspar.grounding.model import GroundingModel

    ours = GroundingModel.from_dict(json.loads(text)).predict(x.units)
    theirs = model.predict_proba((x.units - mean) / scale)[:, 1]
    if not np.allclose(ours, theirs, atol=1e-4):
        raise SystemExit(f"numpy scorer differs from scikit-learn by "
                         f"{np.abs(ours - theirs).max():.2g}")
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    print(save("grounding_training", {"model": args.model, "threshold": threshold,
                                      "cross_validation": cv}))


if __name__ == "__main__":
    main()
