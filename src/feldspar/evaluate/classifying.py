"""Scoring a label set's student, teacher and cascade on labelled texts
(`feldspar eval classify`).

The metrics are pure functions: accuracy, per-label precision/recall/F1 and macro-F1, the
confusion matrix, the cascade's accuracy for each share of texts sent to the teacher, and
latency percentiles. `evaluate_classifier` runs the models and puts them together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from feldspar.classify.classifier import Classifier
    from feldspar.classify.teacher import Teacher

TOLERANCE = 1e-9
"""`matching_threshold` accepts an accuracy this far below the target (float rounding)."""


@dataclass(frozen=True)
class ClassRow:
    """One label's scores; `support` is how many gold texts carry it."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassReport:
    """Accuracy, macro-F1, per-label rows, and the confusion matrix over `labels`."""

    accuracy: float
    macro_f1: float
    """The mean F1 over the labels that occur in gold or predicted (scikit-learn's
    f1_score(average="macro") with labels unset)."""
    per_class: list[ClassRow]
    """The labels that occur in gold or predicted, in the order of `labels`."""
    labels: tuple[str, ...]
    confusion: np.ndarray
    """Counts, shape (len(labels), len(labels)): rows gold, columns predicted."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain floats, ints and lists."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "per_class": [asdict(row) for row in self.per_class],
                "labels": list(self.labels), "confusion": self.confusion.tolist()}


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole element-wise, 0.0 where whole is 0."""
    out: np.ndarray = np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)
    return out


def class_report(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
                 ) -> ClassReport:
    """Score predictions against gold labels; a zero division gives 0.0.

    Raises:
        ValueError: lengths differ, or a gold or predicted label is not in `labels`.

    Example:
        >>> r = class_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
        >>> r.accuracy, round(r.macro_f1, 3), [row.label for row in r.per_class]
        (0.6666666666666666, 0.667, ['a', 'b'])
        >>> r.confusion.tolist()
        [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({x for x in (*gold, *predicted) if x not in index})
    if unknown:
        raise ValueError(f"Labels not in the label set: {', '.join(unknown[:5])}")
    k = len(index)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, ([index[g] for g in gold], [index[p] for p in predicted]), 1)
    hits = np.diag(confusion).astype(float)
    support, chosen = confusion.sum(1), confusion.sum(0)
    precision, recall = _ratio(hits, chosen), _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = np.flatnonzero((support > 0) | (chosen > 0))
    rows = [ClassRow(labels[int(i)], float(precision[i]), float(recall[i]), float(f1[i]),
                     int(support[i])) for i in present]
    return ClassReport(float(hits.sum() / len(gold)) if gold else 0.0,
                       float(f1[present].mean()) if len(present) else 0.0,
                       rows, tuple(labels), confusion)


@dataclass(frozen=True)
class CascadePoint:
    """Texts with student confidence < `threshold` go to the teacher: that is
    `escalation_rate` of them, and the cascade is right on `accuracy` of all texts."""

    threshold: float
    escalation_rate: float
    accuracy: float


def cascade_curve(gold: Sequence[str], student_labels: Sequence[str],
                  student_confidence: Sequence[float] | np.ndarray,
                  teacher_labels: Sequence[str]) -> list[CascadePoint]:
    """The cascade's accuracy at every threshold that changes the set of escalated texts,
    from none escalated (threshold 0.0, or the lowest confidence if it is negative) to all
    (the float just above the highest confidence, `np.nextafter(max, inf)`); in between,
    each threshold is a distinct confidence, which escalates every text below it. Sorted
    by escalation rate, ascending; [] for no texts. O(n log n): one sort, cumulative sums.

    Example:
        >>> points = cascade_curve(["a", "b", "a"], ["a", "a", "b"], [0.9, 0.5, 0.5],
        ...                        ["a", "b", "b"])
        >>> [(p.threshold, round(p.escalation_rate, 2), round(p.accuracy, 2))
        ...  for p in points]
        [(0.0, 0.0, 0.33), (0.9, 0.67, 0.67), (0.9000000000000001, 1.0, 0.67)]
    """
    n = len(gold)
    if not len(student_labels) == len(student_confidence) == len(teacher_labels) == n:
        raise ValueError("gold, student labels, confidences and teacher labels must have "
                         "the same length")
    if n == 0:
        return []
    confidence = np.asarray(student_confidence, dtype=float)
    order = np.argsort(confidence, kind="stable")
    ranked = confidence[order]
    truth = np.array(gold, dtype=object)[order]
    student_right = truth == np.array(student_labels, dtype=object)[order]
    teacher_right = truth == np.array(teacher_labels, dtype=object)[order]
    # Escalating the k least confident texts: the teacher answers those, the student the rest.
    teacher_hits = np.r_[0, np.cumsum(teacher_right)]
    student_kept = int(student_right.sum()) - np.r_[0, np.cumsum(student_right)]
    ends = np.r_[np.flatnonzero(np.diff(ranked)) + 1, n]  # k at the end of each tie group
    cuts = np.r_[0, ends]
    thresholds = np.r_[min(0.0, float(ranked[0])), ranked[ends[:-1]],
                       np.nextafter(ranked[-1], np.inf)]
    accuracy = (teacher_hits[cuts] + student_kept[cuts]) / n
    return [CascadePoint(float(t), float(k / n), float(a))
            for t, k, a in zip(thresholds, cuts, accuracy, strict=True)]


def matching_threshold(points: Sequence[CascadePoint], target_accuracy: float
                       ) -> CascadePoint | None:
    """The point with the lowest escalation rate whose accuracy reaches `target_accuracy`
    (within TOLERANCE), e.g. the teacher's own accuracy; None when none does.

    Example:
        >>> points = [CascadePoint(0.0, 0.0, 0.7), CascadePoint(0.6, 0.4, 0.9),
        ...           CascadePoint(0.8, 0.8, 0.9)]
        >>> matching_threshold(points, 0.9), matching_threshold(points, 0.95)
        (CascadePoint(threshold=0.6, escalation_rate=0.4, accuracy=0.9), None)
    """
    reaching = [p for p in points if p.accuracy >= target_accuracy - TOLERANCE]
    return min(reaching, key=lambda p: p.escalation_rate, default=None)


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """The median and 95th percentile of timings, in milliseconds (linear interpolation
    between closest ranks, as `eval` reports its timings); None for no timings.

    Example:
        >>> latency_summary([0.010, 0.020, 0.030])
        {'p50_ms': 20.0, 'p95_ms': 29.0}
        >>> latency_summary([])
        {'p50_ms': None, 'p95_ms': None}
    """
    if not len(seconds):
        return {"p50_ms": None, "p95_ms": None}
    p50, p95 = np.percentile(np.asarray(seconds, dtype=float) * 1000, [50, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95)}


LATENCY_SAMPLE = 100
"""Texts the student classifies one at a time to measure its latency."""


def _scores(report: ClassReport, seconds: float, latencies: Sequence[float]
            ) -> dict[str, Any]:
    texts = int(report.confusion.sum())
    return {"texts": texts, "accuracy": report.accuracy, "macro_f1": report.macro_f1,
            "throughput_per_s": texts / seconds if seconds > 0 else None,
            "seconds": seconds, "latency": latency_summary(latencies),
            "per_class": [asdict(row) for row in report.per_class]}


def evaluate_classifier(clf: Classifier, texts: Sequence[str], gold: Sequence[str], *,
                        teacher: Teacher | None = None, teacher_limit: int | None = 200,
                        threshold: float | None = None, target_accuracy: float | None = None,
                        seed: int = 0, on_student: Callable[[int], None] | None = None,
                        on_teacher: Callable[[int], None] | None = None
                        ) -> tuple[dict[str, Any], ClassReport]:
    """Score the student on every text; with a teacher, score it, the cascade and the
    cascade's curve on a seeded sample of `teacher_limit` texts (None: all).

    The cascade's time is the student's per-text time for every text plus the teacher's
    measured time on the texts it escalates. Returns the report (JSON-ready) and the
    student's `ClassReport` (for the confusion matrix).
    """
    student = clf.student()
    threshold, target = clf.threshold(student, threshold, target_accuracy)  # checked first
    embedder = clf.embedder(student.embed_model)
    labels = clf.labels
    embedder.embed([texts[0]])  # a warm model: load time is not classification time
    started = time.perf_counter()
    probabilities = student.predict(texts, embedder, on_progress=on_student)
    student_seconds = time.perf_counter() - started
    picked = [labels[int(i)] for i in probabilities.argmax(1)]
    confidence = probabilities.max(1)
    latencies = []
    for text in texts[:LATENCY_SAMPLE]:
        one = time.perf_counter()
        student.predict([text], embedder)
        latencies.append(time.perf_counter() - one)
    own = class_report(gold, picked, labels)
    report: dict[str, Any] = {"labels": len(labels), "texts": len(texts),
                              "student": {**_scores(own, student_seconds, latencies),
                                          "method": student.method,
                                          "embed_model": student.embed_model}}
    if teacher is None:
        return report, own
    rows = list(range(len(texts)))
    if teacher_limit is not None and teacher_limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, teacher_limit))
    marks = [time.perf_counter()]

    def tick(n: int) -> None:
        marks.append(time.perf_counter())
        if on_teacher is not None:
            on_teacher(n)

    teacher.warm()  # the model loaded and the shared prompt evaluated: not per-text time
    marks[0] = time.perf_counter()
    taught = teacher.classify([texts[i] for i in rows], tick)
    teacher_latency = np.diff(marks)
    sample_gold = [gold[i] for i in rows]
    teacher_labels = [p.label for p in taught]
    teacher_report = class_report(sample_gold, teacher_labels, labels)
    report["teacher"] = {**_scores(teacher_report, float(teacher_latency.sum()),
                                   list(teacher_latency)), "model": teacher.name,
                         "shots": teacher.shots}
    sample_confidence = confidence[rows]
    escalated = sample_confidence < threshold
    mixed = [t if up else picked[i] for i, t, up in zip(rows, teacher_labels, escalated,
                                                         strict=True)]
    per_text = student_seconds / len(texts)
    cascade_seconds = per_text * len(rows) + float(teacher_latency[escalated].sum())
    cascade_latency = [per_text + (float(t) if up else 0.0)
                       for t, up in zip(teacher_latency, escalated, strict=True)]
    report["cascade"] = {
        **_scores(class_report(sample_gold, mixed, labels), cascade_seconds, cascade_latency),
        "threshold": threshold if threshold <= 1 else None,
        "target_accuracy": target,
        "escalated": int(escalated.sum()), "escalation_rate": float(escalated.mean()),
        "student_accuracy_on_sample": class_report(
            sample_gold, [picked[i] for i in rows], labels).accuracy}
    curve = cascade_curve(sample_gold, [picked[i] for i in rows], sample_confidence,
                          teacher_labels)
    match = matching_threshold(curve, teacher_report.accuracy)
    report["cascade_curve"] = [asdict(p) for p in _thin(curve)]
    report["matching_teacher"] = asdict(match) if match is not None else None
    return report, own


def _thin(points: list[CascadePoint], most: int = 101) -> list[CascadePoint]:
    """At most `most` points, evenly spread, keeping the first and the last."""
    if len(points) <= most:
        return points
    keep = sorted({round(i * (len(points) - 1) / (most - 1)) for i in range(most)})
    return [points[i] for i in keep]
