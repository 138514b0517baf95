"""Sentence spans for English and French text, by rules alone (nothing to download).

A sentence ends at `.`, `!`, `?`, `…` or `...`, taking along closing quotes and brackets
and any citation markers (`[1]`, `[2, 3]`) that follow, when the next text starts like a
sentence (a capital, a digit, an opening quote). Lines are boundaries too, except a line
that starts in lower case (the previous one was wrapped). List markers (`- `, `* `, `1. `,
`a) `) start a new sentence and are left out of its span.
"""

from __future__ import annotations

import re

# Words that end with a dot but do not end a sentence, lower case, without the final dot.
# Single letters (initials, "M. Dupont", the parts of "e.g.", "c.-à-d.") are handled apart.
_ABBREVIATIONS = """
    mr mrs ms dr prof st sr jr mt vs cf fig figs eq no nos vol vols pp ch sec approx
    dept est jan feb mar apr jun jul aug sep sept oct nov dec mme mlle mm me ste av apr
    env ex réf éd coll cie hon gen gov sgt capt col lt rev
"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS.split())

_SOURCE_WORD = r"(?i:(?:source|doc(?:ument)?)s?\s*)?"
MARKER = (r"[\[【]\s*" + _SOURCE_WORD + r"\d{1,3}(?:\s*(?i:,|;|&|and|[-–])\s*" + _SOURCE_WORD
          + r"\d{1,3})*\s*[\]】]")
"""A citation marker: [1], [1, 2], [1-3], [Source 4], 【5】 (the one pattern Feldspar reads)."""
# An end of sentence: the stop, closing quotes/brackets, then citation markers after it.
# One character class for the stops: "(?:\.{3}|[.])+" would backtrack exponentially on a
# run of dots ("Chapter 1........5").
_END = re.compile(
    r"[.!?…]+[\"'”’»)\]]*(?:[ \u00a0\u202f]»)?(?:\s*" + MARKER + r")*(?=\s|$)"
)
_STARTS_SENTENCE = re.compile(r"\s+[\"'“‘«(¿¡]*\s*[A-ZÀ-ÖØ-Þ0-9]")
_LIST_ITEM = re.compile(r"(?:[-*•·–—]|\d{1,3}[.)]|[a-zA-Z][)])\s+")
_WORD_BEFORE = re.compile(r"(\S+)$")
_ACRONYM = re.compile(r"(?:[a-z]\.)+[a-z]", re.IGNORECASE)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character (start, end) spans of the sentences of `text`, whitespace excluded.

    Example:
        >>> text = "Dr. Smith paid $3.5 million, i.e. a lot [1]. It rained. [2] Then?"
        >>> [text[a:b] for a, b in split_sentences(text)]
        ['Dr. Smith paid $3.5 million, i.e. a lot [1].', 'It rained. [2]', 'Then?']
        >>> t = "Points:\\n- M. Dupont est là.\\n2. Il pleut… Vraiment !"
        >>> [t[a:b] for a, b in split_sentences(t)]
        ['Points:', 'M. Dupont est là.', 'Il pleut…', 'Vraiment !']
    """
    spans: list[tuple[int, int]] = []
    for start, end in _blocks(text):
        spans.extend(_split_block(text, start, end))
    return spans


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of the line groups that sentences never cross, list markers excluded."""
    blocks: list[tuple[int, int]] = []
    position = 0
    for line in text.splitlines(keepends=True):
        line_start, line_end = position, position + len(line)
        position = line_end
        stripped = line.strip()
        if not stripped:
            blocks.append((-1, -1))  # a blank line: the next line starts a block
            continue
        first = line_start + len(line) - len(line.lstrip())
        item = _LIST_ITEM.match(text, first, line_end)
        if item is not None:
            first = item.end()
        continues = (item is None and blocks and blocks[-1][0] >= 0
                     and stripped[0].islower())
        if continues:
            blocks[-1] = (blocks[-1][0], line_end)
        else:
            blocks.append((first, line_end))
    return [(a, b) for a, b in blocks if a >= 0]


def _split_block(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    for match in _END.finditer(text, start, end):
        after = match.end()
        if after < end and not _STARTS_SENTENCE.match(text, after, end):
            continue
        if text[match.start()] == "." and _is_abbreviation(text[begin:match.start()]):
            continue
        spans.append(_trim(text, begin, after))
        begin = after
    spans.append(_trim(text, begin, end))
    return [(a, b) for a, b in spans if b > a]


def _is_abbreviation(before: str) -> bool:
    """Whether the word right before a single dot is an abbreviation, not a sentence end."""
    found = _WORD_BEFORE.search(before)
    if found is None:
        return False
    word = found.group(1).lstrip("\"'“‘«([")
    if len(word) == 1 and word.isalpha():
        return True  # an initial, "M.", or the end of "e.g" / "c.-à-d"
    return word.lower() in ABBREVIATIONS or _ACRONYM.fullmatch(word) is not None


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
