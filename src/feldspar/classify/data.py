"""Reading texts to classify or to learn from: CSV or JSONL, a `text` column and, for
labelled data, a `label` column (other names through `Columns`).

Every problem is one `UserError` naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feldspar.errors import UserError

MAX_FIELD_CHARS = 1_000_000
"""A text longer than this is refused (a student reads its first few hundred tokens)."""
MAX_FILE_BYTES = 1 << 30
"""A data file larger than this (1 GiB) is refused: split it."""


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text and the label."""

    text: str = "text"
    label: str = "label"


@dataclass(frozen=True)
class Row:
    """One row of a data file: its text, its label if the file has labels, and where it
    is ("data.csv, line 3") for error messages."""

    text: str
    label: str | None
    where: str


def read_rows(path: str | Path, *, labelled: bool, columns: Columns = Columns()) -> list[Row]:
    """The rows of a CSV or JSONL file (by its extension; `.jsonl`, `.ndjson` or `.json`
    for JSON lines, anything else is CSV).

    With `labelled`, every row needs a non-empty label; without, a label column is read
    when the file has one (an evaluation file) and ignored otherwise.

    Raises:
        UserError: the file is missing, empty, not UTF-8, lacks a column, or a row has
            an empty text or label.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path} is larger than {MAX_FILE_BYTES >> 30} GiB; split it")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"No such file: {path}; give a CSV or JSONL file with a "
                        f"'{columns.text}' column") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; give a CSV or JSONL file") from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
                        f"{line}); save it as UTF-8 and try again") from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        records = _json_lines(path, content)
    else:
        records = _csv_records(path, content)
    rows: list[Row] = []
    checked = False
    for where, record in records:
        if not checked:
            _check_columns(path, record, columns, labelled)
            checked = True
        rows.append(_row(where, record, columns, labelled))
    if not rows:
        raise UserError(f"{path} holds no rows; give one text a row under a "
                        f"'{columns.text}' column")
    return rows


def _csv_records(path: Path, content: str) -> Iterator[tuple[str, dict[str, Any]]]:
    csv.field_size_limit(MAX_FIELD_CHARS + 1)  # the limit below, not csv's 131,072
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = reader.fieldnames
        if header is None:
            return
        if len(set(header)) != len(header):
            raise UserError(f"{path}: the header names a column twice ({', '.join(header)})")
        for record in reader:
            if None in record:  # more cells than the header has columns
                raise UserError(f"{path}, line {reader.line_num}: more cells than the header "
                                "has columns; quote texts that hold commas")
            if not any((v or "").strip() for v in record.values()):
                continue  # a blank line
            yield f"{path}, line {reader.line_num}", record
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({exc}); check the "
                        "quotes, or give a JSONL file") from None


def _json_lines(path: Path, content: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # Only "\n" ends a line: JSON strings may hold U+2028 and the other breaks that
    # str.splitlines() would cut at.
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
            raise UserError(f"{where}: not valid JSON ({detail}); write one object a line, "
                            'e.g. {"text": "Where is my card?", "label": "card_arrival"}'
                            ) from None
        if not isinstance(data, dict):
            raise UserError(f'{where}: expected a JSON object such as {{"text": "..."}}')
        yield where, data


def _check_columns(path: Path, record: dict[str, Any], columns: Columns,
                   labelled: bool) -> None:
    needed = [columns.text, columns.label] if labelled else [columns.text]
    missing = [name for name in needed if name not in record]
    if missing:
        found = ", ".join(str(k) for k in record) or "none"
        option = "--text-column" if missing[0] == columns.text else "--label-column"
        raise UserError(f"{path} has no '{missing[0]}' column (columns: {found}); rename it "
                        f"or name the column with {option}")


def _row(where: str, record: dict[str, Any], columns: Columns, labelled: bool) -> Row:
    text = _string(record.get(columns.text), where, columns.text)
    if not text or not text.strip():
        raise UserError(f"{where}: the text is empty; remove the row or fill it in")
    if "\x00" in text:
        raise UserError(f"{where}: the text holds a NUL character; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape such as "\ud800"
        raise UserError(f"{where}: the text holds an invalid character (a lone surrogate); "
                        "fix the row") from None
    if len(text) > MAX_FIELD_CHARS:
        raise UserError(f"{where}: the text is {len(text):,} characters, over the limit of "
                        f"{MAX_FIELD_CHARS:,}; shorten it")
    label = _string(record.get(columns.label), where, columns.label)
    label = label.strip() if label is not None else None
    if labelled and not label:
        raise UserError(f"{where}: the label is empty; label the row or remove it")
    return Row(text, label or None, where)


def _string(value: Any, where: str, column: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"{where}: '{column}' must be text, not {type(value).__name__}")


def check_row_labels(rows: Sequence[Row], labels: Sequence[str], labelset: str) -> None:
    """Refuse rows whose label is not in the label set, naming the first few.

    Example:
        >>> check_row_labels([Row("hi", "greet", "f, line 2")], ["greet", "bye"], "intents")
        >>> check_row_labels([Row("hi", "hello", "f, line 2")], ["greet", "bye"], "intents")
        Traceback (most recent call last):
        ...
        feldspar.errors.UserError: f, line 2: label 'hello' is not in label set 'intents' \
(labels: greet, bye); fix the row, or add the label with 'feldspar classify update intents \
--add hello'
    """
    known = set(labels)
    unknown = [row for row in rows if row.label is not None and row.label not in known]
    if not unknown:
        return
    names = list(dict.fromkeys(row.label for row in unknown if row.label))
    shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
    more = f" ({len(unknown)} rows, {len(names)} labels)" if len(unknown) > 1 else ""
    raise UserError(f"{unknown[0].where}: label '{unknown[0].label}' is not in label set "
                    f"'{labelset}'{more} (labels: {shown}); fix the row, or add the label "
                    f"with 'feldspar classify update {labelset} --add {names[0]}'")
