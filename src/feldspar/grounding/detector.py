"""GroundednessDetector: is each sentence of a response supported by the context?"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from feldspar.errors import UserError
from feldspar.grounding.features import (
    Analysis,
    Context,
    analyse,
    claim_features,
    sentence_features,
    unmarked,
    view,
)
from feldspar.grounding.model import WEIGHTS, GroundingModel
from feldspar.grounding.sentences import split_sentences

if TYPE_CHECKING:
    from feldspar.config import Settings
    from feldspar.models.base import Embedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentenceScore:
    """One sentence of the response and how well the context supports it."""

    text: str
    start: int
    """Character offset of the sentence in the response."""
    end: int
    score: float
    """Probability that the context (all passages together) supports the sentence."""
    passage: int | None
    """The passage that supports it best on its own; None when no passage was given."""
    checked: bool = True
    """False for a sentence that states nothing checkable ('Sure!', a bare citation
    marker): it still has a score, but does not count in the response's score."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GroundingReport:
    """The verdict on a whole response."""

    score: float
    """Probability that everything the response states is supported by the context."""
    sentences: list[SentenceScore]
    threshold: float = 0.5
    """Scores at or above it count as grounded."""

    @property
    def grounded(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "grounded": self.grounded, "threshold": self.threshold,
                "sentences": [s.to_dict() for s in self.sentences]}


class GroundednessDetector:
    """Scores how well a context supports a response, sentence by sentence.

    The score comes from a small model (stored as JSON numbers) over word-overlap features
    and embedding similarities; see docs/grounding.md for what it was trained on and how
    well it does. The response's score is the model's verdict on all its checkable
    sentences together, capped by the weakest one's own score.

    Example:
        >>> detector = GroundednessDetector()
        >>> report = detector.check(
        ...     ["The Eiffel Tower is 330 metres tall.", "Lyon lies on the Rhône."],
        ...     "The Eiffel Tower is 330 metres tall. It was painted green in 2020.")
        >>> [s.passage for s in report.sentences]
        [0, 0]
        >>> report.sentences[0].score > report.sentences[1].score
        True
    """

    def __init__(self, embedder: Embedder | None = None, *, settings: Settings | None = None,
                 model: GroundingModel | None = None) -> None:
        """`model` defaults to the scorer packaged with Feldspar (weights.json)."""
        if embedder is None:
            from feldspar.models.loading import get_embedder

            embedder = get_embedder(None, settings=settings)
        self.embedder = embedder
        self.model = model if model is not None else GroundingModel.load(WEIGHTS)

    @property
    def threshold(self) -> float:
        """The score from which a response counts as grounded."""
        return self.model.threshold

    def check(self, context: str | Sequence[str], response: str) -> GroundingReport:
        """Score each sentence of `response`, and the whole of it, against `context` (one
        text, or a list of passages).

        A sentence with nothing checkable in it does not count in the overall score; a
        response with nothing checkable at all is scored as it is (it usually scores low:
        nothing in it can be traced to the context).
        """
        passages = _passages(context)
        spans = split_sentences(response)
        if not spans:
            raise UserError("The response is empty: there is nothing to check")
        texts = [response[a:b] for a, b in spans]
        claims = [analyse(t) for t in texts]
        ctx = Context.build(passages)
        vectors = self._embed(ctx, claims, texts)
        full = view(ctx, range(len(passages)), vectors.shape[1])
        rows = [sentence_features(c, v, full) for c, v in zip(claims, vectors, strict=True)]
        counted = _counted(claims)
        units = [claim_features([row]) for row in rows]
        units.append(claim_features([rows[i] for i in counted]))
        scores = self.model.predict(np.vstack(units))
        support = self._support_matrix(ctx, claims, vectors)
        sentences = [
            SentenceScore(text=t, start=a, end=b, score=float(scores[i]),
                          passage=int(support[i].argmax()) if support.shape[1] else None,
                          checked=claims[i].checkable)
            for i, (t, (a, b)) in enumerate(zip(texts, spans, strict=True))]
        # The response is as grounded as its weakest checkable sentence, at most.
        overall = min(float(scores[-1]), *(float(scores[i]) for i in counted))
        return GroundingReport(score=overall, sentences=sentences,
                               threshold=self.threshold)

    def support(self, sentences: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """Probability that each passage alone supports each sentence: shape
        (len(sentences), len(passages)); use it to verify or attribute citations.

        Example:
            >>> m = GroundednessDetector().support(
            ...     ["Lyon lies on the Rhône."], ["Paris is big.", "Lyon is on the Rhône."])
            >>> m.shape, int(m.argmax())
            ((1, 2), 1)
        """
        if isinstance(sentences, str) or isinstance(passages, str):
            raise UserError("support() takes lists of sentences and passages, not strings")
        if not sentences or not passages:
            return np.zeros((len(sentences), len(passages)))
        if any(not s.strip() for s in sentences):
            raise UserError("A sentence to check is empty")
        texts = list(sentences)
        claims = [analyse(t) for t in texts]
        ctx = Context.build(_passages(passages, allow_empty=True))
        return self._support_matrix(ctx, claims, self._embed(ctx, claims, texts))

    def features(self, passages: Sequence[str], claim: str) -> np.ndarray:
        """The feature vector the model scores for `claim` (all its checkable sentences)
        against `passages`; for training and inspection."""
        rows, counted = self.sentence_features(passages, claim)
        return claim_features([rows[i] for i in counted])

    def sentence_features(self, passages: Sequence[str], claim: str
                          ) -> tuple[list[list[float]], list[int]]:
        """Each sentence's features against all of `passages`, and which sentences count."""
        spans = split_sentences(claim) or [(0, len(claim))]
        texts = [claim[a:b] for a, b in spans]
        claims = [analyse(t) for t in texts]
        ctx = Context.build(_passages(passages))
        vectors = self._embed(ctx, claims, texts)
        full = view(ctx, range(len(ctx.passages)), vectors.shape[1])
        rows = [sentence_features(c, v, full) for c, v in zip(claims, vectors, strict=True)]
        return rows, _counted(claims)

    def _embed(self, ctx: Context, claims: Sequence[Analysis], texts: Sequence[str]
               ) -> np.ndarray:
        """Embed the claim sentences and the chosen context sentences in one batch, each
        distinct text once; fill the context's vectors; return the claims' vectors."""
        chosen = ctx.candidates([c for c in claims if c.checkable] or claims,
                                self.model.candidates_per_passage)
        wanted = [*(unmarked(t) for t in texts), *(ctx.passages[p][i] for p, i in chosen)]
        unique = list(dict.fromkeys(wanted))
        vectors = self.embedder.embed(unique, batch_size=64)
        row = {text: n for n, text in enumerate(unique)}
        for p, i in chosen:
            ctx.vectors[p][i] = vectors[row[ctx.passages[p][i]]]
        return np.asarray(vectors[[row[unmarked(t)] for t in texts]])

    def _support_matrix(self, ctx: Context, claims: Sequence[Analysis], vectors: np.ndarray
                        ) -> np.ndarray:
        dim = vectors.shape[1]
        views = [view(ctx, [p], dim) for p in range(len(ctx.passages))]
        if not views:
            return np.zeros((len(claims), 0))
        units = [claim_features([sentence_features(c, v, one)])
                 for c, v in zip(claims, vectors, strict=True) for one in views]
        return self.model.predict(np.vstack(units)).reshape(len(claims), len(views))


def _counted(claims: Sequence[Analysis]) -> list[int]:
    """The sentences that count in a response's score: the checkable ones, or all of them
    when none is."""
    return [i for i, c in enumerate(claims) if c.checkable] or list(range(len(claims)))


def _passages(context: str | Sequence[str], *, allow_empty: bool = False) -> list[str]:
    passages = [context] if isinstance(context, str) else list(context)
    if not allow_empty and not any(p.strip() for p in passages):
        raise UserError("The context is empty: give at least one passage with text")
    return passages
