"""Citations: read the markers a model wrote, then keep only those the sources bear out.

Small and quantized models cite badly: markers go missing, point at the wrong source or at
none. So a marker is a hint. Each sentence is scored against every source by the
groundedness detector; a marker stays when its source supports the sentence, and a
sentence without a supported marker is attributed to the source that supports it best,
or left uncited and marked unsupported. Every citation returned was checked.

Example:
    >>> parse_markers("Leave is 25 days [1][3] or [2, 4].")
    [1, 3, 2, 4]
    >>> strip_markers("Leave is 25 days [1][3].")
    'Leave is 25 days.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from feldspar.grounding.features import Analysis, analyse
from feldspar.grounding.sentences import MARKER, split_sentences
from feldspar.rag.answer import Citation, Sentence, Source

_MARKER = re.compile(r"\s*" + MARKER)
_WORD = re.compile(r"\w+")

MAX_RANGE = 20
"""A range marker ([1-3]) names at most this many sources."""
SHORT_CLAIM = 4
"""A sentence of fewer words ("118 tackles.") is checked together with the question."""

Support = Callable[[Sequence[str], Sequence[str]], np.ndarray]
"""Scores sentences (rows) against passages (columns): P(passage supports sentence)."""


def parse_markers(text: str) -> list[int]:
    """The source numbers cited in `text`, in order of appearance; a range is expanded.

    Example:
        >>> parse_markers("A [2-4]. B [Source 1 and 5].")
        [2, 3, 4, 1, 5]
    """
    numbers: list[int] = []
    for match in _MARKER.finditer(text):
        parts = re.findall(r"\d+|[-–]", match.group())
        for i, part in enumerate(parts):
            if part in "-–":
                continue
            if i >= 2 and parts[i - 1] in "-–":
                low, high = int(parts[i - 2]), int(part)
                numbers.extend(range(low + 1, min(high, low + MAX_RANGE) + 1))
            else:
                numbers.append(int(part))
    return numbers


def strip_markers(text: str) -> str:
    """`text` without its citation markers."""
    return _MARKER.sub("", text).strip()


def best_quote(claim: str, passage: str) -> tuple[int, int]:
    """The span of the sentence of `passage` that shares most words with `claim`.

    Example:
        >>> p = "Offices open at 9. Staff get 25 days of leave. Parking is free."
        >>> s, e = best_quote("You get 25 days of leave", p)
        >>> p[s:e]
        'Staff get 25 days of leave.'
    """
    wanted = {w.lower() for w in _WORD.findall(claim)}
    best, best_score = (0, len(passage)), -1.0
    for start, end in split_sentences(passage) or [(0, len(passage))]:
        words = [w.lower() for w in _WORD.findall(passage[start:end])]
        if not words:
            continue
        shared = len(wanted.intersection(words))
        score = shared / (len(set(words)) ** 0.5)
        if score > best_score:
            best, best_score = (start, end), score
    return best


def _support(question: str, claims: list[str], own: list[Analysis],
             sources: Sequence[Source], support: Support) -> np.ndarray:
    """Each claim's support by each source, with nothing for a sentence with nothing to
    check ("Sure!") and, for a short answer checked with the question in front, nothing
    from a source that lacks one of its numbers or of the words it adds to the question."""
    if not claims or not sources:
        return np.zeros((len(claims), len(sources)))
    matrix = np.asarray(support(claims, [s.text for s in sources]), dtype=np.float64)
    found = [analyse(s.text) for s in sources]
    asked = analyse(question).stems
    for i, words in enumerate(own):
        if not words.checkable:
            matrix[i] = 0.0
        elif words.words < SHORT_CLAIM:
            for p, there in enumerate(found):
                if not (words.numbers <= there.numbers
                        and words.stems - asked <= there.all_stems):
                    matrix[i, p] = 0.0
    return matrix


def with_markers(sentence: str, markers: Sequence[int]) -> str:
    """`sentence` with its own markers replaced by `markers`, before the final stop.

    Example:
        >>> with_markers("Leave is 25 days [3].", [1])
        'Leave is 25 days [1].'
    """
    bare = strip_markers(sentence)
    cite = "".join(f"[{m}]" for m in markers)
    if not cite:
        return bare
    stop = re.search(r"[.!?。:;]+[\"')\]]*$", bare)
    cut = stop.start() if stop else len(bare)
    return f"{bare[:cut]} {cite}{bare[cut:]}"


def verify(question: str, text: str, sources: Sequence[Source], support: Support, *,
           threshold: float) -> tuple[str, list[Sentence], list[Citation]]:
    """Check each sentence of `text` against `sources`; returns the text with only checked
    markers, its sentences, and the citations whose source supports the sentence
    (probability >= `threshold`)."""
    spans = split_sentences(text)
    own = [analyse(text[a:b]) for a, b in spans]
    claims = [strip_markers(text[a:b]) if words.words >= SHORT_CLAIM
              else f"{question.strip()} {strip_markers(text[a:b])}"
              for (a, b), words in zip(spans, own, strict=True)]
    matrix = _support(question, claims, own, sources, support)
    parts: list[str] = []
    sentences: list[Sentence] = []
    citations: list[Citation] = []
    done = 0
    for i, (start, end) in enumerate(spans):
        row = matrix[i]
        written = list(dict.fromkeys(parse_markers(text[start:end])))
        kept = [m for m in written if 1 <= m <= len(sources) and row[m - 1] >= threshold]
        origin: Literal["model", "attributed"] = "model"
        if not kept and row.size and row.max() >= threshold:
            kept, origin = [int(row.argmax()) + 1], "attributed"
        for marker in kept:
            source = sources[marker - 1]
            q_start, q_end = best_quote(claims[i], source.text)
            citations.append(Citation(
                marker=marker, chunk_id=source.chunk_id, source=source.path,
                span=(source.span[0] + q_start, source.span[0] + q_end),
                quote=source.text[q_start:q_end], sentence=i,
                support=float(row[marker - 1]), origin=origin))
        parts.append(_MARKER.sub("", text[done:start]))
        offset = sum(len(p) for p in parts)
        sentence = with_markers(text[start:end], kept)
        parts.append(sentence)
        done = end
        score = float(row.max()) if row.size else 0.0
        sentences.append(Sentence(text=sentence, start=offset, end=offset + len(sentence),
                                  support=score, supported=score >= threshold,
                                  markers=tuple(kept), checked=own[i].checkable))
    parts.append(_MARKER.sub("", text[done:]))
    return "".join(parts), sentences, citations


class MarkerFilter:
    """Removes citation markers from streamed text, so that no unchecked marker is shown:
    text that may be the start of a marker is held back until it is known.

    Example:
        >>> f = MarkerFilter()
        >>> "".join(f.feed(p) for p in ["Leave is 25 days", " [", "1]", ". Yes [a]."]) + f.flush()
        'Leave is 25 days. Yes [a].'
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        cut = _open_tail(text)
        text, self._held = text[:cut], text[cut:]
        return _MARKER.sub("", text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return _MARKER.sub("", text)


_WORD_SO_FAR = (r"(?:(?:s|so|sou|sour|sourc|source|d|do|doc|docu|docum|docume|documen|"
                r"document)s?\s*)?")
_PREFIX = re.compile(
    r"\s*[\[【]\s*" + _WORD_SO_FAR + r"(?:\d{1,3}(?:\s*(?:,|;|&|and|[-–])\s*" + _WORD_SO_FAR
    + r"\d{1,3})*(?:\s*(?:,|;|&|a|an|and|[-–])?\s*" + _WORD_SO_FAR + r")?)?", re.IGNORECASE)
"""Text that may still grow into a marker: held back while streaming, however long."""


def _open_tail(text: str) -> int:
    """Where the text that might still become a marker begins (len(text) if nowhere)."""
    start = max(text.rfind("["), text.rfind("【"))
    if start >= 0 and "]" not in text[start:] and "】" not in text[start:]:
        begin = len(text[:start].rstrip())
        if _PREFIX.fullmatch(text[begin:]):
            return begin
    # Trailing whitespace may precede a marker: hold it too.
    return len(text.rstrip())
