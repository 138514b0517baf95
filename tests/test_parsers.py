"""Document parsers: every fixture is built here, with the real libraries, and parsed back."""

from __future__ import annotations

import io
import json
import typing
import zipfile
from pathlib import Path

import pytest

from feldspar.ingest.parsed import Parsed, ParseError
from feldspar.ingest.parsers import SUPPORTED, _archive, document_type, parse
from feldspar.ingest.parsers.languages import EXTENSIONS, FILENAMES, INTERPRETERS


def check_blocks(parsed: Parsed) -> None:
    """The invariants every parser promises: trimmed, non-empty, sorted, disjoint, in range."""
    assert parsed.blocks
    previous_end = 0
    for block in parsed.blocks:
        assert previous_end <= block.start < block.end <= len(parsed.text), block
        content = parsed.text[block.start : block.end]
        assert content.strip() == content != "", block
        previous_end = block.end


def block_texts(parsed: Parsed) -> list[str]:
    return [parsed.text[b.start : b.end] for b in parsed.blocks]


def described(parsed: Parsed) -> list[tuple[str, str, tuple[str, ...], int | None]]:
    """(text, kind, headings, page) per block."""
    return [(parsed.text[b.start : b.end], b.kind, b.headings, b.page) for b in parsed.blocks]


def find(parsed: Parsed, prefix: str) -> int:
    """The index of the one block whose text starts with `prefix`."""
    found = [i for i, text in enumerate(block_texts(parsed)) if text.startswith(prefix)]
    assert len(found) == 1, (prefix, block_texts(parsed))
    return found[0]


def line_of(parsed: Parsed, index: int) -> int:
    return parsed.text.count("\n", 0, parsed.blocks[index].start) + 1


# Plain text and encodings


def test_plain_text_keeps_the_file_text_and_splits_paragraphs() -> None:
    data = b"First paragraph\nstill first.\r\n\r\nSecond one.\n\n\n  Third.  \n"
    parsed = parse(Path("notes.TXT"), data)
    check_blocks(parsed)
    assert parsed.type == "text"
    assert parsed.text == data.decode()
    assert block_texts(parsed) == ["First paragraph\nstill first.", "Second one.", "Third."]


def test_latin1_text_is_decoded() -> None:
    text = (
        "Le château près de la forêt était très célèbre. Les élèves étudiaient "
        "la géographie, l'économie et la littérature française à l'école. Où est "
        "le garçon? Déjà midi, il mange une crème brûlée au café.\n"
    )
    parsed = parse(Path("lettre.txt"), text.encode("latin-1"))
    assert parsed.text == text


def test_utf8_bom_is_dropped_and_utf16_is_read() -> None:
    assert parse(Path("a.txt"), b"\xef\xbb\xbfhello").text == "hello"
    assert parse(Path("a.txt"), "hällo wörld".encode("utf-16")).text == "hällo wörld"


def test_binary_content_with_a_text_extension_is_refused() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    with pytest.raises(ParseError, match=r"^binary content$"):
        parse(Path("image.txt"), png)
    with pytest.raises(ParseError, match=r"^binary content$"):
        parse(Path("script.py"), b"print(1)\x00\x01\x02")


def test_empty_text_is_refused() -> None:
    with pytest.raises(ParseError, match=r"^no text$"):
        parse(Path("empty.md"), b"  \n\n\t\n")
    with pytest.raises(ParseError, match=r"^no text$"):
        parse(Path("empty.html"), b"<html><body><script>x()</script></body></html>")


# Markdown


MARKDOWN = """\
# Guide

Intro paragraph
over two lines.

## Install

- step one
  - nested
- step two

```sh
pip install feldspar
```

### Extras

| a | b |
|---|---|
| 1 | 2 |

## Use

> quoted
"""


def test_markdown_blocks_headings_and_line_numbers() -> None:
    parsed = parse(Path("guide.md"), MARKDOWN.encode())
    check_blocks(parsed)
    assert parsed.type == "markdown"
    assert parsed.text == MARKDOWN
    assert parsed.title == "Guide"
    expected = {  # block start: (line, kind, heading path)
        "# Guide": (1, "heading", ()),
        "Intro paragraph": (3, "paragraph", ("Guide",)),
        "## Install": (6, "heading", ("Guide",)),
        "- step one": (8, "list", ("Guide", "Install")),
        "- step two": (10, "list", ("Guide", "Install")),
        "```sh": (12, "code", ("Guide", "Install")),
        "### Extras": (16, "heading", ("Guide", "Install")),
        "| a | b |": (18, "table", ("Guide", "Install", "Extras")),
        "## Use": (22, "heading", ("Guide",)),
        "> quoted": (24, "paragraph", ("Guide", "Use")),
    }
    assert len(parsed.blocks) == len(expected)
    for prefix, (line, kind, headings) in expected.items():
        index = find(parsed, prefix)
        block = parsed.blocks[index]
        assert (line_of(parsed, index), block.kind, block.headings) == (line, kind, headings)
    assert block_texts(parsed)[find(parsed, "- step one")] == "- step one\n  - nested"


def test_markdown_front_matter_is_one_block_and_gives_the_title() -> None:
    text = "---\ntitle: 'Handbook'\ntags: [a]\n---\n# Heading\n\nBody.\n"
    parsed = parse(Path("h.markdown"), text.encode())
    check_blocks(parsed)
    assert parsed.title == "Handbook"
    assert block_texts(parsed)[0].startswith("---\ntitle")
    assert [parsed.blocks[i].kind for i in range(3)] == ["text", "heading", "paragraph"]
    assert line_of(parsed, find(parsed, "Body.")) == 7


# HTML


def test_html_drops_scripts_and_navigation_and_renders_structure() -> None:
    page = b"""<!doctype html><html><head><title>The Page</title>
    <style>body { color: red }</style><script>var secret = "SCRIPT";</script></head>
    <body><nav><a href="/">NAVIGATION</a></nav>
    <h1>Main</h1><p>First <b>bold</b> paragraph.</p>
    <h2>Sub</h2><ul><li>one</li><li>two</li></ul>
    <table><tr><th>h1</th><th>h2</th></tr><tr><td>x</td><td>y</td></tr></table>
    <pre>code  line
  indented</pre><noscript>NOSCRIPT</noscript><footer>FOOTER</footer>
    <script>document.write("LATE SCRIPT")</script></body></html>"""
    parsed = parse(Path("page.HTM"), page)
    check_blocks(parsed)
    assert parsed.type == "html"
    assert parsed.title == "The Page"
    for dropped in ("SCRIPT", "secret", "color", "NAVIGATION", "NOSCRIPT", "FOOTER"):
        assert dropped not in parsed.text
    assert block_texts(parsed) == [
        "# Main",
        "First bold paragraph.",
        "## Sub",
        "- one",
        "- two",
        "h1 | h2\nx | y",
        "```\ncode  line\n  indented\n```",
    ]
    kinds = [(b.kind, b.headings) for b in parsed.blocks]
    assert kinds[1] == ("paragraph", ("Main",))
    assert kinds[3] == ("list", ("Main", "Sub"))
    assert kinds[5] == ("table", ("Main", "Sub"))
    assert kinds[6] == ("code", ("Main", "Sub"))


# PDF


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, one page per list."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        shows = " ".join(f"({line}) Tj 0 -60 Td" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {shows} ET".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted(pdf: bytes, user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PDF_PAGES = [["Alpha page one", "still page one"], ["Beta page two"]]


def test_pdf_text_and_page_numbers() -> None:
    parsed = parse(Path("doc.pdf"), make_pdf(PDF_PAGES))
    check_blocks(parsed)
    assert parsed.type == "pdf"
    assert parsed.metadata["pages"] == "2"
    pages = {text: page for text, _, _, page in described(parsed)}
    assert pages == {"Alpha page one\nstill page one": 1, "Beta page two": 2}


def test_pdf_with_a_user_password_is_refused() -> None:
    with pytest.raises(ParseError, match=r"^encrypted PDF$"):
        parse(Path("secret.pdf"), encrypted(make_pdf(PDF_PAGES), "secret"))


def test_pdf_with_only_an_owner_password_is_read() -> None:
    parsed = parse(Path("locked.pdf"), encrypted(make_pdf(PDF_PAGES), ""))
    assert "Beta page two" in parsed.text
    assert parsed.blocks[-1].page == 2


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(PDF_PAGES)[:300],
        make_pdf(PDF_PAGES)[:-60],
        b"%PDF-1.7\n" + bytes(range(256)) * 8,
        b"not a pdf at all",
    ],
    ids=["truncated-early", "truncated-late", "garbage", "text"],
)
def test_corrupt_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"^corrupt PDF: "):
        parse(Path("broken.pdf"), data)


# Office files


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Annual Report", level=0)
    document.add_heading("Summary", level=1)
    document.add_paragraph("Revenue grew.")
    document.add_paragraph("first point", style="List Bullet")
    document.add_paragraph("second point", style="List Number")
    document.add_heading("Numbers", level=2)
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate([["Region", "Q1", "Q2"], ["North", "10", "12"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Outlook", level=1)
    document.add_paragraph("More growth.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_headings_lists_and_tables() -> None:
    parsed = parse(Path("report.docx"), make_docx())
    check_blocks(parsed)
    assert parsed.type == "docx"
    assert parsed.title == "Annual Report"
    blocks = [(text, kind, headings) for text, kind, headings, _ in described(parsed)]
    assert blocks == [
        ("# Annual Report", "heading", ()),
        ("# Summary", "heading", ("Annual Report",)),
        ("Revenue grew.", "paragraph", ("Annual Report", "Summary")),
        ("- first point", "list", ("Annual Report", "Summary")),
        ("- second point", "list", ("Annual Report", "Summary")),
        ("## Numbers", "heading", ("Annual Report", "Summary")),
        ("Region | Q1 | Q2\nNorth | 10 | 12", "table", ("Annual Report", "Summary", "Numbers")),
        ("# Outlook", "heading", ("Annual Report",)),
        ("More growth.", "paragraph", ("Annual Report", "Outlook")),
    ]


def rewrite_zip(data: bytes, member: str, change: typing.Callable[[bytes], bytes]) -> bytes:
    """A copy of a zip with one member's bytes changed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, change(content) if info.filename == member else content)
    return out.getvalue()


def test_docx_external_entities_are_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    doctype = f'<!DOCTYPE w:document [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'.encode()

    def inject(xml: bytes) -> bytes:
        return xml.replace(b"?>", b"?>" + doctype, 1).replace(b"More growth.", b"&x;")

    parsed = parse(Path("evil.docx"), rewrite_zip(make_docx(), "word/document.xml", inject))
    assert "Revenue grew." in parsed.text
    assert "TOP SECRET" not in parsed.text


@pytest.mark.parametrize("name", ["bad.docx", "bad.pptx", "bad.xlsx"])
def test_corrupt_office_files_are_refused(name: str) -> None:
    kind = name.rsplit(".", 1)[1].upper()
    with pytest.raises(ParseError, match=rf"^corrupt {kind}: "):
        parse(Path(name), bytes(range(256)) * 16)
    # A zip, but not an office file.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hello")
    with pytest.raises(ParseError, match=rf"^corrupt {kind}: "):
        parse(Path(name), out.getvalue())


def test_zip_bomb_by_compression_ratio_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", bytes(20 * 1024 * 1024))  # ~1000:1
    with pytest.raises(ParseError, match=r"^zip bomb: word/document.xml compressed"):
        parse(Path("bomb.docx"), out.getvalue())


def test_zip_bomb_by_total_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_docx()
    parse(Path("ok.docx"), data)
    monkeypatch.setattr(_archive, "MAX_UNCOMPRESSED", 10_000)
    with pytest.raises(ParseError, match=r"^zip bomb: 0 MiB uncompressed$"):
        parse(Path("big.docx"), data)


def test_pptx_slides_are_pages_with_their_titles() -> None:
    import pptx

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Roadmap"
    body = slide.placeholders[1].text_frame
    body.text = "Ship parsers"
    sub = body.add_paragraph()
    sub.text = "with tests"
    sub.level = 1
    slide.notes_slide.notes_text_frame.text = "Mention the deadline."
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "Budget"
    table = slide.shapes.add_table(2, 2, 0, 0, 914400, 914400).table
    for (r, c), value in {(0, 0): "Item", (0, 1): "Cost", (1, 0): "GPU", (1, 1): "9"}.items():
        table.cell(r, c).text = value
    out = io.BytesIO()
    presentation.save(out)

    parsed = parse(Path("deck.pptx"), out.getvalue())
    check_blocks(parsed)
    assert parsed.type == "pptx"
    assert parsed.metadata["slides"] == "2"
    assert described(parsed) == [
        ("# Roadmap", "heading", (), 1),
        ("- Ship parsers\n  - with tests", "list", ("Roadmap",), 1),
        ("Notes: Mention the deadline.", "paragraph", ("Roadmap",), 1),
        ("# Budget", "heading", (), 2),
        ("Item | Cost\nGPU | 9", "table", ("Budget",), 2),
    ]


# Spreadsheets


def test_xlsx_sheets_are_pages_with_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import openpyxl  # type: ignore[import-untyped, unused-ignore]

    from feldspar.ingest.parsers import tables

    monkeypatch.setattr(tables, "ROWS_PER_BLOCK", 2)
    workbook = openpyxl.Workbook()
    people = workbook.active
    people.title = "People"
    people.append(["Name", "Age", "Joined"])
    people.append(["Ada", 36, dt.datetime(2020, 5, 1)])
    people.append([None, None, None])
    people.append(["Linus", 28.0, None])
    workbook.create_sheet("Empty")
    totals = workbook.create_sheet("Totals")
    totals.append(["Sum", 2.5])
    totals["C1"] = "=1+1"  # no cached value in a file openpyxl wrote: shows as empty
    out = io.BytesIO()
    workbook.save(out)

    parsed = parse(Path("book.XLSX"), out.getvalue())
    check_blocks(parsed)
    assert parsed.type == "xlsx"
    assert parsed.text.startswith("# People\n\nName | Age | Joined\n")
    assert described(parsed) == [
        ("# People", "heading", (), 1),
        ("Name | Age | Joined\nAda | 36 | 2020-05-01", "table", ("People",), 1),
        ("Linus | 28", "table", ("People",), 1),
        ("# Totals", "heading", (), 3),
        ("Sum | 2.5", "table", ("Totals",), 3),
    ]


def test_csv_dialect_is_sniffed() -> None:
    data = b'city;population;note\nBerlin;3645000;"capital; big"\nBonn;330000;\n'
    parsed = parse(Path("cities.csv"), data)
    check_blocks(parsed)
    assert parsed.type == "csv"
    assert parsed.text == "city | population | note\nBerlin | 3645000 | capital; big\nBonn | 330000"
    assert [(b.kind, b.page) for b in parsed.blocks] == [("table", None)]


def test_tsv_uses_tabs() -> None:
    parsed = parse(Path("t.tsv"), b"a,1\tb\nc\td,2\n")
    assert parsed.text == "a,1 | b\nc | d,2"


# JSON


def test_json_object_is_pretty_printed_with_a_block_per_key() -> None:
    value = {"name": "feldspar", "tags": ["rag", "llm"], "nested": {"a": 1, "b": None}}
    parsed = parse(Path("meta.json"), json.dumps(value, separators=(",", ":")).encode())
    check_blocks(parsed)
    assert parsed.type == "json"
    assert parsed.text == json.dumps(value, indent=2)
    assert [b.headings for b in parsed.blocks] == [("name",), ("tags",), ("nested",)]
    assert block_texts(parsed)[1] == '"tags": [\n    "rag",\n    "llm"\n  ],'


def test_json_array_scalar_invalid_and_lines() -> None:
    parsed = parse(Path("list.json"), b'[1, {"x": "\\u00e9"}]')
    assert parsed.text == '[\n  1,\n  {\n    "x": "\u00e9"\n  }\n]'
    assert block_texts(parsed) == ["1,", '{\n    "x": "\u00e9"\n  }']
    assert block_texts(parse(Path("n.json"), b"42")) == ["42"]
    lenient = "// comment\n{\"a\": 1,}\n"
    assert parse(Path("tsconfig.json"), lenient.encode()).text == lenient
    lines = '{"a": 1}\n\n{"b": 2}\n'
    parsed = parse(Path("rows.jsonl"), lines.encode())
    check_blocks(parsed)
    assert parsed.text == lines
    assert block_texts(parsed) == ['{"a": 1}', '{"b": 2}']


# Source code


PYTHON = '''\
"""Module docstring."""

import os
from typing import Any

CONSTANT = 1


# Helper comment directly above.
@decorator
def helper(x: int) -> int:
    """Help."""
    return x + 1


class Store(Base):
    """A store."""

    limit = 10

    def get(self, key: str) -> Any:
        return key

    # about put
    @staticmethod
    def put(key: str) -> None:
        pass


if __name__ == "__main__":
    helper(1)
'''


def code_blocks(parsed: Parsed) -> list[tuple[int, tuple[str, ...], str]]:
    """(first line, headings, first line text) per block."""
    return [
        (line_of(parsed, i), b.headings, text.split("\n", 1)[0])
        for i, (text, b) in enumerate(zip(block_texts(parsed), parsed.blocks, strict=True))
    ]


def test_python_blocks_follow_definitions() -> None:
    parsed = parse(Path("store.py"), PYTHON.encode())
    check_blocks(parsed)
    assert (parsed.type, parsed.language) == ("code", "python")
    assert parsed.text == PYTHON
    assert all(b.kind == "code" for b in parsed.blocks)
    assert code_blocks(parsed) == [
        (1, (), '"""Module docstring."""'),
        (9, ("helper",), "# Helper comment directly above."),
        (16, ("Store",), "class Store(Base):"),
        (21, ("Store", "get"), "def get(self, key: str) -> Any:"),
        (24, ("Store", "put"), "# about put"),
        (30, (), 'if __name__ == "__main__":'),
    ]
    # Nothing but whitespace falls between blocks.
    ends = [0, *(b.end for b in parsed.blocks)]
    gaps = [parsed.text[end : b.start] for end, b in zip(ends, parsed.blocks, strict=False)]
    assert all(not gap.strip() for gap in gaps)
    assert block_texts(parsed)[4].endswith("def put(key: str) -> None:\n        pass")


JAVASCRIPT = """\
import { x } from "./x.js";

// Adds one.
function addOne(n) {
  return n + 1;
}

export class Counter {
  constructor() {
    this.n = 0;
  }

  increment() {
    this.n += 1;
  }
}

const double = (n) => n * 2;
"""

GO = """\
package main

import "fmt"

// Point is a point.
type Point struct {
\tX, Y int
}

func (p *Point) Norm() int {
\treturn p.X*p.X + p.Y*p.Y
}

func main() {
\tfmt.Println(Point{1, 2}.Norm())
}
"""

RUST = """\
use std::fmt;

/// A shape.
#[derive(Debug)]
pub struct Shape {
    sides: u32,
}

impl Shape {
    pub fn new(sides: u32) -> Self {
        Shape { sides }
    }

    fn sides(&self) -> u32 {
        self.sides
    }
}

fn main() {}
"""

C = """\
#include <stdio.h>

struct pair { int a, b; };

/* Adds. */
static int add(int a, int b)
{
    return a + b;
}

int main(void)
{
    printf("%d", add(1, 2));
    return 0;
}
"""


@pytest.mark.parametrize(
    ("name", "source", "language", "expected"),
    [
        (
            "app.mjs",
            JAVASCRIPT,
            "javascript",
            [
                (1, (), 'import { x } from "./x.js";'),
                (3, ("addOne",), "// Adds one."),
                (8, ("Counter",), "export class Counter {"),
                (9, ("Counter", "constructor"), "constructor() {"),
                (13, ("Counter", "increment"), "increment() {"),
                (18, ("double",), "const double = (n) => n * 2;"),
            ],
        ),
        (
            "main.go",
            GO,
            "go",
            [
                (1, (), "package main"),
                (5, ("Point",), "// Point is a point."),
                (10, ("Norm",), "func (p *Point) Norm() int {"),
                (14, ("main",), "func main() {"),
            ],
        ),
        (
            "lib.rs",
            RUST,
            "rust",
            [
                (1, (), "use std::fmt;"),
                (3, ("Shape",), "/// A shape."),
                (9, ("Shape",), "impl Shape {"),
                (10, ("Shape", "new"), "pub fn new(sides: u32) -> Self {"),
                (14, ("Shape", "sides"), "fn sides(&self) -> u32 {"),
                (19, ("main",), "fn main() {}"),
            ],
        ),
        (
            "add.C",
            C,
            "c",
            [
                (1, (), "#include <stdio.h>"),
                (3, ("pair",), "struct pair { int a, b; };"),
                (5, ("add",), "/* Adds. */"),
                (11, ("main",), "int main(void)"),
            ],
        ),
    ],
)
def test_code_blocks_follow_definitions(
    name: str, source: str, language: str, expected: list[tuple[int, tuple[str, ...], str]]
) -> None:
    parsed = parse(Path(name), source.encode())
    check_blocks(parsed)
    assert (parsed.type, parsed.language, parsed.text) == ("code", language, source)
    assert code_blocks(parsed) == expected
    # The whole file is covered: only whitespace lies outside the blocks.
    covered = "".join(block_texts(parsed))
    assert "".join(covered.split()) == "".join(source.split())


def test_code_with_syntax_errors_and_non_ascii_still_parses() -> None:
    source = "def broken(:\n    return 'é'\n\nclass Ok:\n    def m(self): ...\n"
    parsed = parse(Path("bad.py"), source.encode())
    check_blocks(parsed)
    assert parsed.text == source
    assert ("Ok", "m") in [b.headings for b in parsed.blocks]
    assert "".join("".join(block_texts(parsed)).split()) == "".join(source.split())


def test_unknown_node_types_fall_back_to_top_level_children() -> None:
    parsed = parse(Path("config.toml"), b"[server]\nport = 80\n\n[client]\nretries = 3\n")
    check_blocks(parsed)
    assert parsed.language == "toml"
    assert block_texts(parsed) == ["[server]\nport = 80", "[client]\nretries = 3"]


def test_shebang_and_special_file_names() -> None:
    script = b"#!/usr/bin/env python3\nimport sys\n\ndef main():\n    pass\n"
    parsed = parse(Path("bin/tool"), script)
    assert (parsed.type, parsed.language) == ("code", "python")
    assert parse(Path("run"), b"#!/bin/bash\necho hi\n").language == "bash"
    assert parse(Path("x.cgi"), b"#!/usr/bin/perl -w\nprint 1;\n").language == "perl"
    assert parse(Path("Makefile"), b"all:\n\tcc x.c\n").language == "make"
    assert parse(Path("Dockerfile"), b"FROM python:3.12\n").language == "dockerfile"
    assert parse(Path("CMakeLists.txt"), b"project(x)\n").language == "cmake"


def test_document_types() -> None:
    assert document_type(Path("a/B.PDF"), b"") == "pdf"
    assert document_type(Path("README.Md"), b"") == "markdown"
    assert document_type(Path("LICENSE"), b"") == "text"
    assert document_type(Path("page.xhtml"), b"") == "html"
    assert document_type(Path("rows.ndjson"), b"") == "json"
    assert document_type(Path("x.tsv"), b"") == "csv"
    assert document_type(Path("main.rs"), b"") == "code"
    assert document_type(Path("tool"), b"#!/bin/sh\n") == "code"
    for name in ["photo.png", "setup.exe", "bundle.zip", "archive.tar.gz", "noext"]:
        assert document_type(Path(name), b"\x00\x01") is None, name
    with pytest.raises(ParseError, match=r"^unsupported file type$"):
        parse(Path("photo.png"), b"\x89PNG")
    assert SUPPORTED[".py"] == "code"
    assert SUPPORTED[".docx"] == "docx"


def test_at_least_100_languages_and_each_loads() -> None:
    from tree_sitter import Parser
    from tree_sitter_language_pack import SupportedLanguage, get_language

    names = {*EXTENSIONS.values(), *FILENAMES.values(), *INTERPRETERS.values(), "matlab"}
    assert len(names) >= 100
    assert len(EXTENSIONS) >= 100
    assert names <= set(typing.get_args(SupportedLanguage))
    for name in sorted(names):
        tree = Parser(get_language(name)).parse(b"x\n")  # type: ignore[arg-type]
        assert tree.root_node is not None, name
