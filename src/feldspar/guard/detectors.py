"""The detectors, registered in one place. Each scores texts for the risks it covers and
returns probabilities in [0, 1]; the guard picks the cheapest detector for each risk and
asks the LLM judge only about uncertain scores (see `feldspar.guard.screen`).

    rules       pii, secrets, injection phrases   regular expressions with checksums, spans
    classifier  harm family, jailbreak, injection  heads on embeddings, trained offline
    grounding   groundedness                       the RAG groundedness detector
    judge       every risk, custom ones too        a guardian LLM (Granite Guardian protocol)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from feldspar.guard.verdicts import Span

if TYPE_CHECKING:
    from feldspar.config import Settings
    from feldspar.grounding.detector import GroundednessDetector
    from feldspar.guard.classifier import GuardClassifier
    from feldspar.guard.risks import Risk
    from feldspar.models.base import Embedder


@dataclass(frozen=True)
class Item:
    """A text to screen, with what some risks are judged against."""

    text: str
    prompt: str | None = None
    """The user's question, for risks of an answer (answer_relevance, harm_engagement)."""
    context: tuple[str, ...] = ()
    """Retrieved passages, for the RAG risks (groundedness, context_relevance)."""


@dataclass(frozen=True)
class Score:
    """A detector's score for one risk of one text."""

    score: float
    spans: tuple[Span, ...] = ()


class Detector(Protocol):
    """Scores items for risks; one dict per item, with an entry for each risk it scored
    (a risk it cannot score for an item, such as groundedness without context, is left
    out)."""

    name: str

    def score(self, items: Sequence[Item], risks: Sequence[Risk]) -> list[dict[str, Score]]:
        ...


class RulesDetector:
    """PII, secrets and well-known injection phrases by regular expressions: a text's
    score is its best span's."""

    name = "rules"

    def score(self, items: Sequence[Item], risks: Sequence[Risk]) -> list[dict[str, Score]]:
        from feldspar.guard.injection import find_injection
        from feldspar.guard.pii import find_pii
        from feldspar.guard.secrets import find_secrets

        finders = {"pii": find_pii, "secrets": find_secrets,
                   "prompt_injection": find_injection}
        out: list[dict[str, Score]] = []
        for item in items:
            scores: dict[str, Score] = {}
            for risk in risks:
                spans = tuple(finders[risk.name](item.text))
                scores[risk.name] = Score(max((s.score for s in spans), default=0.0), spans)
            out.append(scores)
        return out


HEADS = {"jailbreak": "jailbreak", "prompt_injection": "prompt_injection"}
"""Classifier heads by risk; every other risk of the harm family reads the harm head."""


class ClassifierDetector:
    """The fast classifier (`feldspar.guard.classifier`), loaded on first use."""

    name = "classifier"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._model: GuardClassifier | None = None

    def _classifier(self) -> GuardClassifier:
        with self._lock:
            if self._model is None:
                from feldspar.guard.classifier import GuardClassifier

                self._model = GuardClassifier.load(self._settings)
            return self._model

    def score(self, items: Sequence[Item], risks: Sequence[Risk]) -> list[dict[str, Score]]:
        model = self._classifier()
        matrix = np.asarray(model.score([i.text for i in items]))
        columns = {name: k for k, name in enumerate(model.risks)}
        out: list[dict[str, Score]] = [{} for _ in items]
        for risk in risks:
            column = columns[HEADS.get(risk.name, "harm")]
            for row, scores in enumerate(out):
                scores[risk.name] = Score(float(matrix[row, column]))
        return out


class GroundingDetector:
    """groundedness = 1 - the probability that the context supports the answer."""

    name = "grounding"

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self._settings = settings
        self._embedder = embedder
        self._lock = threading.Lock()
        self._detector: GroundednessDetector | None = None

    def _grounding(self) -> GroundednessDetector:
        """The detector with its embedder and weights, loaded once, on first use."""
        with self._lock:
            if self._detector is None:
                from feldspar.grounding.detector import GroundednessDetector

                self._detector = GroundednessDetector(self._embedder, settings=self._settings)
            return self._detector

    def score(self, items: Sequence[Item], risks: Sequence[Risk]) -> list[dict[str, Score]]:
        detector = self._grounding()
        return [{r.name: Score(1.0 - detector.check(list(i.context), i.text).score)
                 for r in risks} if i.context and i.text.strip() else {} for i in items]


Factory = Callable[["Settings"], Detector]

DETECTORS: dict[str, Factory] = {
    "rules": lambda settings: RulesDetector(),
    "classifier": ClassifierDetector,
    "grounding": GroundingDetector,
}
"""Every fast detector by name. The judge is built apart, from the guard_model setting
(`feldspar.guard.judge`)."""
