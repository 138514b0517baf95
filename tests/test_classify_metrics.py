"""Classification metrics against scikit-learn, the cascade curve against brute force,
and the confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from feldspar.classify.confusion import save_confusion_png
from feldspar.errors import UserError
from feldspar.evaluate.classifying import (
    CascadePoint,
    cascade_curve,
    class_report,
    latency_summary,
    matching_threshold,
)

LABELS = ["a", "b", "c", "d"]


def _random_case(seed: int, n: int, k: int) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    labels = [f"l{i}" for i in range(k)]
    gold = [labels[i] for i in rng.integers(0, k - 1, n)]  # the last label never gold
    predicted = [g if rng.random() < 0.6 else labels[rng.integers(0, k)] for g in gold]
    return gold, predicted, labels


CASES = [
    (["a", "b", "a", "c"], ["a", "b", "b", "c"], LABELS),  # "d" nowhere
    (["a", "a", "a"], ["b", "b", "a"], LABELS),  # "b" predicted, never gold
    (["a", "a"], ["a", "a"], LABELS),  # a single class
    (["a", "b"], ["b", "a"], LABELS),  # all wrong: zero division everywhere
    (["c", "c", "d"], ["d", "d", "d"], LABELS),
    *(_random_case(seed, 200, 7) for seed in range(5)),
]


@pytest.mark.parametrize(("gold", "predicted", "labels"), CASES)
def test_class_report_matches_sklearn(gold: list[str], predicted: list[str],
                                      labels: list[str]) -> None:
    report = class_report(gold, predicted, labels)
    assert report.accuracy == pytest.approx(accuracy_score(gold, predicted))
    assert report.macro_f1 == pytest.approx(
        f1_score(gold, predicted, average="macro", zero_division=0))
    present = [x for x in labels if x in set(gold) | set(predicted)]
    assert [row.label for row in report.per_class] == present
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=present,
                                                 zero_division=0)
    for row, *expected in zip(report.per_class, p, r, f, s, strict=True):
        assert (row.precision, row.recall, row.f1) == pytest.approx(expected[:3])
        assert row.support == expected[3]
    assert report.confusion.dtype.kind == "i"
    np.testing.assert_array_equal(report.confusion,
                                  confusion_matrix(gold, predicted, labels=labels))
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["confusion"] == report.confusion.tolist()
    assert data["per_class"][0]["label"] == present[0]


def test_class_report_edges() -> None:
    with pytest.raises(ValueError, match="zebra"):
        class_report(["a"], ["zebra"], LABELS)
    with pytest.raises(ValueError, match="1 gold labels but 0"):
        class_report(["a"], [], LABELS)
    empty = class_report([], [], LABELS)
    assert (empty.accuracy, empty.macro_f1, empty.per_class) == (0.0, 0.0, [])
    assert empty.confusion.shape == (4, 4)


def _brute_force(gold: list[str], student: list[str], confidence: np.ndarray,
                 teacher: list[str], threshold: float) -> tuple[float, float]:
    escalated = [c < threshold for c in confidence]
    right = [(t if e else s) == g
             for g, s, t, e in zip(gold, student, teacher, escalated, strict=True)]
    return sum(escalated) / len(gold), sum(right) / len(gold)


@pytest.mark.parametrize("seed", range(6))
def test_cascade_curve_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    labels = ["x", "y", "z"]
    gold = [labels[i] for i in rng.integers(0, 3, n)]
    student = [g if rng.random() < 0.7 else "z" for g in gold]
    teacher = [g if rng.random() < 0.9 else "y" for g in gold]
    confidence = np.round(rng.random(n), 2)  # two decimals: many ties
    points = cascade_curve(gold, student, confidence, teacher)

    distinct = np.unique(confidence)
    assert len(points) == len(distinct) + 1
    assert points[0].threshold == 0.0
    assert (points[0].escalation_rate, points[-1].escalation_rate) == (0.0, 1.0)
    assert points[-1].threshold > confidence.max()
    rates = [p.escalation_rate for p in points]
    assert rates == sorted(rates)
    assert len(set(rates)) == len(rates)
    for point in points:
        assert (point.escalation_rate, point.accuracy) == pytest.approx(
            _brute_force(gold, student, confidence, teacher, point.threshold))
    # Every threshold's escalated set is one of the points'.
    sets = {p.escalation_rate for p in points}
    for threshold in [0.0, *distinct, 1.5, *rng.random(20)]:
        assert _brute_force(gold, student, confidence, teacher, threshold)[0] in sets


def test_cascade_curve_edges() -> None:
    assert cascade_curve([], [], [], []) == []
    same = cascade_curve(["a", "b"], ["a", "a"], [0.7, 0.7], ["b", "b"])
    assert [(p.escalation_rate, p.accuracy) for p in same] == [(0.0, 0.5), (1.0, 0.5)]
    assert same[-1].threshold == float(np.nextafter(0.7, np.inf))
    with pytest.raises(ValueError, match="same length"):
        cascade_curve(["a"], ["a"], [0.5, 0.6], ["a"])


def test_matching_threshold() -> None:
    points = [CascadePoint(0.0, 0.0, 0.6), CascadePoint(0.5, 0.3, 0.8),
              CascadePoint(0.7, 0.6, 0.9), CascadePoint(0.9, 1.0, 0.85)]
    assert matching_threshold(points, 0.8) == points[1]
    assert matching_threshold(points, 0.85) == points[2]
    assert matching_threshold(points, 0.5) == points[0]
    assert matching_threshold(points, 0.95) is None
    assert matching_threshold([], 0.5) is None
    # The teacher's accuracy computed another way still matches the all-escalated point.
    gold, student, teacher = ["a", "b", "c"], ["b", "b", "b"], ["a", "b", "b"]
    curve = cascade_curve(gold, student, [0.2, 0.9, 0.4], teacher)
    teacher_accuracy = float(np.mean(np.array(gold) == np.array(teacher)))
    found = matching_threshold(curve, teacher_accuracy)
    assert found is not None
    assert found.escalation_rate == pytest.approx(1 / 3)


def test_latency_summary() -> None:
    seconds = list(np.random.default_rng(1).random(50))
    summary = latency_summary(seconds)
    assert summary["p50_ms"] == pytest.approx(np.median(seconds) * 1000)
    assert summary["p95_ms"] == pytest.approx(np.percentile(seconds, 95) * 1000)
    assert latency_summary([0.25]) == {"p50_ms": 250.0, "p95_ms": 250.0}


def test_confusion_png_sizes_and_colours(tmp_path: Path) -> None:
    from PIL import Image

    small = save_confusion_png(np.array([[3, 1], [0, 4]]), ["yes", "no"],
                               tmp_path / "deep" / "er" / "two.png", title="Two")
    rng = np.random.default_rng(0)
    matrix = np.diag(rng.integers(5, 40, 77)) + rng.poisson(0.3, (77, 77))
    matrix[3] = 0  # a label with no gold texts
    names = [f"a_rather_long_intent_name_number_{i}" for i in range(77)]
    big = save_confusion_png(matrix, names, tmp_path / "banking77.png", title="Banking77")
    with Image.open(small) as one, Image.open(big) as other:
        assert one.format == other.format == "PNG"
        assert other.width > one.width
        assert other.height > one.height
        assert max(other.size) <= 3000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    perfect = save_confusion_png(np.diag([5, 5, 5]), ["a", "b", "c"], tmp_path / "3.png")
    with Image.open(perfect) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    blue = (pixels[..., 2] - pixels[..., 0]) > 60  # saturated: the diagonal cells
    rows, columns = np.nonzero(blue)
    top, left = rows.min(), columns.min()
    cell = (rows.max() - top + 1) / 3

    def at(i: int, j: int) -> np.ndarray:  # near a cell's corner, away from its count
        return pixels[int(top + (i + 0.2) * cell), int(left + (j + 0.2) * cell)]
    for i in range(3):
        diagonal, off = at(i, i), at(i, (i + 1) % 3)
        assert diagonal.sum() < off.sum() - 300
        assert diagonal[2] - diagonal[0] > off[2] - off[0] + 60


def test_confusion_png_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="Cannot write") as caught:
        save_confusion_png(np.eye(2, dtype=int), ["a", "b"], blocker / "sub" / "m.png")
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="2x2"):
        save_confusion_png(np.eye(3, dtype=int), ["a", "b"], tmp_path / "m.png")
