"""Source code: the file's own text, with its definitions as blocks, through tree-sitter.

Blocks partition the file: top-level definitions (functions, classes, types), the members of
classes and similar containers as blocks of their own, and the stretches between them
(imports, module code) as blocks too. Comments and attributes directly above a definition
belong to it. For a grammar without known definition node types, the root's named children
are the blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, cast

from feldspar.ingest.parsed import Block, Parsed
from feldspar.ingest.parsers._blocks import one_line, span_block
from feldspar.ingest.parsers.text import decode

if TYPE_CHECKING:
    from tree_sitter import Language, Node
    from tree_sitter_language_pack import SupportedLanguage

# Node types that define something, across the grammars in tree-sitter-language-pack.
DEFINITIONS = frozenset(
    {
        "function_definition", "function_declaration", "generator_function_declaration",
        "function_item", "function_signature_item", "method_definition", "method_declaration",
        "constructor_declaration", "method", "singleton_method", "class_definition",
        "class_declaration", "abstract_class_declaration", "class_specifier", "class", "module",
        "interface_declaration", "trait_item", "trait_definition", "trait_declaration",
        "impl_item", "struct_item", "enum_item", "union_item", "mod_item", "macro_definition",
        "type_declaration", "type_alias_declaration", "enum_declaration", "record_declaration",
        "struct_declaration", "namespace_definition", "namespace_declaration",
        "object_declaration", "object_definition", "protocol_declaration", "internal_module",
        "struct_specifier", "enum_specifier", "union_specifier", "type_definition",
        "annotation_type_declaration", "contract_declaration", "library_declaration",
    }
)
# Definitions whose members become blocks of their own.
CONTAINERS = frozenset(
    {
        "class_definition", "class_declaration", "abstract_class_declaration", "class_specifier",
        "struct_specifier", "class", "module", "interface_declaration", "trait_item",
        "trait_definition", "trait_declaration", "impl_item", "mod_item", "namespace_definition",
        "namespace_declaration", "object_declaration", "object_definition",
        "protocol_declaration", "internal_module", "enum_declaration", "record_declaration",
        "struct_declaration", "contract_declaration", "library_declaration",
    }
)
# Lines of these (and of any comment type) directly above a definition belong to it.
_ATTACHED = frozenset(
    {"attribute_item", "attribute", "attribute_list", "decorator", "annotation",
     "marker_annotation"}
)
_NAMES = frozenset(
    {"identifier", "type_identifier", "simple_identifier", "constant", "name",
     "field_identifier", "property_identifier", "namespace_identifier", "word"}
)
_DECLARATOR_NAMES = _NAMES | {"qualified_identifier", "operator_name", "destructor_name"}
_BODY_SUFFIXES = ("body", "block", "declaration_list", "body_statement")
_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class"}
)
# Namespace > class > method is as deep as members are split out.
MAX_DEPTH = 3
# What is left after the last member of a container (`}`, `end`) joins that member.
_CLOSING = re.compile(rb"(?:[^\w\x80-\xff]|\bend\b)*")


def parse_code(data: bytes, language: str) -> Parsed:
    """Parse a source file in `language`; syntax errors give a partial tree, not an error.

    Each definition's block has its name last in `headings`, after the enclosing containers'
    names (a method of class `C` has `("C", "method")`).

    Args:
        data: The file's bytes.
        language: A tree-sitter-language-pack language name.

    Returns:
        The parsed document of type "code"; its text is the file's text.

    Raises:
        ParseError: For binary content.
    """
    from tree_sitter import Parser

    text = decode(data)
    source = text.encode("utf-8")  # tree-sitter's offsets are bytes of this, not of `data`
    root = Parser(_language(language)).parse(source).root_node
    splitter = _Splitter(root, source)
    fallback = not any(_definition(child) for child in root.named_children)
    splitter.split(root.children, 0, len(source), (), 0, fallback=fallback)
    blocks = _blocks(text, source, splitter.units)
    return Parsed(text=text, blocks=blocks, type="code", language=language)


@cache
def _language(name: str) -> Language:
    from tree_sitter_language_pack import get_language

    return get_language(cast("SupportedLanguage", name))


@dataclass
class _Unit:
    start: int
    end: int
    headings: tuple[str, ...]


class _Splitter:
    """Cuts the source into contiguous units (byte spans) at definition boundaries."""

    def __init__(self, root: Node, source: bytes) -> None:
        self.root = root
        self.source = source
        self.units: list[_Unit] = []

    def split(
        self,
        children: list[Node],
        start: int,
        end: int,
        headings: tuple[str, ...],
        depth: int,
        *,
        fallback: bool = False,
    ) -> None:
        """Add units covering `start:end`, one per definition among `children` (or, with
        `fallback`, per named child) and one per stretch between them."""
        cursor = start
        for child in children:
            if not child.is_named:
                continue
            definition = child if fallback and not _attachable(child) else _definition(child)
            if definition is None:
                continue
            first = self._attach(child.start_byte, start)
            if first < cursor:
                # A comment that the grammar put at the end of the previous definition.
                last = self.units[-1] if self.units else None
                if last is not None and last.start < first:
                    last.end = cursor = first
                else:
                    first = cursor
            self._add(cursor, first, headings)
            name = None if fallback else _name(definition)
            inner = (*headings, name) if name else headings
            members = _members(definition) if depth < MAX_DEPTH else None
            if members is not None and any(_definition(m) for m in members if m.is_named):
                self.split(members, first, child.end_byte, inner, depth + 1)
            else:
                self._add(first, child.end_byte, inner)
            cursor = max(cursor, child.end_byte)
        self._add(cursor, end, headings)

    def _add(self, start: int, end: int, headings: tuple[str, ...]) -> None:
        if start < end:
            self.units.append(_Unit(start, end, headings))

    def _attach(self, position: int, floor: int) -> int:
        """Move a definition's start up over comment and attribute lines directly above it."""
        source = self.source
        while True:
            line_start = source.rfind(b"\n", 0, position) + 1
            if line_start == 0 or source[line_start:position].strip():
                return position
            above_start = source.rfind(b"\n", 0, line_start - 1) + 1
            line = source[above_start : line_start - 1]
            if not line.strip():
                return position  # a blank line separates them
            first = above_start + len(line) - len(line.lstrip())
            if first < floor:
                return position
            node = self.root.descendant_for_byte_range(first, first + 1)
            while node is not None and node.end_byte <= line_start and not _attachable(node):
                node = node.parent
            if node is None or node.end_byte > line_start or node.start_byte < floor:
                return position
            position = node.start_byte


def _attachable(node: Node) -> bool:
    return "comment" in node.type or node.type in _ATTACHED


def _definition(node: Node) -> Node | None:
    """The definition `node` is or wraps (a decorator, an export, a template), else None."""
    kind = node.type
    inner: Node | None = None
    if kind == "decorated_definition":
        inner = node.child_by_field_name("definition")
    elif kind == "export_statement":
        inner = node.child_by_field_name("declaration")
    elif kind == "template_declaration":
        inner = next((c for c in reversed(node.named_children) if _definition(c)), None)
    elif kind == "expression_statement" and node.named_child_count == 1:
        inner = node.named_children[0] if node.named_children[0].type == "internal_module" else None
    elif kind in ("lexical_declaration", "variable_declaration"):
        # `const f = () => ...`: a function under a name.
        declarators = [c for c in node.named_children if c.type == "variable_declarator"]
        value = declarators[0].child_by_field_name("value") if len(declarators) == 1 else None
        return declarators[0] if value is not None and value.type in _FUNCTION_VALUES else None
    elif kind in DEFINITIONS:
        return node
    return _definition(inner) if inner is not None else None


def _name(node: Node) -> str | None:
    """A definition's name, found through the grammars' usual fields."""
    found = node.child_by_field_name("name")
    if node.type == "impl_item":
        type_, trait = node.child_by_field_name("type"), node.child_by_field_name("trait")
        if type_ is not None and trait is not None:
            return f"{_text(trait)} for {_text(type_)}"
        found = type_
    if found is None and node.type == "type_declaration":
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        found = spec.child_by_field_name("name") if spec is not None else None
    declarator = node.child_by_field_name("declarator")
    while found is None and declarator is not None:
        if declarator.type in _DECLARATOR_NAMES:
            found = declarator
        declarator = declarator.child_by_field_name("declarator")
    if found is None:
        found = next((c for c in node.named_children if c.type in _NAMES), None)
    if found is None:
        return None
    return _text(found) or None


def _text(node: Node) -> str:
    return one_line((node.text or b"").decode("utf-8", "replace"), 200)


def _members(definition: Node) -> list[Node] | None:
    """The member nodes of a container (a class body's children), else None."""
    if definition.type not in CONTAINERS:
        return None
    body = definition.child_by_field_name("body")
    if body is None:
        body = next(
            (c for c in definition.named_children if c.type.endswith(_BODY_SUFFIXES)), None
        )
    return body.children if body is not None else None


def _blocks(text: str, source: bytes, units: list[_Unit]) -> list[Block]:
    """Blocks from units: a unit of closing tokens (`}`, `end`) joins the one before it."""
    merged: list[_Unit] = []
    pending: int | None = None
    for unit in units:
        if _CLOSING.fullmatch(source, unit.start, unit.end):
            if merged:
                merged[-1].end = unit.end
            elif pending is None:
                pending = unit.start
            continue
        if pending is not None:
            unit.start, pending = pending, None
        merged.append(unit)
    if pending is not None:
        merged.append(_Unit(pending, len(source), ()))
    offsets = _char_offsets(source, sorted({o for u in merged for o in (u.start, u.end)}))
    blocks = []
    for unit in merged:
        block = span_block(text, offsets[unit.start], offsets[unit.end], "code", unit.headings)
        if block is not None:
            blocks.append(block)
    return blocks


def _char_offsets(source: bytes, byte_offsets: list[int]) -> dict[int, int]:
    """Character offsets of sorted UTF-8 byte offsets, decoding each stretch once."""
    offsets: dict[int, int] = {}
    chars = previous = 0
    ascii_only = source.isascii()
    for offset in byte_offsets:
        if not ascii_only:
            chars += len(source[previous:offset].decode("utf-8", "replace"))
        offsets[offset] = offset if ascii_only else chars
        previous = offset
    return offsets
