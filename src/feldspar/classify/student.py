"""The student: a small classifier on sentence embeddings, trained in seconds, calibrated,
and a hundred times cheaper than asking an LLM.

Texts are embedded by the workspace's embedder (all-MiniLM-L6-v2 by default); a
multinomial logistic regression (or a one-hidden-layer MLP) maps the unit vectors to the
labels. Cross-validation gives every training text a prediction from a model that did not
see it; those out-of-fold predictions fit a temperature (calibration) and give the
accuracy the student reaches on the texts it is confident about, for each confidence
threshold: the curve the cascade picks its threshold from.

The weights are numpy arrays stored as an .npz (read with allow_pickle=False) and the
rest as JSON: nothing is unpickled.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from feldspar.classify.fitting import (
    fit_logistic,
    fit_mlp,
    fit_temperature,
    logits,
    softmax,
    stratified_folds,
)
from feldspar.errors import UserError

if TYPE_CHECKING:
    from feldspar.models.base import Embedder
    from feldspar.store.records import StoredStudent

Method = Literal["logistic", "mlp"]
METHODS: tuple[Method, ...] = ("logistic", "mlp")
FORMAT = 1
"""The version of the stored student's layout."""
REGULARIZATION = 0.1
"""L2 strength: the penalty is REGULARIZATION / n times half the squared weights
(scikit-learn's C = 10)."""
MIN_CROSS_VALIDATION = 10
"""Fewer training texts than this get no cross-validation: no calibration and no
accuracy curve (the cascade then needs an explicit threshold)."""
MIN_ERRORS_TO_CALIBRATE = 5
"""Fewer out-of-fold errors than this leave the temperature at 1 (nothing to fit it on)."""
EMBED_BATCH = 256

Progress = Callable[[int], None]
"""Called with the number of texts just done."""


@dataclass(frozen=True)
class CurvePoint:
    """Out-of-fold: the student keeps the texts it is at least `threshold` sure of; that
    is `coverage` of them, and `accuracy` of those are right."""

    threshold: float
    coverage: float
    accuracy: float


@dataclass
class Student:
    """A trained student: labels, the embedder it reads, weights and calibration."""

    labels: tuple[str, ...]
    embed_model: str
    method: Method
    params: dict[str, np.ndarray]
    temperature: float = 1.0
    curve: tuple[CurvePoint, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    """How it was trained: examples per source, cross-validated accuracy, time."""

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Calibrated label probabilities, one row per embedding."""
        width = self.params["w1" if "w1" in self.params else "w"].shape[0]
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise UserError(f"The student reads {width}-d vectors of '{self.embed_model}', "
                            f"not {vectors.shape[-1]}-d ones; use that embedder or train "
                            "it again")
        return softmax(logits(self.params, vectors) / self.temperature)

    def predict(self, texts: Sequence[str], embedder: Embedder, *,
                on_progress: Progress | None = None) -> np.ndarray:
        """Calibrated label probabilities for texts, shape (len(texts), len(labels))."""
        return self.probabilities(embed(embedder, texts, on_progress))

    def threshold_for(self, accuracy: float) -> float | None:
        """The lowest confidence threshold at which the texts the student keeps are right
        `accuracy` of the time (out-of-fold); None when no threshold reaches it.

        Example:
            >>> s = Student(("a", "b"), "m", "logistic", {}, curve=(
            ...     CurvePoint(0.9, 0.5, 0.99), CurvePoint(0.7, 0.8, 0.95),
            ...     CurvePoint(0.0, 1.0, 0.90)))
            >>> s.threshold_for(0.95), s.threshold_for(0.9), s.threshold_for(0.999)
            (0.7, 0.0, None)
        """
        if not self.curve:
            raise UserError("This student was trained on too few examples to estimate its "
                            "accuracy; give a confidence threshold instead, or train it on "
                            f"at least {MIN_CROSS_VALIDATION} examples")
        reaching = [p for p in self.curve if p.accuracy >= accuracy]
        if not reaching:
            return None
        return max(reaching, key=lambda p: (p.coverage, -p.threshold)).threshold

    def stored(self, labelset: str) -> StoredStudent:
        """The student as the store keeps it: an .npz of the arrays, and JSON."""
        from feldspar.store.records import StoredStudent

        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **self.params)
        info = {**self.info, "format": FORMAT, "labels": list(self.labels),
                "embed_model": self.embed_model, "method": self.method,
                "temperature": self.temperature,
                "curve": [[p.threshold, p.coverage, p.accuracy] for p in self.curve]}
        return StoredStudent(labelset, buffer.getvalue(), info, time.time())

    @classmethod
    def from_stored(cls, stored: StoredStudent) -> Student:
        """Read a stored student back (no pickle: numeric arrays and JSON only)."""
        info = dict(stored.info)
        again = f"train it again with 'feldspar classify train {stored.labelset}'"
        if info.get("format") != FORMAT or info.get("method") not in METHODS:
            raise UserError(f"The student of '{stored.labelset}' was stored by another "
                            f"version of Feldspar; {again}")
        try:
            with np.load(io.BytesIO(stored.weights), allow_pickle=False) as arrays:
                params = {key: arrays[key] for key in arrays.files}
            labels = tuple(info.pop("labels"))
            curve = tuple(CurvePoint(*point) for point in info.pop("curve"))
            student = cls(labels, info.pop("embed_model"), info.pop("method"), params,
                          float(info.pop("temperature")), curve, info)
            _check_shapes(params, len(labels))
        except Exception as exc:  # numpy and zipfile raise many types for a bad archive
            raise UserError(f"The student of '{stored.labelset}' is damaged ({exc}); "
                            f"{again}") from None
        return student


def _check_shapes(params: dict[str, np.ndarray], labels: int) -> None:
    """The arrays of a logistic or MLP student, consistent with each other and the labels."""
    w, b = params["w"], params["b"]
    if w.ndim != 2 or w.shape[1] != labels or b.shape != (labels,):
        raise ValueError("the weights do not match the labels")
    if "w1" in params and (params["w1"].ndim != 2 or params["b1"].shape != (w.shape[0],)
                           or params["w1"].shape[1] != w.shape[0]):
        raise ValueError("the hidden layer does not match the output layer")
    if any(a.dtype.kind != "f" for a in params.values()):
        raise ValueError("the weights are not numbers")


def embed(embedder: Embedder, texts: Sequence[str],
          on_progress: Progress | None = None) -> np.ndarray:
    """Unit embeddings of texts, in batches, reporting progress after each."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        batch = list(texts[start : start + EMBED_BATCH])
        parts.append(embedder.embed(batch, batch_size=64))
        if on_progress is not None:
            on_progress(len(batch))
    return np.concatenate(parts)


def train(texts: Sequence[str], targets: Sequence[str], labels: Sequence[str],
          embedder: Embedder, *, method: Method = "logistic",
          regularization: float = REGULARIZATION, on_progress: Progress | None = None,
          info: dict[str, Any] | None = None) -> Student:
    """Train a student on labelled texts (every target one of `labels`).

    Raises:
        UserError: no texts, a single label, or a target outside `labels`.
    """
    if method not in METHODS:
        raise UserError(f"Unknown method '{method}'; choose one of {', '.join(METHODS)}")
    if len(texts) != len(targets):
        raise UserError("Give one label for each text")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({t for t in targets if t not in index})
    if unknown:
        raise UserError(f"Labels not in the label set: {', '.join(unknown[:5])}")
    present = sorted(set(targets))
    if len(present) < 2:
        found = f"only '{present[0]}'" if present else "no examples"
        raise UserError(f"Training needs examples of at least two labels; the data has "
                        f"{found}")
    started = time.perf_counter()
    y = np.array([index[t] for t in targets])
    x = embed(embedder, texts, on_progress)
    l2 = regularization / len(y)

    def fit(rows: np.ndarray, start: dict[str, np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
        if method == "mlp":
            return fit_mlp(x[rows], y[rows], len(labels), l2=l2)
        return fit_logistic(x[rows], y[rows], len(labels), l2=l2, start=start)

    params = fit(np.arange(len(y)))
    temperature, cv_accuracy = 1.0, None
    curve: tuple[CurvePoint, ...] = ()
    if len(y) >= MIN_CROSS_VALIDATION:
        counts = np.bincount(y, minlength=len(labels))
        folds = stratified_folds(y, max(2, min(5, int(counts[counts > 0].min()))))
        scores = np.zeros((len(y), len(labels)))
        for fold in np.unique(folds):
            held = folds == fold
            scores[held] = logits(fit(np.flatnonzero(~held), params), x[held])
        errors = int((scores.argmax(1) != y).sum())
        # With (almost) no out-of-fold errors, the likelihood keeps rising as the
        # temperature falls: every confidence would become 1.0. Keep the scores as trained.
        temperature = fit_temperature(scores, y) if errors >= MIN_ERRORS_TO_CALIBRATE else 1.0
        probabilities = softmax(scores / temperature)
        curve = accuracy_curve(probabilities.max(1), probabilities.argmax(1) == y)
        cv_accuracy = float((probabilities.argmax(1) == y).mean())
    details = {**(info or {}), "examples": len(y), "trained_at": time.time(),
               "train_seconds": round(time.perf_counter() - started, 2),
               "cv_accuracy": cv_accuracy,
               "label_counts": {labels[i]: int(n) for i, n in
                                enumerate(np.bincount(y, minlength=len(labels))) if n}}
    return Student(tuple(labels), embedder.spec.name, method, params, temperature, curve,
                   details)


def accuracy_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 100
                   ) -> tuple[CurvePoint, ...]:
    """Accuracy of the texts kept at each confidence threshold, at about `points`
    thresholds spread over the coverage, from the most confident down.

    Example:
        >>> curve = accuracy_curve(np.array([0.9, 0.8, 0.6, 0.4]),
        ...                        np.array([True, True, False, True]), points=4)
        >>> [(p.threshold, p.coverage, round(p.accuracy, 2)) for p in curve]
        [(0.9, 0.25, 1.0), (0.8, 0.5, 1.0), (0.6, 0.75, 0.67), (0.0, 1.0, 0.75)]
    """
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order])
    n = len(conf)
    cuts = sorted({min(n, max(1, round(n * i / points))) for i in range(1, points + 1)})
    result: list[CurvePoint] = []
    for cut in cuts:
        # Ties at the cut: a threshold keeps all texts of equal confidence.
        while cut < n and conf[cut] == conf[cut - 1]:
            cut += 1
        threshold = 0.0 if cut == n else float(conf[cut - 1])
        point = CurvePoint(threshold, cut / n, float(hits[cut - 1] / cut))
        if not result or result[-1].coverage != point.coverage:
            result.append(point)
    return tuple(result)
