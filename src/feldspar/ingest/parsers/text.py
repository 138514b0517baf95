"""Plain text: decoding a file's bytes to text, and paragraphs as blocks."""

from __future__ import annotations

import codecs
import re

from feldspar.ingest.parsed import Block, Parsed, ParseError
from feldspar.ingest.parsers._blocks import span_block

# Byte order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Control characters that do not occur in text; a few stray ones are tolerated, since
# old text files carry the odd form feed or escape sequence.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01

# How much worse (in charset-normalizer's chaos and coherence) Windows-1252 may read.
_NEAR = 0.05

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def decode(data: bytes) -> str:
    """Decode a text file's bytes: a byte order mark, else UTF-8, else the detected encoding.

    Args:
        data: The file's bytes.

    Returns:
        The text, without the byte order mark; line endings are kept as they are.

    Raises:
        ParseError: "binary content" when the bytes are not text.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data[len(bom) :].decode(encoding))
            except UnicodeDecodeError:
                raise ParseError("binary content") from None
    if b"\x00" in data:
        raise ParseError("binary content")
    try:
        return _checked(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise ParseError("binary content")
    # On short Western European texts charset-normalizer often ranks a Baltic or Central
    # European code page first; Windows-1252 (a superset of Latin-1's printable characters)
    # is by far the likelier, so it wins whenever it reads about as well.
    for match in results:
        if (
            "cp1252" in match.could_be_from_charset
            and match.chaos <= best.chaos + _NEAR
            and match.coherence >= best.coherence - _NEAR
        ):
            return _checked(str(match))
    return _checked(str(best))


def _checked(text: str) -> str:
    """`text`, unless control characters show that it was binary data after all."""
    if text and len(_CONTROL.findall(text)) > _MAX_CONTROL_SHARE * len(text) + 2:
        raise ParseError("binary content")
    return text


def parse_text(data: bytes) -> Parsed:
    """Parse a plain text file: its own text, with paragraphs (split at blank lines) as blocks.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "text".

    Raises:
        ParseError: For binary content.
    """
    text = decode(data)
    return Parsed(text=text, blocks=paragraph_blocks(text, 0, len(text)), type="text")


def paragraph_blocks(text: str, start: int, end: int) -> list[Block]:
    """Blocks for the paragraphs of `text[start:end]`, split at blank lines.

    Args:
        text: The whole text.
        start: Where the stretch to split begins.
        end: Where it ends.

    Returns:
        One paragraph block per stretch between blank lines.
    """
    blocks: list[Block] = []
    cursor = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        block = span_block(text, cursor, match.start(), "paragraph")
        if block is not None:
            blocks.append(block)
        cursor = match.end()
    block = span_block(text, cursor, end, "paragraph")
    if block is not None:
        blocks.append(block)
    return blocks
