"""Constrained output: GBNF grammars for a fixed set of choices or a JSON schema."""

from __future__ import annotations

import json
from typing import Any

from feldspar.errors import UserError


def _literal(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        .replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def choices_grammar(choices: tuple[str, ...]) -> str:
    """A GBNF grammar whose only sentences are the given strings.

    Example:
        >>> choices_grammar(("yes", 'say "no"'))
        'root ::= "yes" | "say \\\\"no\\\\""'
    """
    return "root ::= " + " | ".join(_literal(c) for c in choices)


def schema_grammar(schema: dict[str, Any]) -> str:
    """A GBNF grammar for JSON documents matching `schema` (llama.cpp's own converter)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter raises bare exceptions for unsupported schemas
        raise UserError(f"Cannot constrain output to this JSON schema: {exc}") from exc
