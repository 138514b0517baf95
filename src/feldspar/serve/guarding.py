"""The guard on the server's requests: the input policy on what users send, the output
policy on what models answer; every decision goes to the audit log (source "serve").

A blocked input is a 400 with code `content_filter`; a blocked output ends the reply with
`finish_reason: content_filter` and withholds its text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from feldspar.serve.errors import APIError

if TYPE_CHECKING:
    from feldspar.datatypes import Message
    from feldspar.guard.screen import Guard, GuardedStream
    from feldspar.guard.verdicts import GuardResult

SOURCE = "serve"


def blocked_input(result: GuardResult) -> APIError:
    """The 400 for a prompt the input policy blocks."""
    from feldspar.guard.screen import Blocked

    return APIError(400, str(Blocked(result)), code="content_filter", param="messages")


def screen_prompts(guard: Guard | None, texts: list[str], model: str) -> list[GuardResult]:
    """Screen what a user sent (each non-empty text) under the input policy; a blocked one
    raises the 400. Returns the decisions (empty when the guard is off)."""
    if guard is None:
        return []
    wanted = [t for t in texts if t.strip()]
    results = guard.check_many(wanted, direction="input", source=SOURCE, model=model)
    for result in results:
        if result.blocked:
            raise blocked_input(result)
    return results


def screen_messages(guard: Guard | None, messages: list[Message], model: str
                    ) -> tuple[list[Message], list[GuardResult]]:
    """The user messages screened: a blocked one raises the 400, a redacted one is replaced
    by its redacted text (system and assistant messages come from the application)."""
    if guard is None:
        return messages, []
    users = [i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].strip()]
    results = screen_prompts(guard, [messages[i]["content"] for i in users], model)
    out = list(messages)
    for i, result in zip(users, results, strict=True):
        if result.action == "redact":
            out[i] = {"role": "user", "content": result.text}
    return out, results


def last_user(messages: list[Message]) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)


def screen_reply(guard: Guard | None, text: str, prompt: str | None,
                 model: str) -> GuardResult | None:
    """A whole reply under the output policy (None when the guard is off)."""
    if guard is None:
        return None
    return guard.check(text, direction="output", prompt=prompt, source=SOURCE, model=model)


def reply_text(text: str, result: GuardResult | None) -> str:
    """What the client gets of a reply: nothing when blocked, the redacted text when
    redacted."""
    if result is None:
        return text
    if result.blocked:
        return ""
    return result.text if result.action == "redact" else text


def guarded_pieces(guard: Guard | None, pieces: Iterator[str], prompt: str | None,
                   model: str) -> GuardedStream | None:
    """A reply's pieces under the output policy as they stream (see `GuardedStream`);
    None when the guard is off."""
    if guard is None:
        return None
    return guard.stream(pieces, prompt=prompt, source=SOURCE, model=model)


def summary(inputs: list[GuardResult], output: GuardResult | None) -> dict[str, object]:
    """The decisions for a response's `feldspar.guard` field."""
    return {"input": [r.to_dict() for r in inputs],
            "output": output.to_dict() if output is not None else None}
