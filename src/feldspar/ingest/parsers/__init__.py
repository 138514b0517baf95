"""Document parsers: a file's bytes to one text and its blocks, chosen by the file's name.

`parse` picks the parser by extension (case-insensitive), then by special file names
(`Makefile`, `Dockerfile`), then, for files without a known extension, by a "#!" line.
Heavy libraries are imported by the parsers that use them, so importing this is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import PurePath

from feldspar.ingest.parsed import Parsed, ParseError
from feldspar.ingest.parsers.languages import EXTENSIONS as CODE_EXTENSIONS
from feldspar.ingest.parsers.languages import language_for, shebang_language

__all__ = ["SUPPORTED", "TEXT_FILENAMES", "ParseError", "Parsed", "document_type", "parse"]

# Extensions (lowercase, with the dot) of documents that are not source code, and their type.
_DOCUMENTS: dict[str, str] = {
    ".txt": "text", ".text": "text", ".rst": "text", ".log": "text", ".org": "text",
    ".adoc": "text", ".asciidoc": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown", ".mkd": "markdown",
    ".mdx": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".shtml": "html",
    ".pdf": "pdf", ".docx": "docx", ".pptx": "pptx", ".xlsx": "xlsx",
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
}

SUPPORTED: dict[str, str] = {**dict.fromkeys([*CODE_EXTENSIONS, ".m"], "code"), **_DOCUMENTS}
"""Every extension that is ingested, and the document type it gives ("code" for source).
Whole file names (`Makefile`) are in `languages.FILENAMES` and `TEXT_FILENAMES`."""

TEXT_FILENAMES = frozenset(
    {"readme", "license", "licence", "copying", "notice", "authors", "contributors",
     "changelog", "changes", "news", "history", "todo", "install", "patents", "codeowners"}
)
"""Names (lowercase) of files without an extension that are plain text."""


def document_type(path: PurePath, data: bytes) -> str | None:
    """The document type `parse` would give the file, or None for files that are not ingested.

    Args:
        path: The file's path; its name decides, case-insensitively.
        data: The file's bytes (or just its first few KiB), for "#!" lines and ".m" files.

    Returns:
        "text", "markdown", "html", "pdf", "docx", "pptx", "xlsx", "csv", "json" or "code";
        None for images, archives, executables and other unknown files.
    """
    if language_for(path, data) is not None:
        return "code"
    suffix = path.suffix.lower()
    if suffix in _DOCUMENTS:
        return _DOCUMENTS[suffix]
    if path.name.lower() in TEXT_FILENAMES:
        return "text"
    if shebang_language(data) is not None:
        return "code"
    return None


def parse(path: PurePath, data: bytes) -> Parsed:
    """Parse a file's bytes into one text and its blocks.

    Args:
        path: The file's path; its name picks the parser (see `document_type`).
        data: The file's bytes.

    Returns:
        The parsed document, with at least one block.

    Raises:
        ParseError: With a short reason: "unsupported file type", "binary content",
            "no text", "encrypted PDF", "corrupt PDF: ...", "corrupt DOCX: ...",
            "zip bomb: ...".
    """
    parser = _parser(path, data)
    if parser is None:
        raise ParseError("unsupported file type")
    parsed = parser(data)
    if not parsed.blocks:
        raise ParseError("no text")
    return parsed


def _parser(path: PurePath, data: bytes) -> Callable[[bytes], Parsed] | None:
    """The parser for the file, with the language or delimiter it needs bound."""
    from feldspar.ingest.parsers import (
        code,
        html,
        jsondoc,
        markdown,
        office,
        pdf,
        tables,
        text,
    )

    language = language_for(path, data)
    kind = document_type(path, data)
    if kind == "code":
        language = language or shebang_language(data)
        return partial(code.parse_code, language=language) if language else None
    suffix = path.suffix.lower()
    parsers: dict[str | None, Callable[[bytes], Parsed]] = {
        "text": text.parse_text,
        "markdown": markdown.parse_markdown,
        "html": html.parse_html,
        "pdf": pdf.parse_pdf,
        "docx": office.parse_docx,
        "pptx": office.parse_pptx,
        "xlsx": tables.parse_xlsx,
        "csv": partial(tables.parse_csv, delimiter="\t" if suffix == ".tsv" else None),
        "json": (jsondoc.parse_json_lines if suffix in (".jsonl", ".ndjson")
                 else jsondoc.parse_json),
    }
    return parsers.get(kind)
