"""The guard on the server's requests: the input policy on everything a client sends, the
output policy on what models answer; every decision goes to the audit log (source
"serve"; "ask" for answers from documents).

A blocked input is a 400 with code `content_filter`; a blocked output ends the reply with
`finish_reason: content_filter` and withholds its text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from feldspar.serve.errors import APIError

if TYPE_CHECKING:
    from feldspar.datatypes import Message
    from feldspar.guard.screen import Guard, GuardedStream
    from feldspar.guard.verdicts import GuardResult
    from feldspar.models.base import GenerationOptions
    from feldspar.serve.state import ServerState

SOURCE = "serve"


def blocked_input(result: GuardResult, param: str = "messages") -> APIError:
    """The 400 for a prompt the input policy blocks."""
    from feldspar.guard.screen import Blocked

    return APIError(400, str(Blocked(result)), code="content_filter", param=param)


def screen_prompts(guard: Guard | None, texts: list[str], model: str | None,
                   param: str = "messages") -> list[GuardResult]:
    """Screen what a client sent (each non-empty text) under the input policy; a blocked
    one raises the 400. Returns the decisions (empty when the guard is off)."""
    if guard is None:
        return []
    wanted = [t for t in texts if t.strip()]
    results = guard.check_many(wanted, direction="input", source=SOURCE, model=model)
    for result in results:
        if result.blocked:
            raise blocked_input(result, param)
    return results


def screen_messages(guard: Guard | None, messages: list[Message], model: str | None
                    ) -> tuple[list[Message], list[GuardResult]]:
    """Every message screened, whatever its role (over an API the client writes the
    system and assistant messages too): a blocked one raises the 400, a redacted one is
    replaced by its redacted text."""
    if guard is None:
        return messages, []
    screened = [i for i, m in enumerate(messages) if m["content"].strip()]
    results = screen_prompts(guard, [messages[i]["content"] for i in screened], model)
    out = list(messages)
    for i, result in zip(screened, results, strict=True):
        if result.action == "redact":
            out[i] = {"role": messages[i]["role"], "content": result.text}
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


def holds(guard: Guard | None) -> bool:
    """Whether the output policy holds streamed text back (it can redact or block)."""
    if guard is None:
        return False
    policy = guard.settings.guard_policy.get("output", {})
    return any(rule.action in ("redact", "block") for rule in policy.values())


def summary(inputs: list[GuardResult], output: GuardResult | None) -> dict[str, object]:
    """The decisions for a response's `feldspar.guard` field."""
    return {"input": [r.to_dict() for r in inputs],
            "output": output.to_dict() if output is not None else None}


def start_answer(state: ServerState, question: str, *, collection: str | None,
                 history: list[Message], model: str | None,
                 options: GenerationOptions | None, k: int | None = None) -> Any:
    """`ask_stream` for a request: the conversation so far screened too (the question is
    screened by `ask` itself), a blocked question or turn a 400."""
    from feldspar.guard.screen import Blocked

    history, _ = screen_messages(state.guard, history, model)
    try:
        return state.workspace.ask_stream(question, collection=collection, history=history,
                                          model=model, options=options, k=k)
    except Blocked as exc:
        raise blocked_input(exc.result) from None
