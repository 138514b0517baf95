"""HTML: the page's content rendered as Markdown-like text, without scripts and navigation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from feldspar.ingest.parsed import BlockKind, Parsed
from feldspar.ingest.parsers._blocks import TextBuilder, one_line
from feldspar.ingest.parsers.text import decode

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

# Content that is not the page's text: code, styling, site navigation and boilerplate.
_DROP = frozenset(
    {"script", "style", "nav", "footer", "noscript", "template", "svg", "iframe", "object",
     "canvas", "head", "button", "select", "dialog"}
)
_CELLS = ("td", "th")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end the running paragraph where they open and where they close.
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "aside", "ul", "ol", "dl", "dt", "dd",
     "blockquote", "figure", "figcaption", "address", "details", "summary", "form", "fieldset",
     "hr", "body", "li", "center", "hgroup", "caption", "legend"}
)


def parse_html(data: bytes) -> Parsed:
    """Parse an HTML page: headings as `#` lines, paragraphs, list items, code and table rows.

    Args:
        data: The file's bytes.

    Returns:
        The parsed document of type "html"; its text is the rendering.

    Raises:
        ParseError: For binary content.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode(data))
    renderer = _Renderer()
    root = tree.body or tree.root
    if root is not None:
        renderer.render(root)
    title_node = tree.css_first("title")
    title = one_line(title_node.text()) if title_node is not None else ""
    metadata: dict[str, str] = {}
    description = tree.css_first('meta[name="description"]')
    if description is not None and description.attributes.get("content"):
        metadata["description"] = one_line(description.attributes["content"] or "")
    return renderer.builder.build("html", title=title or renderer.first_h1, metadata=metadata)


class _Renderer:
    """Walks the DOM in document order, collecting running text into paragraphs."""

    def __init__(self) -> None:
        self.builder = TextBuilder()
        self.path: list[tuple[int, str]] = []
        self.first_h1: str | None = None
        self._inline: list[str] = []
        self._in_item = False

    def render(self, root: LexborNode) -> None:
        """Render `root`'s subtree; iterative, since real pages nest deeper than the stack."""
        stack: list[tuple[LexborNode, Iterator[LexborNode]]] = [(root, root.iter(True))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                self._leave(node)
                continue
            if child.is_text_node:
                self._inline.append(child.text_content or "")
            elif child.is_element_node and self._enter(child):
                stack.append((child, child.iter(True)))

    def _enter(self, node: LexborNode) -> bool:
        """Handle an element's start; True when its children are to be walked."""
        tag = node.tag or ""
        if tag in _DROP or "hidden" in node.attributes:
            return False
        if tag in _HEADINGS:
            self._flush()
            self._heading(_HEADINGS[tag], one_line(node.text(), 500))
            return False
        if tag == "pre":
            self._flush()
            code = node.text().strip("\n")
            self.builder.add(f"```\n{code}\n```", "code", self._headings())
            return False
        if tag == "table":
            self._flush()
            self._table(node)
            return False
        if tag == "br":
            self._inline.append("\n")
        elif tag in _BLOCKS:
            self._flush()
            if tag == "li":
                self._in_item = True
        return True

    def _leave(self, node: LexborNode) -> None:
        """Handle an element's end."""
        if (node.tag or "") in _BLOCKS:
            self._flush()
        if node.tag == "li":
            self._in_item = False  # an empty item must not mark what follows

    def _headings(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.path)

    def _heading(self, level: int, text: str) -> None:
        if not text:
            return
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.builder.add(f"{'#' * level} {text}", "heading", self._headings())
        self.path.append((level, text))
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text

    def _table(self, table: LexborNode) -> None:
        rows = []
        for row in table.css("tr"):
            cells = [one_line(c.text(separator=" "), 1000) for c in row.iter() if c.tag in _CELLS]
            if any(cells):
                rows.append(" | ".join(cells))
        self.builder.add("\n".join(rows), "table", self._headings())

    def _flush(self) -> None:
        """End the running paragraph (or list item) and add it as a block."""
        lines = (" ".join(line.split()) for line in "".join(self._inline).split("\n"))
        text = "\n".join(line for line in lines if line)
        self._inline.clear()
        kind: BlockKind = "list" if self._in_item else "paragraph"
        if text:
            self.builder.add(f"- {text}" if self._in_item else text, kind, self._headings())
            self._in_item = False
