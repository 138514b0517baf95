"""JSON and JSON Lines: pretty-printed JSON with a block per top-level key or array item."""

from __future__ import annotations

import json
import re

from feldspar.ingest.parsed import Block, Parsed
from feldspar.ingest.parsers._blocks import span_block
from feldspar.ingest.parsers.text import decode, paragraph_blocks

_LINE = re.compile(r"[^\r\n]+")


def parse_json(data: bytes) -> Parsed:
    """Parse a JSON file into its pretty-printed text (two-space indent, like `json.dumps`).

    A top-level object gives a block per key (with the key as heading), a top-level array a
    block per item. A file that is not valid JSON (comments, trailing commas) keeps its own
    text, with paragraphs as blocks.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "json".

    Raises:
        ParseError: For binary content.
    """
    text = decode(data)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return Parsed(text=text, blocks=paragraph_blocks(text, 0, len(text)), type="json")
    if not isinstance(value, dict | list) or not value:
        rendered = json.dumps(value, indent=2, ensure_ascii=False)
        block = span_block(rendered, 0, len(rendered))
        return Parsed(text=rendered, blocks=[block] if block else [], type="json")
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    parts = ["{\n" if isinstance(value, dict) else "[\n"]
    length = 2
    blocks: list[Block] = []
    for index, (key, item) in enumerate(items):
        nested = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        prefix = f"  {json.dumps(key, ensure_ascii=False)}: " if isinstance(value, dict) else "  "
        part = prefix + nested + ("," if index < len(items) - 1 else "") + "\n"
        headings = (str(key),) if isinstance(value, dict) else ()
        block = span_block(part, 0, len(part), "text", headings)
        if block is not None:
            blocks.append(Block(length + block.start, length + block.end, "text", headings))
        parts.append(part)
        length += len(part)
    parts.append("}" if isinstance(value, dict) else "]")
    return Parsed(text="".join(parts), blocks=blocks, type="json")


def parse_json_lines(data: bytes) -> Parsed:
    """Parse a JSON Lines file: its own text, one block per non-empty line.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "json".

    Raises:
        ParseError: For binary content.
    """
    text = decode(data)
    blocks = [
        block
        for match in _LINE.finditer(text)
        if (block := span_block(text, match.start(), match.end())) is not None
    ]
    return Parsed(text=text, blocks=blocks, type="json")
