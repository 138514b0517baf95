"""The cascade: the student answers what it is sure of; the rest goes to the teacher.

A text whose student confidence is below the threshold is escalated. The threshold comes
from the student's out-of-fold accuracy curve for a target accuracy (or is given); what the
escalations cost is counted in teacher seconds and tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from feldspar.classify.teacher import Prediction, Teacher

if TYPE_CHECKING:
    from feldspar.classify.teacher import TeacherCost


@dataclass
class CascadeResult:
    """Predictions for a batch of texts, and what they cost."""

    predictions: list[Prediction]
    threshold: float
    """Texts the student is less sure of than this were escalated."""
    escalated: int
    """Texts below the threshold (answered by the teacher, when there was one)."""
    student_seconds: float
    teacher: TeacherCost | None = None
    """What the teacher's answers cost; None when no teacher was asked."""
    target_accuracy: float | None = None

    @property
    def escalation_rate(self) -> float:
        return self.escalated / len(self.predictions) if self.predictions else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts and costs, for JSON."""
        data: dict[str, Any] = {
            "texts": len(self.predictions),
            # inf: the student reaches the target accuracy on no share of the texts
            "threshold": round(self.threshold, 4) if self.threshold <= 1 else None,
            "target_accuracy": self.target_accuracy, "escalated": self.escalated,
            "escalation_rate": round(self.escalation_rate, 4),
            "student_seconds": round(self.student_seconds, 3), "teacher": None}
        if self.teacher is not None:
            data["teacher"] = {"texts": self.teacher.texts,
                               "seconds": round(self.teacher.seconds, 3),
                               "prompt_tokens": self.teacher.prompt_tokens,
                               "completion_tokens": self.teacher.completion_tokens}
        return data


def student_predictions(probabilities: np.ndarray, labels: Sequence[str]
                        ) -> list[Prediction]:
    """The student's best label and its probability for each row.

    Example:
        >>> student_predictions(np.array([[0.2, 0.8]]), ["a", "b"])
        [Prediction(label='b', confidence=0.8, source='student', escalated=False)]
    """
    best = probabilities.argmax(axis=1)
    return [Prediction(labels[int(i)], float(probabilities[row, i]), "student")
            for row, i in enumerate(best)]


TeacherSource = Teacher | Callable[[], Teacher] | None
"""A teacher, or a function that loads one only if some text needs it."""


def cascade(texts: Sequence[str], probabilities: np.ndarray, labels: Sequence[str],
            threshold: float, *, teacher: TeacherSource = None, student_seconds: float = 0.0,
            on_progress: Callable[[int], None] | None = None) -> CascadeResult:
    """Keep the student's predictions at or above `threshold`; send the others to
    `teacher` (without one, they stay the student's, marked `escalated`)."""
    predictions = student_predictions(probabilities, labels)
    hard = [i for i, p in enumerate(predictions) if p.confidence < threshold]
    for i in hard:
        predictions[i] = replace(predictions[i], escalated=True)
    if teacher is not None and not isinstance(teacher, Teacher):
        teacher = teacher() if hard else None
    cost = None
    if teacher is not None:
        before = replace(teacher.cost)
        if hard:
            answers = teacher.classify([texts[i] for i in hard], on_progress)
            for i, answer in zip(hard, answers, strict=True):
                predictions[i] = replace(answer, escalated=True)
        cost = teacher.cost.since(before)
    return CascadeResult(predictions, threshold, len(hard), student_seconds, cost)
