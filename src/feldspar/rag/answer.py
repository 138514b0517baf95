"""What `ask` returns: the answer, the sources it was given, and the checked citations.

Every citation in an `Answer` was verified: its quote is text of the cited chunk (the
span points into the document), and the groundedness detector found that the chunk
supports the sentence citing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from feldspar.datatypes import Usage

if TYPE_CHECKING:
    from feldspar.guard.verdicts import GuardResult


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as the model saw it: source [marker]."""

    marker: int
    """The number the prompt gave it, from 1."""
    chunk_id: int
    path: str
    """The document's stored path."""
    span: tuple[int, int]
    """Character span of the chunk in the document's extracted text."""
    lines: tuple[int, int]
    page: int | None
    headings: tuple[str, ...]
    text: str
    score: float
    """The retrieval score that placed it."""
    relevance: float
    """Cosine similarity to the query plus the share of the query's content words in the
    chunk (0 to 2); `ask` abstains when no source reaches `rag_min_relevance`."""


@dataclass(frozen=True)
class Citation:
    """One checked citation: a sentence of the answer and the passage that supports it."""

    marker: int
    chunk_id: int
    source: str
    """The document's stored path."""
    span: tuple[int, int]
    """Character span of `quote` in the document's extracted text."""
    quote: str
    """The part of the chunk that best supports the sentence (exact text of the chunk)."""
    sentence: int
    """Index of the citing sentence in `Answer.sentences`."""
    support: float
    """The groundedness detector's probability that the chunk supports the sentence."""
    origin: Literal["model", "attributed"]
    """"model" when the model wrote this marker, "attributed" when Feldspar found the
    supporting chunk for a sentence whose marker was missing or wrong."""


@dataclass(frozen=True)
class Sentence:
    """A sentence of the answer and how well the sources support it."""

    text: str
    start: int
    end: int
    """Character span in `Answer.text`."""
    support: float
    """Probability that the retrieved sources support it, in [0, 1]."""
    supported: bool
    markers: tuple[int, ...] = ()
    """The checked citation markers of this sentence."""
    checked: bool = True
    """False for a sentence with nothing to check ("Sure!"): it gets no citation and does
    not count in the answer's support."""


@dataclass
class Answer:
    """The result of `Workspace.ask`."""

    question: str
    query: str
    """What was searched: the question, or its standalone rewrite in a conversation."""
    text: str
    """The answer, with only checked citation markers; or the abstention reply."""
    citations: list[Citation]
    sentences: list[Sentence]
    """The answer's sentences, with spans in `text`. When an unsupported answer was
    replaced by the abstention reply, the sentences of the draft, to show what failed
    (their spans then do not index `text`)."""
    sources: list[Source]
    abstained: bool
    reason: str | None
    """Why it abstained: "no relevant passages", "not supported" or "model declined"."""
    model: str
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds from the call: rewrite_s (conversations), retrieve_s, prompt_s (until the
    model is called), first_token_s, generate_s, verify_s, total_s; and
    model_first_token_s, the model's own time to first token."""
    draft: str | None = None
    """The model's own text, before its citation markers were checked (None when the
    model was not asked)."""
    guard: dict[str, GuardResult] = field(default_factory=dict)
    """The guard's decisions on the question ("input") and the answer ("output"), when
    the guard is on."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `feldspar ask --json` prints)."""
        guard = {k: v.to_dict() for k, v in self.guard.items()}
        out = asdict(replace(self, guard={}))
        out["guard"] = guard
        out["usage"] = {"prompt_tokens": self.usage.prompt_tokens,
                        "completion_tokens": self.usage.completion_tokens,
                        "total_tokens": self.usage.total_tokens}
        return out
