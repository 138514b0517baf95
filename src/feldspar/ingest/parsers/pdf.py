"""PDF: the text layer, page by page, with paragraph-ish chunks as blocks."""

from __future__ import annotations

import io
import re

from feldspar.ingest.parsed import Parsed, ParseError
from feldspar.ingest.parsers._blocks import TextBuilder, guarded, one_line

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_TRAILING_SPACE = re.compile(r"[ \t\r\f\v]+\n")


def parse_pdf(data: bytes) -> Parsed:
    """Parse a PDF's text layer: one block per paragraph-ish chunk, with its 1-based page.

    A PDF encrypted with an empty user password (only its permissions are protected) is read;
    one that needs a password is not. Scanned pages without a text layer give no text.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "pdf"; its text is the pages' text joined by blank lines.

    Raises:
        ParseError: "encrypted PDF", or "corrupt PDF: <detail>".
    """
    return guarded("PDF", _parse, data)


def _parse(data: bytes) -> Parsed:
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except DependencyError:  # AES needs the optional `cryptography` package
            decrypted = PasswordType.NOT_DECRYPTED
        if decrypted == PasswordType.NOT_DECRYPTED:
            raise ParseError("encrypted PDF")
    builder = TextBuilder()
    for number, page in enumerate(reader.pages, start=1):
        text = _TRAILING_SPACE.sub("\n", page.extract_text().replace("\x00", ""))
        for chunk in _PARAGRAPH_BREAK.split(text):
            builder.add(chunk, "paragraph", page=number)
    metadata = {"pages": str(len(reader.pages))}
    info = reader.metadata
    title = None
    if info is not None:
        title = one_line(str(info.title or "")) or None
        if info.author:
            metadata["author"] = one_line(str(info.author))
    return builder.build("pdf", title=title, metadata=metadata)
