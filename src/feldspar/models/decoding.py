"""Pieces of decoding that every in-process backend shares."""

from __future__ import annotations


def split_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str, bool]:
    """Split generated text into (safe to show, held back, stopped).

    Text is held back while it could still be the start of a stop string, so that a
    stop string never reaches the user, even split across tokens.

    Example:
        >>> split_stop("Hello\\nUs", ("\\nUser:",))
        ('Hello', '\\nUs', False)
        >>> split_stop("Hello\\nUser: x", ("\\nUser:",))
        ('Hello', '', True)
    """
    if not stops:
        return text, "", False
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if hits:
        return text[: min(hits)], "", True
    keep = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                keep = max(keep, size)
                break
    return text[: len(text) - keep], text[len(text) - keep :], False


class StopFilter:
    """Generated text in, text safe to show out: stop strings never get through, even when
    they arrive split across tokens.

    Example:
        >>> f = StopFilter(("END",))
        >>> f.push("abc E"), f.push("N"), f.push("D more"), f.stopped
        ('abc ', '', '', True)
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Take the next piece of text; return what can be shown now."""
        if self.stopped:
            return ""
        shown, self.held, self.stopped = split_stop(self.held + text, self.stops)
        return shown

    def flush(self) -> str:
        """At the end of generation: what was held back, unless a stop string ended it."""
        rest, self.held = ("" if self.stopped else self.held), ""
        return rest
