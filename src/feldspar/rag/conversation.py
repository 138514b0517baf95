"""Follow-up questions: "and for part-timers?" means nothing to a search engine, so the
conversation is first condensed into a standalone question.

The model rewrites the question; a rewrite that is empty, runs on, or loses the follow-up's
own words is replaced by the last user question joined with the follow-up, which a hybrid
search handles well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from feldspar.datatypes import Message
from feldspar.models.base import ChatModel

REWRITE = (
    "Rewrite the last question so that it can be understood without the conversation: "
    "replace pronouns and references with what they refer to. Reply with the rewritten "
    "question only."
)
_WORD = re.compile(r"\w{3,}")
MAX_TURNS = 6


def fallback_query(history: Sequence[Message], question: str) -> str:
    """The last user question of the conversation joined with the follow-up.

    Example:
        >>> fallback_query([{"role": "user", "content": "How long is parental leave?"},
        ...                 {"role": "assistant", "content": "16 weeks [1]."}],
        ...                "And for fathers?")
        'How long is parental leave? And for fathers?'
    """
    previous = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
    return f"{previous.strip()} {question.strip()}".strip()


def plausible(rewrite: str, question: str, history: Sequence[Message]) -> bool:
    """Whether a rewrite looks like a question built from this conversation: not empty,
    not longer than the conversation it condenses, and keeping some of the follow-up's
    words (a tiny model sometimes answers instead of rewriting)."""
    if not rewrite or "\n" in rewrite.strip():
        return False
    source = " ".join(m["content"] for m in history[-MAX_TURNS:]) + " " + question
    if len(rewrite) > len(source):
        return False
    own = {w.lower() for w in _WORD.findall(question)}
    return not own or bool(own & {w.lower() for w in _WORD.findall(rewrite)})


def standalone_query(model: ChatModel, history: Sequence[Message], question: str) -> str:
    """The question to search for: `question` itself when there is no conversation."""
    turns = [m for m in history if m["role"] in ("user", "assistant")][-MAX_TURNS:]
    if not turns:
        return question.strip()
    transcript = "\n".join(f"{m['role'].capitalize()}: {m['content'].strip()}" for m in turns)
    prompt = f"Conversation:\n{transcript}\n\nLast question: {question.strip()}"
    reply = model.complete(prompt, system=REWRITE, temperature=0.0, max_tokens=64,
                           stop=("\n",)).text.strip().strip('"').strip()
    return reply if plausible(reply, question, turns) else fallback_query(turns, question)
