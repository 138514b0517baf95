"""A label set at work in a workspace: training its student, distilling a teacher's labels,
reviewing them, and predicting through the cascade.

Example:
    >>> from feldspar import Workspace
    >>> from feldspar.classify import labelsets
    >>> from feldspar.models.testing import HashEmbedder
    >>> ws = Workspace(embedder=HashEmbedder())
    >>> _ = labelsets.create(ws.store, "mood", ["happy", "sad"])
    >>> clf = ws.classifier("mood")
    >>> student = clf.train([Example("I love it", "happy"), Example("I hate it", "sad")])
    >>> clf.predict(["I love it"], threshold=0.0).predictions[0].label
    'happy'
    >>> ws.close()
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from feldspar.classify.cascade import CascadeResult, TeacherSource, cascade
from feldspar.classify.student import Method, Student, train
from feldspar.classify.teacher import Prediction, Teacher
from feldspar.errors import UserError
from feldspar.store.records import Example, LabelSet, no_labelset

if TYPE_CHECKING:
    from feldspar.models.base import ChatModel, Embedder
    from feldspar.workspace import Workspace

Progress = Callable[[int], None]


@dataclass
class Distillation:
    """What `distill` did: the teacher's labels, the texts left for review, the student."""

    predictions: list[Prediction]
    review: list[tuple[str, Prediction]]
    """Texts the teacher was less sure of than `review_below`, with its guess."""
    student: Student
    review_below: float


class Classifier:
    """A label set in a workspace: its examples, its student and its teacher."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        found = workspace.store.labelset(name)
        if found is None:
            raise no_labelset(name)
        self.workspace = workspace
        self.labelset: LabelSet = found

    @property
    def name(self) -> str:
        return self.labelset.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.labelset.labels

    # The student

    def student(self) -> Student:
        """The trained student; an error when there is none or the labels changed since."""
        stored = self.workspace.store.student(self.name)
        if stored is None:
            raise UserError(f"Label set '{self.name}' has no student yet; train one: "
                            f"feldspar classify train {self.name} --data labelled.csv")
        student = Student.from_stored(stored)
        if student.labels != self.labels:
            raise UserError(f"The labels of '{self.name}' changed since its student was "
                            "trained; train it again: feldspar classify train "
                            f"{self.name}")
        return student

    def embedder(self, name: str | None = None) -> Embedder:
        """The workspace's embedder, or the one called `name` if that is another."""
        own = self.workspace.embedder
        if name is None or name == own.spec.name:
            return own
        from feldspar.models.loading import get_embedder

        return get_embedder(name, settings=self.workspace.settings)

    def train(self, examples: Sequence[Example] | None = None, *, method: Method = "logistic",
              review_below: float | None = None, on_progress: Progress | None = None,
              info: dict[str, object] | None = None) -> Student:
        """Train the student and keep it in the workspace.

        It learns from `examples` (which then replace the stored human examples) or,
        without them, from the stored human examples; and from the teacher's stored labels
        at least `review_below` sure of (default: classify_review_below); a person's label
        wins where both labelled a text. Examples of labels removed since are skipped.
        """
        store = self.workspace.store
        if examples is not None:
            unknown = [e.label for e in examples if e.label not in self.labels]
            if unknown:
                raise UserError(f"'{unknown[0]}' is not a label of '{self.name}' (labels: "
                                f"{', '.join(self.labels[:10])}); fix the example or add the "
                                f"label with 'feldspar classify update {self.name} --add'")
        human = list(examples) if examples is not None else store.examples(self.name, "human")
        if review_below is None:
            review_below = self.workspace.settings.classify_review_below
        seen = {e.text for e in human}
        taught = [e for e in store.examples(self.name, "teacher") if e.text not in seen
                  and (e.confidence is None or e.confidence >= review_below)]
        usable = [e for e in [*human, *taught] if e.label in self.labels]
        if not usable:
            raise UserError(f"Label set '{self.name}' has no examples to learn from; give "
                            f"some: feldspar classify train {self.name} --data labelled.csv")
        sources = {"human": sum(e.source == "human" for e in usable),
                   "teacher": sum(e.source == "teacher" for e in usable)}
        skipped = len(human) + len(taught) - len(usable)
        student = train([e.text for e in usable], [e.label for e in usable], self.labels,
                        self.embedder(), method=method, on_progress=on_progress,
                        info={**(info or {}), "sources": sources, "skipped": skipped})
        if examples is not None:
            store.replace_examples(self.name, examples, ["human"])
        store.put_student(student.stored(self.name))
        return student

    # The teacher

    def teacher(self, model: str | ChatModel | None = None, *, shots: int | None = None
                ) -> Teacher:
        """The LLM teacher (default: classify_teacher, else chat_model), few-shot from the
        stored human examples when `shots` (default: classify_shots) is above 0."""
        settings = self.workspace.settings
        if model is None or isinstance(model, str):
            from feldspar.models.loading import get_model

            model = get_model(model or settings.classify_teacher, settings=settings)
        shots = settings.classify_shots if shots is None else shots
        examples = self.workspace.store.examples(self.name, "human") if shots else []
        return Teacher(model, self.labels, self.labelset.descriptions, examples=examples,
                       shots=shots, embedder=self.workspace.embedder if shots else None,
                       mode=settings.classify_teacher_mode)

    def distill(self, texts: Sequence[str], teacher: Teacher, *,
                review_below: float | None = None, method: Method = "logistic",
                on_label: Progress | None = None, on_train: Progress | None = None
                ) -> Distillation:
        """Have the teacher label `texts`, keep its labels as examples, and train the
        student on the ones it was sure of; the others are returned for review.

        The teacher's labels are stored before training, so a training failure (say, the
        teacher gave every text one label) loses none of its work.
        """
        if not texts:
            raise UserError("No texts to label")
        below = self.workspace.settings.classify_review_below if review_below is None \
            else review_below
        predictions = teacher.classify(texts, on_label)
        examples = [Example(text, p.label, "teacher", p.confidence)
                    for text, p in zip(texts, predictions, strict=True)]
        self.workspace.store.replace_examples(self.name, examples, ["teacher"])
        review = [(text, p) for text, p in zip(texts, predictions, strict=True)
                  if p.confidence < below]
        if len({p.label for p in predictions if p.confidence >= below}) < 2 and \
                not self.workspace.store.examples(self.name, "human"):
            labels = sorted({p.label for p in predictions})
            raise UserError(f"The teacher was sure of fewer than two labels (it gave "
                            f"{', '.join(labels[:5])}), so no student can learn from its "
                            "labels; review them (feldspar classify review) or add labelled "
                            "examples (feldspar classify train --data)")
        student = self.train(method=method, review_below=below, on_progress=on_train,
                             info={"teacher": teacher.name, "shots": teacher.shots})
        return Distillation(predictions, review, student, below)

    def review(self, reviewed: Sequence[Example]) -> int:
        """Take a person's labels: each becomes a human example (replacing an earlier
        label of the same text, by a person or the teacher). Returns how many. Train
        again afterwards to use them."""
        unknown = [e for e in reviewed if e.label not in self.labels]
        if unknown:
            raise UserError(f"'{unknown[0].label}' is not a label of '{self.name}'")
        store = self.workspace.store
        texts = {e.text for e in reviewed}
        human = [e for e in store.examples(self.name, "human") if e.text not in texts]
        taught = [e for e in store.examples(self.name, "teacher") if e.text not in texts]
        fresh = [Example(e.text, e.label, "human") for e in reviewed]
        store.replace_examples(self.name, [*human, *fresh, *taught], ["human", "teacher"])
        return len(fresh)

    # Predicting

    def predict(self, texts: Sequence[str], *, teacher: TeacherSource = None,
                threshold: float | None = None, target_accuracy: float | None = None,
                on_progress: Progress | None = None, on_teacher: Progress | None = None
                ) -> CascadeResult:
        """Labels for texts: the student's where it is sure enough, the teacher's (if
        given; a function that returns one is called only if some text needs it) for the
        rest. The threshold is given, or chosen on the student's
        out-of-fold accuracy curve for `target_accuracy` (default:
        classify_target_accuracy)."""
        student = self.student()
        target = None
        if threshold is None:
            target = target_accuracy or self.workspace.settings.classify_target_accuracy
            found = student.threshold_for(target)
            threshold = float("inf") if found is None else found
        elif not 0.0 <= threshold <= 1.0:
            raise UserError(f"The threshold must be between 0 and 1, got {threshold}")
        started = time.perf_counter()
        probabilities = student.predict(texts, self.embedder(student.embed_model),
                                        on_progress=on_progress)
        result = cascade(texts, probabilities, self.labels, threshold, teacher=teacher,
                         student_seconds=time.perf_counter() - started, on_progress=on_teacher)
        result.target_accuracy = target
        return result
