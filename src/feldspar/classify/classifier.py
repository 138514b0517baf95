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
from collections.abc import Callable, Iterable, Sequence
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
LABEL_BATCH = 64
"""`label` stores the teacher's labels this many texts at a time."""
PROVENANCE = ("teacher", "shots", "review_below")
"""What a student remembers of its distillation, and keeps when trained again."""


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

        It learns from the stored human examples, with `examples` added to them (replacing
        an earlier label of the same text), and from the teacher's stored labels that it was
        at least `review_below` sure of (default: the value the last distillation used,
        else classify_review_below); a person's label wins where both labelled a text.
        Examples of labels removed since are skipped.
        """
        store = self.workspace.store
        if examples is not None and not examples:
            raise UserError("No examples given; give labelled texts, or None to train on "
                            "the stored examples")
        if examples is not None:
            self._check_labels(e.label for e in examples)
        previous = self._provenance()
        if review_below is not None:  # a distillation's choice, remembered from now on
            previous["review_below"] = review_below
        else:
            review_below = float(previous.get("review_below",  # type: ignore[arg-type]
                                              self.workspace.settings.classify_review_below))
        check_share("review_below", review_below)
        human = merge_by_text(store.examples(self.name, "human"), examples or ())
        seen = {e.text for e in human}
        taught = [e for e in store.examples(self.name, "teacher") if e.text not in seen
                  and (e.confidence is None or e.confidence >= review_below)]
        usable = [e for e in [*human, *taught] if e.label in self.labels]
        if not usable:
            raise UserError(f"Label set '{self.name}' has no examples to learn from; give "
                            f"some: feldspar classify train {self.name} --data labelled.csv")
        sources = {"human": sum(e.source == "human" for e in usable),
                   "teacher": sum(e.source == "teacher" for e in usable)}
        details = {**previous, **(info or {}), "sources": sources,
                   "skipped": len(human) + len(taught) - len(usable)}
        student = train([e.text for e in usable], [e.label for e in usable], self.labels,
                        self.embedder(), method=method, on_progress=on_progress, info=details)
        # The student first: should the examples then fail to be written, the stored ones
        # are the old ones, intact, and the student is still one trained on the new.
        store.put_student(student.stored(self.name))
        if examples is not None:
            store.replace_examples(self.name, human, ["human"])
        return student

    def _check_labels(self, labels: Iterable[str]) -> None:
        unknown = [label for label in labels if label not in self.labels]
        if unknown:
            raise UserError(f"'{unknown[0]}' is not a label of '{self.name}' (labels: "
                            f"{', '.join(self.labels[:10])}); fix it, or add the label with "
                            f"'feldspar classify update {self.name} --add {unknown[0]}'")

    def _provenance(self) -> dict[str, object]:
        """How the current student's teacher labels were made (kept when it is retrained)."""
        stored = self.workspace.store.student(self.name)
        info = dict(stored.info) if stored is not None else {}
        return {key: info[key] for key in PROVENANCE if key in info}

    # The teacher

    def teacher(self, model: str | ChatModel | None = None, *, shots: int | None = None
                ) -> Teacher:
        """The LLM teacher: `model`, else the one that distilled the student, else
        classify_teacher, else chat_model; few-shot from the stored human examples when
        `shots` (default: the distillation's, else classify_shots) is above 0."""
        settings = self.workspace.settings
        previous = self._provenance()
        if model is None or isinstance(model, str):
            from feldspar.models.loading import get_model

            name = model or previous.get("teacher") or settings.classify_teacher
            model = get_model(str(name) if name else None, settings=settings)
        if shots is None:
            shots = int(previous.get("shots", settings.classify_shots))  # type: ignore[call-overload]
        examples = self.workspace.store.examples(self.name, "human") if shots else []
        return Teacher(model, self.labels, self.labelset.descriptions, examples=examples,
                       shots=shots, embedder=self.workspace.embedder if shots else None,
                       mode=settings.classify_teacher_mode)

    def label(self, texts: Sequence[str], teacher: Teacher, *,
              on_label: Progress | None = None) -> list[Prediction]:
        """Have the teacher label texts, storing its labels (with their confidence) as it
        goes, LABEL_BATCH texts at a time, so that an interruption keeps what was done.
        They replace the teacher's earlier labels of the same texts only."""
        if not texts:
            raise UserError("No texts to label")
        store = self.workspace.store
        predictions: list[Prediction] = []
        for start in range(0, len(texts), LABEL_BATCH):
            batch = texts[start : start + LABEL_BATCH]
            labelled = teacher.classify(batch, on_label)
            fresh = [Example(text, p.label, "teacher", p.confidence)
                     for text, p in zip(batch, labelled, strict=True)]
            merged = merge_by_text(store.examples(self.name, "teacher"), fresh)
            store.replace_examples(self.name, merged, ["teacher"])
            predictions += labelled
        return predictions

    def distill(self, texts: Sequence[str], teacher: Teacher, *,
                review_below: float | None = None, method: Method = "logistic",
                on_label: Progress | None = None, on_train: Progress | None = None
                ) -> Distillation:
        """Have the teacher label `texts` (see `label`) and train the student on the ones
        it was sure of; the others are returned for review."""
        below = self.workspace.settings.classify_review_below if review_below is None \
            else review_below
        check_share("review_below", below)
        predictions = self.label(texts, teacher, on_label=on_label)
        review = [(text, p) for text, p in zip(texts, predictions, strict=True)
                  if p.confidence < below]
        student = self.train_on_teacher(predictions, teacher, below, method=method,
                                        on_train=on_train)
        return Distillation(predictions, review, student, below)

    def train_on_teacher(self, predictions: Sequence[Prediction], teacher: Teacher,
                         review_below: float, *, method: Method = "logistic",
                         on_train: Progress | None = None) -> Student:
        """Train the student after `label`, remembering the teacher and threshold."""
        sure = {p.label for p in predictions if p.confidence >= review_below}
        if len(sure) < 2 and not self.workspace.store.examples(self.name, "human"):
            labels = sorted({p.label for p in predictions})
            raise UserError(f"The teacher was sure of fewer than two labels (it gave "
                            f"{', '.join(labels[:5])}), so no student can learn from its "
                            "labels alone; they are stored: review them (feldspar classify "
                            "review) or add labelled examples (feldspar classify train "
                            "--data)")
        return self.train(method=method, review_below=review_below, on_progress=on_train,
                          info={"teacher": teacher.name, "shots": teacher.shots})

    def review(self, reviewed: Sequence[Example]) -> int:
        """Take a person's labels: each becomes a human example (replacing an earlier
        label of the same text, by a person or the teacher). Returns how many. Train
        again afterwards to use them."""
        self._check_labels(e.label for e in reviewed)
        store = self.workspace.store
        texts = {e.text for e in reviewed}
        fresh = [Example(e.text, e.label, "human") for e in reviewed]
        human = merge_by_text(store.examples(self.name, "human"), fresh)
        taught = [e for e in store.examples(self.name, "teacher") if e.text not in texts]
        store.replace_examples(self.name, [*human, *taught], ["human", "teacher"])
        return len(fresh)

    # Predicting

    def threshold(self, student: Student, threshold: float | None = None,
                  target_accuracy: float | None = None) -> tuple[float, float | None]:
        """The cascade's threshold, given or chosen on the student's out-of-fold accuracy
        curve for `target_accuracy` (default: classify_target_accuracy), and that target.
        inf when the student reaches the target on no share of the texts."""
        if threshold is not None:
            if target_accuracy is not None:
                raise UserError("Give either a threshold or a target accuracy, not both")
            check_share("The threshold", threshold)
            return threshold, None
        target = self.workspace.settings.classify_target_accuracy \
            if target_accuracy is None else target_accuracy
        if not 0.0 < target <= 1.0:
            raise UserError(f"The target accuracy must be in (0, 1], got {target}")
        found = student.threshold_for(target)
        return (float("inf") if found is None else found), target

    def predict(self, texts: Sequence[str], *, teacher: TeacherSource = None,
                threshold: float | None = None, target_accuracy: float | None = None,
                on_progress: Progress | None = None, on_teacher: Progress | None = None
                ) -> CascadeResult:
        """Labels for texts: the student's where it is sure enough, the teacher's (if
        given; a function that returns one is called only if some text needs it) for the
        rest. The threshold is given, or chosen for `target_accuracy` (see `threshold`)."""
        student = self.student()
        threshold, target = self.threshold(student, threshold, target_accuracy)
        started = time.perf_counter()
        probabilities = student.predict(texts, self.embedder(student.embed_model),
                                        on_progress=on_progress)
        result = cascade(texts, probabilities, self.labels, threshold, teacher=teacher,
                         student_seconds=time.perf_counter() - started, on_progress=on_teacher)
        result.target_accuracy = target
        return result


def merge_by_text(kept: Iterable[Example], fresh: Iterable[Example]) -> list[Example]:
    """`kept` with `fresh` added; a fresh example replaces a kept one of the same text.

    Example:
        >>> merge_by_text([Example("a", "x"), Example("b", "x")], [Example("a", "y")])
        [Example(text='b', label='x', source='human', confidence=None, id=None), \
Example(text='a', label='y', source='human', confidence=None, id=None)]
    """
    fresh = list(fresh)
    replaced = {e.text for e in fresh}
    return [e for e in kept if e.text not in replaced] + fresh


def check_share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise UserError(f"{name} must be between 0 and 1, got {value}")
