"""Label sets: creating and changing them, with their names and labels checked."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from feldspar.errors import UserError
from feldspar.store.records import LabelSet, no_labelset

if TYPE_CHECKING:
    from feldspar.store.base import Store

MAX_NAME_CHARS = 100
MAX_LABELS = 1_000
MAX_DESCRIPTION_CHARS = 1_000
MAX_DESCRIPTIONS_BYTES = 16 << 20
NAME = re.compile(r"[\w.-]{1,64}")
"""A label set's name: it also names files (NAME-review.csv, reports)."""


def _check_name(kind: str, name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError(f"A {kind} name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"The {kind} name '{name[:30]}...' is longer than {MAX_NAME_CHARS} "
                        "characters; shorten it")
    if any(not c.isprintable() for c in name):
        raise UserError(f"The {kind} name {name!r} holds a control character; remove it")
    return name


def split_labels(values: Iterable[str]) -> list[str]:
    """Labels from command-line values, each a comma-separated list.

    Example:
        >>> split_labels(["billing, refund", "other"])
        ['billing', 'refund', 'other']
    """
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """Labels stripped and checked: at least two, none empty or repeated.

    Example:
        >>> check_labels([" billing", "refund "])
        ('billing', 'refund')
        >>> check_labels(["billing", "Billing", "billing"])
        Traceback (most recent call last):
        ...
        feldspar.errors.UserError: The label 'billing' is given twice; give each label once
    """
    checked = tuple(_check_name("label", label) for label in labels)
    seen: set[str] = set()
    for label in checked:
        if label in seen:
            raise UserError(f"The label '{label}' is given twice; give each label once")
        seen.add(label)
    if len(checked) < 2:
        raise UserError("A label set needs at least two labels, e.g. --labels billing,refund")
    if len(checked) > MAX_LABELS:
        raise UserError(f"{len(checked)} labels is more than {MAX_LABELS}; group them")
    return checked


def read_descriptions(path: str | Path) -> dict[str, str]:
    """Label descriptions from a JSON object ({"label": "what it means"}) or a CSV with
    `label` and `description` columns."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_DESCRIPTIONS_BYTES:
            raise UserError(f"{path} is larger than {MAX_DESCRIPTIONS_BYTES >> 20} MiB; "
                            "label descriptions are a few lines each")
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"No such file: {path}; give a JSON object of label descriptions "
                        "or a CSV with label and description columns") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"{path} is not valid JSON; write one object, "
                            '{"label": "what it means", ...}') from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise UserError(f'{path}: expected one object of texts, {{"label": "what it '
                            'means", ...}')
        return {str(k).strip(): v.strip() for k, v in data.items()}
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        if not reader.fieldnames or not {"label", "description"} <= set(reader.fieldnames):
            found = ", ".join(reader.fieldnames or []) or "none"
            raise UserError(f"{path} needs 'label' and 'description' columns (found: "
                            f"{found})")
        return {(row["label"] or "").strip(): (row["description"] or "").strip()
                for row in reader}
    except csv.Error as exc:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None


def _check_descriptions(descriptions: Mapping[str, str], labels: Sequence[str]) -> dict[str, str]:
    unknown = [label for label in descriptions if label not in labels]
    if unknown:
        raise UserError(f"The descriptions name '{unknown[0]}', which is not a label "
                        f"(labels: {', '.join(labels[:10])}); fix the descriptions")
    long = [label for label, text in descriptions.items() if len(text) > MAX_DESCRIPTION_CHARS]
    if long:
        raise UserError(f"The description of '{long[0]}' is longer than "
                        f"{MAX_DESCRIPTION_CHARS} characters; shorten it")
    return {label: text for label, text in descriptions.items() if text}


def create(store: Store, name: str, labels: Sequence[str],
           descriptions: Mapping[str, str] | None = None) -> LabelSet:
    """Create a label set; one with the same name already is an error."""
    if not NAME.fullmatch(name):
        raise UserError(f"Invalid label set name {name!r}: use 1 to 64 letters, digits, "
                        "'.', '_' or '-'")
    checked = check_labels(labels)
    if store.labelset(name) is not None:
        raise UserError(f"A label set named '{name}' exists; change it with 'feldspar "
                        f"classify update {name}', or delete it first")
    now = time.time()
    labelset = LabelSet(name, checked, _check_descriptions(descriptions or {}, checked),
                        now, now)
    store.put_labelset(labelset)
    return labelset


def update(store: Store, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = (),
           descriptions: Mapping[str, str] | None = None) -> LabelSet:
    """Add or remove labels, or replace descriptions. A student trained on other labels
    must then be trained again; examples of a removed label stay stored, unused."""
    found = store.labelset(name)
    if found is None:
        raise no_labelset(name)
    missing = [label for label in remove if label not in found.labels]
    if missing:
        raise UserError(f"'{missing[0]}' is not a label of '{name}' (labels: "
                        f"{', '.join(found.labels[:10])})")
    existing = [label for label in add if label.strip() in found.labels]
    if existing:
        raise UserError(f"'{existing[0]}' is already a label of '{name}'")
    labels = check_labels([label for label in found.labels if label not in remove] + list(add))
    kept = {k: v for k, v in found.descriptions.items() if k in labels}
    merged = _check_descriptions({**kept, **(descriptions or {})}, labels)
    changed = replace(found, labels=labels, descriptions=merged, updated=time.time())
    store.put_labelset(changed)
    return changed
