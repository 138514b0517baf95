"""Helpers that build blocks: trimmed spans of a text, and rendered texts with their blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from feldspar.ingest.parsed import Block, BlockKind, Parsed, ParseError


def trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """The span `start:end` of `text` without leading and trailing whitespace.

    Args:
        text: The text the span points into.
        start: Offset of the span's first character.
        end: Offset just past the span's last character.

    Returns:
        The trimmed span; `start == end` when the span holds only whitespace.
    """
    start, end = max(start, 0), min(end, len(text))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def span_block(
    text: str,
    start: int,
    end: int,
    kind: BlockKind = "text",
    headings: tuple[str, ...] = (),
    page: int | None = None,
) -> Block | None:
    """A block for the trimmed span `start:end` of `text`, or None if it holds only whitespace.

    Args:
        text: The text the span points into.
        start: Offset of the span's first character.
        end: Offset just past the span's last character.
        kind: The block's kind.
        headings: The heading path above the block.
        page: The 1-based page, slide or sheet; None where pages mean nothing.

    Returns:
        The block, or None for an empty span.
    """
    start, end = trimmed(text, start, end)
    if start >= end:
        return None
    return Block(start, end, kind, headings, page)


class TextBuilder:
    """Renders a document piece by piece into one text, recording a block per piece.

    Pieces are joined by a blank line, so that every block stands on its own lines.
    """

    def __init__(self) -> None:
        """Start an empty text."""
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    def add(
        self,
        content: str,
        kind: BlockKind = "text",
        headings: tuple[str, ...] = (),
        page: int | None = None,
    ) -> None:
        """Append `content` as one block; whitespace-only content is skipped.

        Args:
            content: The rendered piece.
            kind: The block's kind.
            headings: The heading path above the block.
            page: The 1-based page, slide or sheet; None where pages mean nothing.
        """
        start, end = trimmed(content, 0, len(content))
        if start >= end:
            return
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        self._parts.append(content[start:end])
        self.blocks.append(Block(self._length, self._length + end - start, kind, headings, page))
        self._length += end - start

    def build(
        self,
        type_: str,
        title: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Parsed:
        """The rendered document.

        Args:
            type_: The document type.
            title: The document's title, if it has one.
            metadata: Other facts about the document (author, page count).

        Returns:
            The parsed document; its text is the pieces joined by blank lines.
        """
        return Parsed(
            text="".join(self._parts),
            blocks=list(self.blocks),
            type=type_,
            title=title,
            metadata=dict(metadata or {}),
        )


def one_line(text: str, limit: int = 200) -> str:
    """`text` with runs of whitespace collapsed to one space, cut to `limit` characters.

    Args:
        text: Any text, e.g. an exception message or a table cell.
        limit: The most characters to keep.

    Returns:
        The collapsed text.
    """
    collapsed = " ".join(text.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…"


def table_row(cells: Iterable[str]) -> str | None:
    """A table row rendered as `a | b | c`, without trailing empty cells; None if all empty.

    Args:
        cells: The cells' texts.

    Returns:
        The rendered row, or None.
    """
    values = [one_line(cell, 2000) for cell in cells]
    while values and not values[-1]:
        values.pop()
    return " | ".join(values) if values else None


def guarded(kind: str, parse: Callable[[bytes], Parsed], data: bytes) -> Parsed:
    """Run a library's parser, turning the many errors it raises on a damaged file into
    one ParseError("corrupt KIND: ...")."""
    try:
        return parse(data)
    except (ParseError, MemoryError, RecursionError):
        raise  # resource limits are reported by the caller, not as a corrupt file
    except Exception as error:
        raise ParseError(f"corrupt {kind}: {one_line(str(error) or type(error).__name__)}"
                         ) from None
