"""Markdown: the file's own text, with markdown-it's block line ranges as blocks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from feldspar.ingest.parsed import Block, BlockKind, Parsed
from feldspar.ingest.parsers._blocks import span_block
from feldspar.ingest.parsers.text import decode

if TYPE_CHECKING:
    from markdown_it.token import Token

# markdown-it counts lines after turning \r\n and a lone \r into \n; so do we.
_LINE_END = re.compile(r"\r\n|\r|\n")
# YAML front matter: without a plugin markdown-it reads its closing "---" as a heading rule.
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(?:[\w.-]+[ \t]*:.*?\r?\n)?---[ \t]*(?:\r?\n|\Z)", re.DOTALL
)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)

# Top-level tokens that open a block, and the block's kind.
_KINDS: dict[str, BlockKind] = {
    "paragraph_open": "paragraph",
    "blockquote_open": "paragraph",
    "table_open": "table",
    "fence": "code",
    "code_block": "code",
    "html_block": "text",
}


def parse_markdown(data: bytes) -> Parsed:
    """Parse a Markdown file: headings, paragraphs, list items, code and tables as blocks.

    Each block carries the heading path above it; a heading block carries its parents' path.
    YAML front matter is one block, and its `title:` the document's title.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "markdown"; its text is the file's text.

    Raises:
        ParseError: For binary content.
    """
    text = decode(data)
    blocks: list[Block] = []
    title: str | None = None
    source = text
    front = _FRONT_MATTER.match(text)
    if front:
        block = span_block(text, 0, front.end(), "text")
        blocks.extend([block] if block is not None else [])
        title_match = _FRONT_TITLE.search(front.group())
        title = title_match.group(1).strip("'\"") or None if title_match else None
        # Blank the front matter out but keep its lines, so that line numbers still match.
        source = "\n" * front.group().count("\n") + text[front.end() :]
    first_h1 = _token_blocks(text, source, blocks)
    return Parsed(text=text, blocks=blocks, type="markdown", title=title or first_h1)


def _token_blocks(text: str, source: str, blocks: list[Block]) -> str | None:
    """Append blocks for markdown-it's top-level tokens in `source` (the text, or the text
    with its front matter blanked); returns the first level-1 heading."""
    from markdown_it import MarkdownIt

    line_starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
    path: list[tuple[int, str]] = []
    first_h1: str | None = None
    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        start, end = (line_starts[n] if n < len(line_starts) else len(text) for n in token.map)
        headings = tuple(heading for _, heading in path)
        if token.type == "heading_open" and token.level == 0:
            level = int(token.tag[1:])
            heading = _inline_text(tokens[index + 1]) if index + 1 < len(tokens) else ""
            while path and path[-1][0] >= level:
                path.pop()
            block = span_block(text, start, end, "heading", tuple(h for _, h in path))
            path.append((level, heading))
            first_h1 = first_h1 or (heading if level == 1 else None)
        elif token.type == "list_item_open" and token.level == 1:
            block = span_block(text, start, end, "list", headings)
        elif token.type in _KINDS and token.level == 0:
            block = span_block(text, start, end, _KINDS[token.type], headings)
        else:
            continue
        if block is not None and (not blocks or block.start >= blocks[-1].end):
            blocks.append(block)
    return first_h1


def _inline_text(token: Token) -> str:
    """The plain text of an inline token: its text and code spans, without markup."""
    parts = [c.content for c in token.children or () if c.type in ("text", "code_inline")]
    return " ".join("".join(parts).split()) or " ".join(token.content.split())
