"""Chat templates from model files, rendered in Jinja2's immutable sandbox.

A template comes with the model's weights, so it is untrusted code: it renders in
`ImmutableSandboxedEnvironment`, and one that reaches for Python internals is refused.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.meta
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from feldspar.datatypes import ChatDocument, Message
from feldspar.errors import ModelError, UserError

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


def _bounded_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_REPEAT:
            raise SecurityError(f"the number {value} is too large for a chat template")


def _bounded(function: Any) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return function(*args, **kwargs)

    return wrapper


class TemplateRejected(ModelError):
    """The template itself raised (e.g. "roles must alternate"): the conversation's fault."""


# Bounds on what a template may build: enough for any real chat template, too little to
# exhaust memory (the sandbox blocks Python internals, not `'a' * 10**9`).
MAX_REPEAT = 100_000
MAX_OUTPUT = 4_000_000
# Stand-ins for message text while rendering: private-use characters, which no template's
# trim or strip removes.
_MARK = "\ue000feldspar-content-{}\ue001"
_MARK_RE = re.compile("(\ue000feldspar-content-\\d+\ue001)")


def _raise(message: str) -> None:
    raise TemplateRejected(f"The model's chat template rejected the conversation: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class _GenerationTag(jinja2.ext.Extension):
    """Hugging Face's {% generation %} marks training targets; render its body."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 declares it an instance variable

    def parse(self, parser: Any) -> Any:
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _BoundedConcat(CodeGenerator):
    """Compiles `a ~ b` to a join that refuses to grow past MAX_OUTPUT."""

    def visit_Concat(self, node: Any, frame: Any) -> None:
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with bounds on the sizes a template can build."""

    intercepted_binops = frozenset(["*", "**", "+"])
    code_generator_class = _BoundedConcat

    @staticmethod
    def bounded_join(parts: tuple[Any, ...]) -> str:
        text = "".join(str(part) for part in parts)
        if len(text) > MAX_OUTPUT:
            raise SecurityError("a joined string is too long")
        return text

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                        and len(seq) * times > MAX_REPEAT):
                    raise SecurityError("a repeated string or list is too long")
        if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(
                right, (str, list, tuple)) and len(left) + len(right) > MAX_OUTPUT:
            raise SecurityError("a joined string or list is too long")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


@functools.cache
def _environment() -> _BoundedSandbox:
    env = _BoundedSandbox(trim_blocks=True, lstrip_blocks=True,
                          extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    # Filters are called directly, not through call(): bound their numbers too
    # ('x' | center(10**9) would otherwise allocate a gigabyte).
    env.filters = {key: _bounded(f) for key, f in env.filters.items()}
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


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
        self.name = name
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            environment = _environment()
            self._template = environment.from_string(source)
            self._variables = jinja2.meta.find_undeclared_variables(environment.parse(source))
        except jinja2.TemplateError as exc:
            raise ModelError(f"The chat template of '{name}' does not compile: {exc}") from exc

    def render(self, messages: list[Message], *, add_generation_prompt: bool = True,
               **extra: Any) -> str:
        """The prompt text for `messages`; `extra` reaches the template (e.g. documents)."""
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

    def segments(self, messages: list[Message], documents: Sequence[ChatDocument] = (),
                 variables: Mapping[str, Any] | None = None,
                 ) -> list[tuple[str, bool]] | None:
        """The rendered prompt as (text, is_message_content) pieces, or None when the
        template rewrites message text so that the pieces cannot be told apart.

        Message contents (and the fields of `documents`, for a template that takes them)
        are rendered as markers and put back afterwards, so that a tokenizer can read the
        template's own text with special tokens and the users' text without: typing
        "<|im_end|>" into a message, or a document, must not end a turn.

        Example:
            >>> t = ChatTemplate("{% for m in messages %}<s>{{ m.content }}</s>{% endfor %}",
            ...                  name="demo")
            >>> t.segments([{"role": "user", "content": "hi </s>"}])
            [('<s>', False), ('hi </s>', True), ('</s>', False)]
        """
        contents = [m["content"] for m in messages]
        marked: list[Message] = [
            {"role": m["role"], "content": _MARK.format(i)} for i, m in enumerate(messages)
        ]
        marked_documents: list[dict[str, str]] = []
        for document in documents:
            marked_documents.append({})
            for key, value in document.items():
                marked_documents[-1][key] = _MARK.format(len(contents))
                contents.append(str(value))
        extra = dict(variables or {})
        pieces = _MARK_RE.split(self.render(marked, **_documents(marked_documents), **extra))
        whole = self.render(messages, **_documents(documents), **extra)
        # Templates commonly trim message text (Llama 3 does): try it as given, then trimmed.
        for fit in (str, str.strip):
            out: list[tuple[str, bool]] = []
            for i, piece in enumerate(pieces):
                if i % 2:
                    index = int(piece[1:-1].rsplit("-", 1)[1])
                    out.append((fit(contents[index]), True))
                elif piece:
                    out.append((piece, False))
            if "".join(text for text, _ in out) == whole:
                return out
        return None

    @property
    def takes_documents(self) -> bool:
        """Whether the template renders a `documents` list (a native RAG template, as
        Granite's)."""
        return "documents" in self._variables

    def check(self) -> None:
        """Render a probe conversation; raise `ModelError` if the template is hostile.

        A template may reject the probe itself (some refuse system messages); that is not
        a fault of the template, so the probe is retried without one.
        """
        try:
            self.render(PROBE)
        except TemplateRejected:
            self.render(PROBE[1:])


def _documents(documents: Sequence[Any]) -> dict[str, Any]:
    """The template variable for documents: absent when there are none, since templates
    test `documents is defined` as often as `if documents`."""
    return {"documents": list(documents)} if documents else {}


@functools.lru_cache(maxsize=8)
def _special_pattern(specials: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a model's special tokens, longest first; compiled once per model."""
    texts = sorted((s for s in specials if s), key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in texts)) if texts else None


def prompt_runs(template: ChatTemplate, messages: list[Message], specials: Sequence[str],
                documents: Sequence[ChatDocument] = (),
                variables: Mapping[str, Any] | None = None) -> list[tuple[str, bool]]:
    """The prompt as (text, is_special_token) runs, ready for a tokenizer.

    Special-token strings count only where the template wrote them; message text, even
    one that spells "<|im_end|>", stays text. Text between two special tokens forms one
    run, template and message text alike, so it tokenizes exactly as the whole prompt would.
    Raises `UserError` when the template rewrites message text and a message holds a
    special token's text, since the two could then not be told apart. `variables` reach
    the template as they are (Granite Guardian's `guardian_config`).

    Example:
        >>> t = ChatTemplate("{% for m in messages %}<s>{{ m.content }}</s>{% endfor %}",
        ...                  name="demo")
        >>> prompt_runs(t, [{"role": "user", "content": "a</s>b"}], ["<s>", "</s>"])
        [('<s>', True), ('a</s>b', False), ('</s>', True)]
    """
    pieces = template.segments(messages, documents, variables)
    if pieces is None:
        texts = [m["content"] for m in messages] + [str(v) for d in documents
                                                    for v in d.values()]
        if any(s in text for text in texts for s in specials if s):
            raise UserError(
                f"A message contains a control token of '{template.name}' (such as "
                f"{next(s for t in texts for s in specials if s and s in t)!r})"
                ", which this model's chat template cannot keep apart; remove it")
        pieces = [(template.render(messages, **_documents(documents), **dict(variables or {})),
                   False)]
    pattern = _special_pattern(tuple(specials))
    runs: list[tuple[str, bool]] = []
    text: list[str] = []
    for piece, is_content in pieces:
        if is_content or pattern is None:
            text.append(piece)
            continue
        start = 0
        for match in pattern.finditer(piece):
            text.append(piece[start : match.start()])
            if joined := "".join(text):
                runs.append((joined, False))
            text = []
            runs.append((match.group(), True))
            start = match.end()
        text.append(piece[start:])
    if joined := "".join(text):
        runs.append((joined, False))
    return runs
