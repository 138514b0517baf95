"""What a parser hands to the chunker: the document's text and its structure as spans.

A parser turns a file's bytes into one text (for text files, the file's own text, so that
character offsets and line numbers point into the file) and a list of blocks: spans of that
text with their kind, heading path and page. Chunks are spans of the same text, so every
chunk can say exactly where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list", "table", "code", "text"]


@dataclass(frozen=True)
class Block:
    """One structural unit of a document, as a span of `Parsed.text`."""

    start: int
    """Offset of the block's first character in `Parsed.text`."""
    end: int
    """Offset just past the block's last character."""
    kind: BlockKind = "text"
    headings: tuple[str, ...] = ()
    """The heading path above the block (for code: the enclosing class and function)."""
    page: int | None = None
    """1-based page (PDF) or slide (PPTX) or sheet index (XLSX); None where pages mean nothing."""


@dataclass(frozen=True)
class Parsed:
    """A parsed document."""

    text: str
    blocks: list[Block]
    """Non-overlapping blocks in document order; text between blocks is not indexed."""
    type: str
    """The document type: "text", "markdown", "html", "pdf", "docx", "pptx", "csv", "xlsx",
    "json" or "code"."""
    language: str | None = None
    """For code, the programming language (tree-sitter's name, e.g. "python")."""
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class ParseError(Exception):
    """A file that cannot be parsed; the message is the reason shown in the ingest summary."""
