"""Chunking: structure first, then a token budget measured with the embedder's tokenizer.

Blocks under the same heading path (and page) are packed whole into chunks until the
budget is reached; a chunk never spans two sections, so its heading path is true for all
of it. A block larger than the budget is split at token boundaries, preferring a blank
line, then a line end, then a sentence end, with `overlap` tokens repeated between the
pieces so that a sentence cut in two can still be found.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from feldspar.errors import UserError
from feldspar.ingest.parsed import Block, Parsed
from feldspar.store.records import Chunk

TokenSpans = Callable[[str], list[tuple[int, int]]]
"""Character spans of a text's tokens, as the embedder's tokenizer sees them."""

HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkOptions:
    """How big chunks are."""

    max_tokens: int = 256
    """Most tokens in a chunk, heading path included."""
    overlap: int = 32
    """Tokens repeated between the pieces of a block that had to be split."""

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise UserError(f"chunk_tokens must be at least 16, got {self.max_tokens}")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise UserError(f"chunk_overlap must be between 0 and half of chunk_tokens "
                            f"({self.max_tokens // 2}), got {self.overlap}")


class LineIndex:
    """Maps character offsets of a text to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._ends = [i for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._ends, offset) + 1


def chunk(parsed: Parsed, token_spans: TokenSpans,
          options: ChunkOptions | None = None) -> list[Chunk]:
    """Cut a parsed document into chunks that fit the embedder.

    Example:
        >>> from feldspar.ingest.parsed import Block, Parsed
        >>> text = "Intro\\n\\nFirst point.\\n\\nSecond point."
        >>> parsed = Parsed(text, [Block(0, 5, "heading", ()),
        ...                        Block(7, 19, "paragraph", ("Intro",)),
        ...                        Block(21, 34, "paragraph", ("Intro",))], "markdown")
        >>> words = lambda s: [(i, i + 1) for i in range(len(s.split()))]
        >>> [(c.text, c.headings, c.line_start) for c in chunk(parsed, words)]
        [('Intro\\n\\nFirst point.\\n\\nSecond point.', ('Intro',), 1)]
    """
    options = options or ChunkOptions()
    lines = LineIndex(parsed.text)
    out: list[Chunk] = []
    for (headings, page), section in itertools.groupby(
            _attach_headings(parsed.blocks), key=lambda b: (b.headings, b.page)):
        heading_tokens = (len(token_spans(HEADING_SEPARATOR.join(headings))) + 2
                          if headings else 0)
        # A long heading path must not starve the text: it gets at most half the budget.
        budget = max(options.max_tokens - heading_tokens, options.max_tokens // 2)
        for start, end, tokens in _pack(parsed.text, list(section), token_spans, budget,
                                        options.overlap):
            out.append(Chunk(
                text=parsed.text[start:end], start=start, end=end,
                line_start=lines.line(start), line_end=lines.line(max(start, end - 1)),
                page=page, headings=headings,
                tokens=tokens + heading_tokens, ordinal=len(out)))
    return out


def _attach_headings(blocks: Sequence[Block]) -> list[Block]:
    """Blocks with each heading moved into the section it opens, so that a title is not
    a chunk of its own but the start of the chunk it names."""
    out = list(blocks)
    for i in range(len(out) - 2, -1, -1):
        block, after = out[i], out[i + 1]
        depth = len(block.headings)
        if (block.kind == "heading" and block.page == after.page
                and len(after.headings) > depth and after.headings[:depth] == block.headings):
            out[i] = replace(block, headings=after.headings)
    return out


def _pack(text: str, blocks: Sequence[Block], token_spans: TokenSpans, budget: int,
          overlap: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, tokens) of the chunks of one section."""
    run: list[tuple[int, int, int]] = []

    def flush() -> Iterator[tuple[int, int, int]]:
        if run:
            yield run[0][0], run[-1][1], sum(n for _, _, n in run)
            run.clear()

    for block in blocks:
        spans = token_spans(text[block.start:block.end])
        if len(spans) > budget:
            yield from flush()
            yield from _split(text, block.start, spans, budget, overlap)
            continue
        if run and sum(n for _, _, n in run) + len(spans) > budget:
            yield from flush()
        run.append((block.start, block.end, len(spans)))
    yield from flush()


def _split(text: str, offset: int, spans: list[tuple[int, int]], budget: int,
           overlap: int) -> Iterator[tuple[int, int, int]]:
    """Pieces of one oversized block, cut at the best boundary in each window."""
    i, n = 0, len(spans)
    while i < n:
        j = min(i + budget, n)
        if j < n:
            j = _best_cut(text, offset, spans, i + budget // 2, j)
        yield offset + spans[i][0], offset + spans[j - 1][1], j - i
        if j >= n:
            return
        i = max(j - overlap, i + 1)


def _best_cut(text: str, offset: int, spans: list[tuple[int, int]], low: int,
              high: int) -> int:
    """The token index in [low, high] to cut before: the last one that follows a blank
    line, else a line end, else a sentence end; else `high`."""
    def gap(k: int) -> str:
        return text[offset + spans[k - 1][1] : offset + spans[k][0]]

    def blank_line(k: int) -> bool:
        return "\n\n" in gap(k)

    def line_end(k: int) -> bool:
        return "\n" in gap(k)

    def sentence_end(k: int) -> bool:
        return text[offset + spans[k - 1][1] - 1] in ".!?;" and gap(k) != ""

    for test in (blank_line, line_end, sentence_end):
        for k in range(high, low, -1):
            if test(k):
                return k
    return high
