"""Spreadsheets: CSV and TSV through the csv module, XLSX through openpyxl.

Both render rows as `a | b | c` lines; each sheet's text begins with its first (header) row,
and its rows are grouped into table blocks.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import warnings
from collections.abc import Iterable

from feldspar.ingest.parsed import Parsed, ParseError
from feldspar.ingest.parsers._archive import check_zip
from feldspar.ingest.parsers._blocks import TextBuilder, guarded, one_line, table_row
from feldspar.ingest.parsers.text import decode

# A block of rows ends after this many rows or characters, whichever comes first.
ROWS_PER_BLOCK = 50
CHARS_PER_BLOCK = 2000
_SNIFF_CHARS = 64 * 1024


def parse_csv(data: bytes, delimiter: str | None = None) -> Parsed:
    """Parse a CSV file; the dialect is sniffed unless `delimiter` is given.

    Args:
        data: The file's bytes.
        delimiter: The field delimiter (tab for TSV), or None to detect it.

    Returns:
        The parsed document of type "csv".

    Raises:
        ParseError: "binary content", or "corrupt CSV: <detail>".
    """
    text = decode(data)
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel
    if delimiter is not None:
        dialect = csv.excel_tab if delimiter == "\t" else csv.excel
    else:
        sample = text[:_SNIFF_CHARS]
        if len(text) > _SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n")]  # a cut row would mislead the sniffer
        with contextlib.suppress(csv.Error):  # no dialect found: the default
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    builder = TextBuilder()
    try:
        rows = csv.reader(io.StringIO(text, newline=""), dialect)
        add_rows(builder, (table_row(row) for row in rows), (), None)
    except csv.Error as error:
        raise ParseError(f"corrupt CSV: {one_line(str(error))}") from None
    return builder.build("csv")


def parse_xlsx(data: bytes) -> Parsed:
    """Parse an Excel workbook's cell values: one page per sheet, the sheet name as heading.

    Formulas give their cached values (what Excel last computed); empty sheets are skipped.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "xlsx".

    Raises:
        ParseError: "zip bomb: ..." or "corrupt XLSX: <detail>".
    """
    check_zip(data, "XLSX")
    return guarded("XLSX", _quiet_xlsx, data)


def _quiet_xlsx(data: bytes) -> Parsed:
    # openpyxl warns about every workbook feature it does not read (data validation,
    # conditional formatting extensions); none of them is text.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _xlsx(data)


def _xlsx(data: bytes) -> Parsed:
    # openpyxl ships no type hints (types-openpyxl has them); `unused-ignore` keeps this
    # line clean whether or not the stubs are installed.
    from openpyxl import load_workbook  # type: ignore[import-untyped, unused-ignore]

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        builder = TextBuilder()
        for number, sheet in enumerate(workbook.worksheets, start=1):
            rows = (table_row(_cell(v) for v in row) for row in sheet.iter_rows(values_only=True))
            add_rows(builder, rows, (sheet.title,), number, heading=f"# {sheet.title}")
        title = one_line(workbook.properties.title or "") or None
        metadata = {"sheets": str(len(workbook.worksheets))}
        if workbook.properties.creator:
            metadata["author"] = one_line(workbook.properties.creator)
        return builder.build("xlsx", title=title, metadata=metadata)
    finally:
        workbook.close()


def add_rows(
    builder: TextBuilder,
    rows: Iterable[str | None],
    headings: tuple[str, ...],
    page: int | None,
    heading: str | None = None,
) -> None:
    """Add rendered rows as table blocks, skipping empty rows; `heading` first if any rows.

    Args:
        builder: The text being rendered.
        rows: Rendered rows; None for an empty row.
        headings: The heading path of the blocks.
        page: The sheet's 1-based index, or None.
        heading: A heading line to add before the first row (the sheet name).
    """
    block: list[str] = []
    size = 0
    for row in rows:
        if row is None:
            continue
        if heading is not None:
            builder.add(heading, "heading", (), page)
            heading = None
        block.append(row)
        size += len(row) + 1
        if len(block) >= ROWS_PER_BLOCK or size >= CHARS_PER_BLOCK:
            builder.add("\n".join(block), "table", headings, page)
            block, size = [], 0
    if block:
        builder.add("\n".join(block), "table", headings, page)


def _cell(value: object) -> str:
    """A cell value as text: whole numbers without ".0", dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
