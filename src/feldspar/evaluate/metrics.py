"""Scores of one reply: answer overlap (SQuAD-style), retrieval rank, citations.

Answers are compared after `normalize`, the SQuAD v1.1 normalisation extended to French:
lowercase, drop the elided articles l' and d', punctuation, the articles a/an/the and
le/la/les/un/une/des/du/de, and extra whitespace.

A retrieved or cited document matches a gold source when its stored path equals it or ends
with it after a path separator, so a gold source can be a bare file name.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from feldspar.rag.answer import Answer, Citation, Source

_ARTICLES = re.compile(r"\b(a|an|the|le|la|les|un|une|des|du|de)\b")
_ELISION = re.compile(r"\b[ld]['’]")
_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    """Text as answers are compared.

    Punctuation is deleted, not replaced by a space (as SQuAD does: "1,000" == "1000").

    Example:
        >>> normalize("The  Eiffel Tower!")
        'eiffel tower'
        >>> normalize("À l'automne de 1624, l’épidémie…")
        'à automne 1624 épidémie'
    """
    text = _ELISION.sub(" ", text.lower())
    text = "".join(c for c in text
                   if c not in _PUNCTUATION and not unicodedata.category(c).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised answer, else 0.0.

    Example:
        >>> exact_match("the Eiffel tower.", ["Eiffel Tower", "tour Eiffel"])
        1.0
        >>> exact_match("It is the Eiffel Tower.", ["Eiffel Tower"])
        0.0
    """
    return max((float(normalize(prediction) == normalize(a)) for a in answers), default=0.0)


def f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token F1 of the normalised prediction against a normalised answer.

    Tokens are compared as multisets; when either side normalises to nothing, F1 is 1.0 if
    both do and 0.0 otherwise.

    Example:
        >>> f1("It is the Eiffel Tower.", ["Eiffel Tower"])  # P = 2/4, R = 2/2
        0.6666666666666666
        >>> f1("Paris", ["Eiffel Tower", "Paris"])
        1.0
    """
    return max((_f1(normalize(prediction).split(), normalize(a).split()) for a in answers),
               default=0.0)


def _f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_gold(text: str, answers: Sequence[str]) -> bool:
    """Whether a normalised answer occurs in the normalised text as whole tokens.

    Example:
        >>> contains_gold("He fell ill in the autumn of 1624.", ["1624"])
        True
        >>> contains_gold("In 16245.", ["1624"])
        False
    """
    padded = f" {normalize(text)} "
    return any(g and f" {g} " in padded for g in map(normalize, answers))


def source_matches(path: str, gold: str) -> bool:
    """Whether a stored document path is the gold source (equal, or ending with
    separator + gold).

    Example:
        >>> source_matches("/data/corpus/xquad-en-a000-p001.txt", "xquad-en-a000-p001.txt")
        True
        >>> source_matches("/data/corpus/xquad-en-a000-p001.txt", "a000-p001.txt")
        False
    """
    path, gold = path.replace("\\", "/"), gold.replace("\\", "/")
    return path == gold or path.endswith("/" + gold.lstrip("/"))


def ranked_documents(paths: Sequence[str]) -> list[str]:
    """Document paths in rank order, each once (several chunks of one document count once).

    Example:
        >>> ranked_documents(["b.txt", "a.txt", "b.txt", "c.txt"])
        ['b.txt', 'a.txt', 'c.txt']
    """
    return list(dict.fromkeys(paths))


def recall_at_k(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """The share of gold sources found among the first `k` distinct documents of `ranked`.

    Example:
        >>> recall_at_k(["/c/x.txt", "/c/gold.txt"], ["gold.txt"], 1)
        0.0
        >>> recall_at_k(["/c/x.txt", "/c/gold.txt"], ["gold.txt"], 5)
        1.0
        >>> recall_at_k(["/c/a.txt", "/c/b.txt"], ["a.txt", "z.txt"], 5)
        0.5
    """
    top = ranked_documents(ranked)[:k]
    return sum(any(source_matches(p, g) for p in top) for g in gold) / len(gold)


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[str]) -> float:
    """1 / the rank of the first distinct document that matches a gold source; 0.0 if none.

    MRR is its mean over cases.

    Example:
        >>> reciprocal_rank(["/c/x.txt", "/c/x.txt", "/c/gold.txt"], ["gold.txt"])
        0.5
        >>> reciprocal_rank(["/c/x.txt"], ["gold.txt"])
        0.0
    """
    for rank, path in enumerate(ranked_documents(ranked), 1):
        if any(source_matches(path, g) for g in gold):
            return 1 / rank
    return 0.0


def gold_citations(cited: Sequence[str], gold: Sequence[str]) -> int:
    """How many citations (given by their document paths) cite a gold source.

    Citation precision is this over the number of citations; a case counts towards
    citation recall when it is at least 1.

    Example:
        >>> gold_citations(["/c/gold.txt", "/c/x.txt", "/c/gold.txt"], ["gold.txt"])
        2
    """
    return sum(any(source_matches(c, g) for g in gold) for c in cited)


def citation_valid(citation: Citation, sources: Sequence[Source]) -> bool:
    """Whether the citation's marker names a source of the answer (same chunk and document)
    and its quote is that source's text at the citation's span.

    Example:
        >>> src = Source(1, 7, "/c/a.txt", (100, 130), (3, 3), None, (),
        ...              "Böhme fell ill in 1624 at Görlitz", 0.9, 0.8)
        >>> cite = Citation(1, 7, "/c/a.txt", (106, 122), "fell ill in 1624", 0, 0.9, "model")
        >>> citation_valid(cite, [src])
        True
        >>> from dataclasses import replace
        >>> citation_valid(replace(cite, span=(107, 123)), [src])
        False
        >>> citation_valid(replace(cite, marker=2), [src])
        False
    """
    source = next((s for s in sources if s.marker == citation.marker), None)
    if source is None or (source.chunk_id, source.path) != (citation.chunk_id,
                                                            citation.source):
        return False
    start, end = (i - source.span[0] for i in citation.span)
    return 0 <= start <= end <= len(source.text) and source.text[start:end] == citation.quote


def valid_citations(answer: Answer) -> int:
    """How many of the answer's citations are valid (`citation_valid`); citation validity is
    this over the number of citations, and must be 1.0.

    Example:
        >>> src = Source(1, 7, "/c/a.txt", (0, 5), (1, 1), None, (), "hello", 0.9, 0.8)
        >>> cite = Citation(1, 7, "/c/a.txt", (0, 4), "hell", 0, 0.9, "model")
        >>> answer = Answer("q", "q", "Hello [1].", [cite], [], [src], False, None, "m")
        >>> valid_citations(answer), len(answer.citations)
        (1, 1)
    """
    return sum(citation_valid(c, answer.sources) for c in answer.citations)
