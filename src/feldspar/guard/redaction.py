"""Replace the spans that the rules found by their kind, so a text can go on without them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from feldspar.guard.verdicts import Span


def _merged(spans: Sequence[Span]) -> list[tuple[int, int, str]]:
    """Spans as (start, end, kind), sorted, overlapping ones merged into one; the merged
    span takes the kind of the span with the best score."""
    out: list[tuple[int, int, str]] = []
    best: list[float] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and span.start < out[-1][1]:
            start, end, kind = out[-1]
            if span.score > best[-1]:
                kind, best[-1] = span.kind, span.score
            out[-1] = (start, max(end, span.end), kind)
        elif span.end > span.start:
            out.append((span.start, span.end, span.kind))
            best.append(span.score)
    return out


def redact(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span replaced by its kind in capitals and brackets.

    Overlapping spans become one placeholder. Every offset is read in the text as given
    (the pieces between spans are copied from it, never from a text already changed), so
    offsets stay valid in any order, and the cost is linear in the text.

    Example:
        >>> text = "Mail jane@example.com or call +44 20 7946 0958."
        >>> redact(text, [Span(5, 21, "email", 0.99), Span(30, 46, "phone", 0.85)])
        'Mail [EMAIL] or call [PHONE].'
    """
    pieces: list[str] = []
    done = 0
    for start, end, kind in _merged(spans):
        pieces += [text[done:start], f"[{kind.upper()}]"]
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def offset_map(spans: Sequence[Span]) -> Callable[[int], int]:
    """Where an offset of the original text lands in the text `redact` makes of it; an
    offset inside a replaced span lands at the start of its placeholder.

    Example:
        >>> moved = offset_map([Span(5, 21, "email", 0.99)])
        >>> moved(0), moved(5), moved(10), moved(21), moved(22)
        (0, 5, 5, 12, 13)
    """
    merged = _merged(spans)

    def moved(offset: int) -> int:
        shift = 0
        for start, end, kind in merged:
            if offset < end:
                return offset + shift if offset <= start else start + shift
            shift += len(kind) + 2 - (end - start)
        return offset + shift

    return moved
