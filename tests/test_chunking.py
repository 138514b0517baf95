"""Chunking: structure first, then the token budget, with spans that point into the text."""

from __future__ import annotations

import itertools
import re

import pytest

from feldspar.errors import UserError
from feldspar.ingest.chunking import ChunkOptions, LineIndex, chunk
from feldspar.ingest.parsed import Block, Parsed


def words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def blocks_of(text: str, headings: tuple[str, ...] = ()) -> list[Block]:
    """One block per blank-line separated paragraph."""
    return [Block(m.start(), m.end(), "paragraph", headings)
            for m in re.finditer(r"\S(?:.|\n(?!\n))*", text)]


def test_small_blocks_are_packed_together_within_the_budget() -> None:
    text = "\n\n".join(f"para {i} has five words" for i in range(10))
    parsed = Parsed(text, blocks_of(text), "text")
    chunks = chunk(parsed, words, ChunkOptions(max_tokens=16, overlap=0))
    assert [c.tokens for c in chunks] == [15, 15, 15, 5]
    assert all(c.text == text[c.start:c.end] for c in chunks)
    # Nothing is lost or repeated.
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_a_chunk_never_spans_two_sections() -> None:
    text = "a b\n\nc d\n\ne f"
    blocks = [Block(0, 3, "paragraph", ("One",)), Block(5, 8, "paragraph", ("Two",)),
              Block(10, 13, "paragraph", ("Two",))]
    chunks = chunk(Parsed(text, blocks, "markdown"), words, ChunkOptions(max_tokens=100))
    assert [(c.text, c.headings) for c in chunks] == [("a b", ("One",)),
                                                      ("c d\n\ne f", ("Two",))]
    # The heading path is part of the embedded text and of the token count.
    assert chunks[1].embed_text() == "Two\n\nc d\n\ne f"
    assert chunks[1].tokens == 4 + 1 + 2


def test_pages_split_chunks_and_are_kept() -> None:
    text = "first page text\fsecond page text"
    blocks = [Block(0, 15, "paragraph", (), 1), Block(16, 32, "paragraph", (), 2)]
    chunks = chunk(Parsed(text, blocks, "pdf"), words)
    assert [(c.page, c.text) for c in chunks] == [(1, "first page text"),
                                                  (2, "second page text")]


def test_an_oversized_block_is_split_with_overlap_at_sentence_ends() -> None:
    sentences = [f"Sentence {i} says something new." for i in range(40)]
    text = " ".join(sentences)
    chunks = chunk(Parsed(text, [Block(0, len(text))], "text"), words,
                   ChunkOptions(max_tokens=40, overlap=5))
    assert len(chunks) > 4
    assert all(c.tokens <= 40 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert before.text.endswith(".")  # cut at a sentence end, not mid-sentence
        assert after.start < before.end  # overlap
        assert before.end - after.start < 60
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)


def test_line_numbers_point_into_the_text() -> None:
    text = "line one\nline two\n\nline four\nline five"
    blocks = [Block(0, 17, "text", ("A",)), Block(19, len(text), "text", ("B",))]
    chunks = chunk(Parsed(text, blocks, "text"), words,
                   ChunkOptions(max_tokens=16, overlap=0))
    assert [(c.line_start, c.line_end) for c in chunks] == [(1, 2), (4, 5)]
    lines = LineIndex(text)
    assert [lines.line(i) for i in (0, 8, 9, 19)] == [1, 1, 2, 4]


def test_a_block_with_no_break_is_cut_at_the_budget() -> None:
    text = " ".join(["word"] * 100)
    chunks = chunk(Parsed(text, [Block(0, len(text))], "text"), words,
                   ChunkOptions(max_tokens=30, overlap=0))
    assert [c.tokens for c in chunks] == [30, 30, 30, 10]


def test_invalid_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="at least 16"):
        ChunkOptions(max_tokens=4)
    with pytest.raises(UserError, match="chunk_overlap"):
        ChunkOptions(max_tokens=64, overlap=40)
