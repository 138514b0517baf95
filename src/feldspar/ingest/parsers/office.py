"""Word and PowerPoint files: DOCX through python-docx, PPTX through python-pptx."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from feldspar.ingest.parsed import Parsed
from feldspar.ingest.parsers._archive import check_zip
from feldspar.ingest.parsers._blocks import TextBuilder, guarded, one_line, table_row

if TYPE_CHECKING:
    from docx.text.paragraph import Paragraph

_HEADING_STYLE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def parse_docx(data: bytes) -> Parsed:
    """Parse a Word document: headings (by style) give heading paths; lists; tables as rows.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "docx"; its text is a Markdown-like rendering.

    Raises:
        ParseError: "zip bomb: ..." or "corrupt DOCX: <detail>".
    """
    return _guarded(data, "DOCX", _docx)


def parse_pptx(data: bytes) -> Parsed:
    """Parse a PowerPoint file: one page per slide, its title as the heading of its blocks.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "pptx"; its text is a Markdown-like rendering.

    Raises:
        ParseError: "zip bomb: ..." or "corrupt PPTX: <detail>".
    """
    return _guarded(data, "PPTX", _pptx)


def _guarded(data: bytes, kind: str, parse: Callable[[bytes], Parsed]) -> Parsed:
    """Run `parse` after the zip check, turning any library error into a ParseError."""
    check_zip(data, kind)
    return guarded(kind, parse, data)


def _docx(data: bytes) -> Parsed:
    from docx import Document
    from docx.table import Table

    document = Document(io.BytesIO(data))
    builder = TextBuilder()
    path: list[tuple[int, str]] = []
    title = one_line(document.core_properties.title or "") or None
    for item in document.iter_inner_content():
        headings = tuple(text for _, text in path)
        if isinstance(item, Table):
            rows = (table_row(_docx_row(row.cells)) for row in item.rows)
            builder.add("\n".join(row for row in rows if row), "table", headings)
            continue
        text = item.text.strip()
        if not text:
            continue
        level = _docx_heading_level(item)
        if level is not None:
            text = one_line(text, 500)
            while path and path[-1][0] >= level:
                path.pop()
            builder.add(f"{'#' * max(level, 1)} {text}", "heading", tuple(t for _, t in path))
            path.append((level, text))
            title = title or text
        elif _docx_list_level(item) is not None:
            indent = "  " * (_docx_list_level(item) or 0)
            builder.add(f"{indent}- {text}", "list", headings)
        else:
            builder.add(text, "paragraph", headings)
    metadata = {}
    if document.core_properties.author:
        metadata["author"] = one_line(document.core_properties.author)
    return builder.build("docx", title=title, metadata=metadata)


def _docx_row(cells: Iterable[Any]) -> Iterator[str]:
    """The texts of a row's cells; a merged cell, which python-docx repeats, once."""
    previous = None
    for cell in cells:
        if cell._tc is not previous:
            yield cell.text
        previous = cell._tc


def _docx_heading_level(paragraph: Paragraph) -> int | None:
    """0 for the Title style, N for "Heading N" (by name, id or outline level), else None."""
    style = paragraph.style
    names = (style.name or "", style.style_id or "") if style is not None else ("", "")
    if "Title" in names:
        return 0
    for name in names:
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
    outline = paragraph._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if outline and str(outline[0]).isdigit() and int(outline[0]) < 9:
        return int(outline[0]) + 1
    return None


def _docx_list_level(paragraph: Paragraph) -> int | None:
    """The nesting level of a list paragraph (numbered, or styled "List ..."), else None."""
    levels = paragraph._p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
    if levels:
        return int(levels[0]) if str(levels[0]).isdigit() else 0
    if paragraph._p.xpath("./w:pPr/w:numPr"):
        return 0
    style = paragraph.style
    if style is not None and (style.name or "").startswith("List"):
        return 0
    return None


def _pptx(data: bytes) -> Parsed:
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    builder = TextBuilder()
    title = one_line(presentation.core_properties.title or "") or None
    slides = presentation.slides
    for number, slide in enumerate(slides, start=1):
        slide_title = _pptx_slide(builder, slide, number)
        title = title or slide_title or None
    metadata = {"slides": str(len(slides))}
    if presentation.core_properties.author:
        metadata["author"] = one_line(presentation.core_properties.author)
    return builder.build("pptx", title=title, metadata=metadata)


def _pptx_slide(builder: TextBuilder, slide: Any, number: int) -> str:
    """Add a slide's title, text frames, tables and notes; returns the title ("" if none)."""
    title_shape = slide.shapes.title
    title = ""
    if title_shape is not None and title_shape.has_text_frame:
        title = one_line(title_shape.text_frame.text, 500)
    headings: tuple[str, ...] = ()
    if title:
        builder.add(f"# {title}", "heading", (), number)
        headings = (title,)
    title_id = title_shape.shape_id if title_shape is not None else None
    for shape in _shapes(slide.shapes):
        if shape.shape_id == title_id:
            continue
        if getattr(shape, "has_table", False):
            rows = (table_row(cell.text for cell in row.cells) for row in shape.table.rows)
            builder.add("\n".join(row for row in rows if row), "table", headings, number)
        elif getattr(shape, "has_text_frame", False):
            _pptx_text(builder, shape.text_frame.paragraphs, headings, number)
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            builder.add(f"Notes: {notes}", "paragraph", headings, number)
    return title


def _shapes(shapes: Iterable[Any]) -> list[Any]:
    """A slide's shapes with groups opened, in reading order (top to bottom, left to right)."""
    found: list[Any] = []
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group shape
            found.extend(_shapes(shape.shapes))
        else:
            found.append(shape)
    return sorted(found, key=lambda shape: (shape.top or 0, shape.left or 0))


def _pptx_text(
    builder: TextBuilder, paragraphs: Iterable[Any], headings: tuple[str, ...], page: int
) -> None:
    """Add a text frame: one paragraph as such, several as a bulleted list."""
    lines = [(p.level, one_line(p.text, 2000)) for p in paragraphs]
    lines = [(level, text) for level, text in lines if text]
    if len(lines) == 1:
        builder.add(lines[0][1], "paragraph", headings, page)
    elif lines:
        text = "\n".join(f"{'  ' * level}- {line}" for level, line in lines)
        builder.add(text, "list", headings, page)
