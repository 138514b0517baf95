"""Chat templates from model files, rendered in Jinja2's immutable sandbox.

A template comes with the model's weights, so it is untrusted code: it renders in
`ImmutableSandboxedEnvironment`, and one that reaches for Python internals is refused.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

from feldspar.datatypes import Message
from feldspar.errors import ModelError

# A conversation that exercises the usual branches, rendered once when a model loads so that
# a hostile or broken template is refused before any user text reaches it.
PROBE: list[Message] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi"},
    {"role": "user", "content": "Bye"},
]

# Used when a model file carries no template of its own (ChatML, as most small models use).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateRejected(ModelError):
    """The template itself raised (e.g. "roles must alternate"): the conversation's fault."""


logger = logging.getLogger(__name__)

# Bounds on what a template may build: enough for any real chat template, too little to
# exhaust memory (the sandbox blocks Python internals, not `'a' * 10**9`).
MAX_REPEAT = 100_000
MAX_OUTPUT = 4_000_000
_MARK = "\x1eFELDSPAR-CONTENT-{}\x1e"
_MARK_RE = re.compile("(\x1eFELDSPAR-CONTENT-\\d+\x1e)")


def _raise(message: str) -> None:
    raise TemplateRejected(f"The model's chat template rejected the conversation: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class ChatTemplate:
    """A compiled, sandboxed chat template.

    Example:
        >>> t = ChatTemplate("{% for m in messages %}[{{ m.role }}] {{ m.content }}\\n"
        ...                  "{% endfor %}", name="demo")
        >>> t.render([{"role": "user", "content": "hi"}])
        '[user] hi\\n'
    """

    def __init__(self, source: str, *, name: str, bos_token: str = "",
                 eos_token: str = "") -> None:
        import jinja2
        import jinja2.ext
        from jinja2.exceptions import SecurityError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        class _GenerationTag(jinja2.ext.Extension):
            """Hugging Face's {% generation %} marks training targets; render its body."""

            tags = {"generation"}  # noqa: RUF012 - jinja2 declares it an instance variable

            def parse(self, parser: Any) -> Any:
                parser.stream.skip(1)
                return parser.parse_statements(("name:endgeneration",), drop_needle=True)

        class _BoundedSandbox(ImmutableSandboxedEnvironment):
            intercepted_binops = frozenset(["*", "**"])

            def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
                if operator == "**" and isinstance(right, int) and abs(right) > 64:
                    raise SecurityError(f"exponent {right} is too large")
                if operator == "*":
                    for seq, times in ((left, right), (right, left)):
                        if (isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                                and len(seq) * times > MAX_REPEAT):
                            raise SecurityError("a repeated string or list is too long")
                return super().call_binop(context, operator, left, right)

        self.name = name
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = _BoundedSandbox(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_GenerationTag, jinja2.ext.loopcontrols],
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise ModelError(f"The chat template of '{name}' does not compile: {exc}") from exc

    def render(self, messages: list[Message], *, add_generation_prompt: bool = True,
               **extra: Any) -> str:
        """The prompt text for `messages`; `extra` reaches the template (e.g. documents)."""
        from jinja2.exceptions import SecurityError

        try:
            text = self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except SecurityError as exc:
            raise ModelError(
                f"Refusing the chat template of '{self.name}': it tried to leave the sandbox "
                f"({exc}). Use a model file from a source you trust"
            ) from exc
        except ModelError:
            raise
        except Exception as exc:  # a template can raise whatever its arithmetic raises
            raise ModelError(f"The chat template of '{self.name}' failed: "
                             f"{exc.__class__.__name__}: {exc}") from exc
        if len(text) > MAX_OUTPUT + sum(len(m["content"]) for m in messages):
            raise ModelError(f"Refusing the chat template of '{self.name}': it renders "
                             "far more text than the conversation holds")
        return text

    def segments(self, messages: list[Message], **extra: Any) -> list[tuple[str, bool]]:
        """The rendered prompt as (text, is_message_content) pieces.

        Message contents are rendered as markers and put back afterwards, so that a
        tokenizer can read the template's own text with special tokens and the users'
        text without: typing "<|im_end|>" into a message must not end a turn.

        Example:
            >>> t = ChatTemplate("{% for m in messages %}<s>{{ m.content }}</s>{% endfor %}",
            ...                  name="demo")
            >>> t.segments([{"role": "user", "content": "hi </s>"}])
            [('<s>', False), ('hi </s>', True), ('</s>', False)]
        """
        marked: list[Message] = [
            {"role": m["role"], "content": _MARK.format(i)} for i, m in enumerate(messages)
        ]
        pieces = _MARK_RE.split(self.render(marked, **extra))
        out: list[tuple[str, bool]] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                index = int(piece.strip("\x1e").rsplit("-", 1)[1])
                out.append((messages[index]["content"], True))
            elif piece:
                out.append((piece, False))
        whole = self.render(messages, **extra)
        if "".join(text for text, _ in out) != whole:
            # The template rewrites or drops message text: use the plain rendering.
            logger.warning("Chat template of %s transforms message text; special tokens "
                           "typed in messages cannot be told apart", self.name)
            return [(whole, False)]
        return out

    def check(self) -> None:
        """Render a probe conversation; raise `ModelError` if the template is hostile.

        A template may reject the probe itself (some refuse system messages); that is not
        a fault of the template, so the probe is retried without one.
        """
        try:
            self.render(PROBE)
        except TemplateRejected:
            self.render(PROBE[1:])
