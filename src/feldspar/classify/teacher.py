"""The teacher: an LLM that classifies zero-shot or few-shot, its output constrained by a
grammar to exactly one label, and its confidence read from the token log-probabilities.

The prompt lists the labels (with their descriptions) first, so a llama.cpp model keeps
that part of the prompt evaluated from one text to the next and reads only the new text.
Few-shot examples are the labelled examples most similar to the text (cosine of their
embeddings), given as earlier turns of the conversation.

Two ways to read the model (`mode`):

- "generate": one greedy generation constrained to the labels. The confidence is the
  probability of the chosen label's tokens with each step's distribution renormalised over
  the tokens the grammar allows (those that continue some label), as far as the top-20
  alternatives show them: a model that hesitates between "card_arrival" and
  "card_linking" gets about 0.5. One call per text, whatever the number of labels; but a
  small model that wanted to start with "The" is steered, token by token, into whichever
  label's first token it happens to favour.
- "score": the model's output is forced to each label in turn and the label's own
  log-probability read; their softmax is a distribution over all labels. One call per
  label (the shared prompt is evaluated once by llama.cpp), more accurate for small models.
- "auto" (the default) scores label sets of up to SCORE_LABELS labels and generates for
  larger ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from feldspar.errors import UserError

if TYPE_CHECKING:
    from feldspar.datatypes import Completion, Message, TokenLogprob
    from feldspar.models.base import ChatModel, Embedder, GenerationOptions
    from feldspar.store.records import Example

MAX_TEXT_CHARS = 2_000
"""The teacher reads at most this much of a text (the start of a ticket says what it is)."""
MAX_EXAMPLE_CHARS = 400
TOP_LOGPROBS = 20
SCORE_LABELS = 12
"""In the "auto" mode, label sets up to this size are scored whole."""

TeacherMode = Literal["auto", "generate", "score"]
TEACHER_MODES: tuple[TeacherMode, ...] = ("auto", "generate", "score")


@dataclass(frozen=True)
class Prediction:
    """A label for one text, how sure the classifier is, and who decided."""

    label: str
    confidence: float
    """The probability of the label (calibrated for a student; from token log-probabilities
    for the teacher)."""
    source: str
    """"student" or "teacher"."""
    escalated: bool = False
    """Whether the student was less sure than the cascade's threshold."""


@dataclass
class TeacherCost:
    """What asking the teacher cost."""

    texts: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def since(self, before: TeacherCost) -> TeacherCost:
        """The cost added since `before` (an earlier copy of this one)."""
        return TeacherCost(self.texts - before.texts, self.seconds - before.seconds,
                           self.prompt_tokens - before.prompt_tokens,
                           self.completion_tokens - before.completion_tokens)


def system_prompt(labels: Sequence[str], descriptions: Mapping[str, str]) -> str:
    """The instructions and the label list (the part of the prompt every text shares).

    Example:
        >>> print(system_prompt(["refund", "other"], {"refund": "asks for money back"}))
        Classify the text into exactly one of these categories:
        - refund: asks for money back
        - other
        Answer with the category name only.
    """
    lines = [f"- {label}: {descriptions[label]}" if descriptions.get(label) else f"- {label}"
             for label in labels]
    return ("Classify the text into exactly one of these categories:\n" + "\n".join(lines)
            + "\nAnswer with the category name only.")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def label_confidence(completion: Completion, label: str, labels: Sequence[str]) -> float:
    """The probability of `label` from a completion's token log-probabilities, each step
    renormalised over the alternatives that keep the output on some label (see the module
    docstring). The label may sit inside other text (an OpenAI-compatible server returns
    JSON); only its own tokens count. 1.0 when the backend gave no log-probabilities; the
    product of all the tokens' probabilities when the label cannot be found among them.

    Example:
        >>> from feldspar.datatypes import Completion, TokenLogprob, Timings, Usage
        >>> lp = (TokenLogprob("card", math.log(0.6), (("card", math.log(0.6)),
        ...                    ("top", math.log(0.2)), ("Hello", math.log(0.2)))),
        ...       TokenLogprob("_arrival", math.log(0.5), (("_arrival", math.log(0.5)),
        ...                    ("_linking", math.log(0.5)))))
        >>> done = Completion("card_arrival", "m", "", "stop", Usage(1, 2), Timings(None, 0.0), lp)
        >>> round(label_confidence(done, "card_arrival",
        ...                        ["card_arrival", "card_linking", "top_up"]), 3)
        0.375
    """
    if not completion.logprobs:
        return 1.0
    found = _label_tokens(completion, label)
    if found is None:  # no alignment: the plain product, a lower bound on the renormalised one
        return math.exp(sum(token.logprob for token in completion.logprobs))
    probability = 1.0
    for token, prefix, start in found:
        probability *= _step(token, prefix, start, labels)
    return probability


def label_logprob(completion: Completion, label: str) -> float | None:
    """The model's own log-probability of `label`'s tokens in a completion forced to it
    (the sum over the tokens that make up the label); None without log-probabilities.

    Example:
        >>> from feldspar.datatypes import Completion, TokenLogprob, Timings, Usage
        >>> lp = (TokenLogprob('{"c": "', 0.0), TokenLogprob("bill", -1.0),
        ...       TokenLogprob("ing", -0.5), TokenLogprob('"}', -3.0))
        >>> label_logprob(Completion('{"c": "billing"}', "m", "", "stop", Usage(1, 4),
        ...                          Timings(None, 0.0), lp), "billing")
        -1.5
    """
    if not completion.logprobs:
        return None
    found = _label_tokens(completion, label)
    if found is None:  # no alignment: every token (a forced reply is little but the label)
        return sum(token.logprob for token in completion.logprobs)
    return sum(token.logprob for token, _, _ in found)


def _label_tokens(completion: Completion, label: str
                  ) -> list[tuple[TokenLogprob, str, int]] | None:
    """The tokens that overlap `label` in a completion's text, each with the text before
    it and the label's start; None without log-probabilities, or when the label is not in
    the tokens' text (a character split between tokens decodes as U+FFFD)."""
    tokens = completion.logprobs
    text = "".join(t.token for t in tokens)
    # The last occurrence: in JSON ({"choice": "c"}) the value comes after the key.
    start = text.rfind(label) if tokens else -1
    if start < 0:
        return None
    end, offset = start + len(label), 0
    found = []
    for token in tokens:
        before, offset = offset, offset + len(token.token)
        if offset > start and before < end:
            found.append((token, text[:before], start))
    return found


def _step(token: TokenLogprob, prefix: str, start: int, labels: Sequence[str]) -> float:
    """The chosen token's probability among the alternatives consistent with a label."""
    def consistent(piece: str) -> bool:
        head = (prefix + piece)[start:]  # never empty: the token reaches into the label
        return any(label.startswith(head) or _ends_at(head, label) for label in labels)

    chosen = math.exp(token.logprob)
    others = {piece: lp for piece, lp in token.top if piece != token.token}
    total = chosen + sum(math.exp(lp) for piece, lp in others.items() if consistent(piece))
    return chosen / total if total > 0 else 1.0


def _ends_at(head: str, label: str) -> bool:
    """Whether `head` is `label` followed by what may come after one (the quote closing it
    in JSON), not by more of a word: "account" + '"}' is, "accounter" is not.

    Example:
        >>> _ends_at('account"}', "account"), _ends_at("accounter", "account")
        (True, False)
    """
    if not head.startswith(label) or len(head) == len(label):
        return False
    after = head[len(label)]
    return not (after.isalnum() or after == "_")


class Teacher:
    """Classifies texts with a chat model into a fixed set of labels.

    Args:
        model: the chat model.
        labels: the label set's labels; descriptions: what some of them mean.
        examples: labelled examples for few-shot prompts; `shots` of the most similar to
            each text are shown (0: zero-shot).
        embedder: embeds texts and examples to find the similar ones (needed when shots).
    """

    def __init__(self, model: ChatModel, labels: Sequence[str],
                 descriptions: Mapping[str, str] | None = None, *,
                 examples: Sequence[Example] = (), shots: int = 0,
                 embedder: Embedder | None = None, mode: TeacherMode = "auto") -> None:
        if shots < 0:
            raise UserError(f"shots must be 0 or more, got {shots}")
        if shots and not examples:
            raise UserError("Few-shot prompts need labelled examples; train the label set on "
                            "labelled data first, or use zero-shot (--shots 0)")
        if shots and embedder is None:
            raise UserError("Few-shot prompts need an embedder to find similar examples")
        self.model = model
        self.labels = tuple(labels)
        self.system = system_prompt(self.labels, descriptions or {})
        known = set(self.labels)
        self.examples = [e for e in examples if e.label in known]
        self.shots = min(shots, len(self.examples))
        self.embedder = embedder
        if mode not in TEACHER_MODES:
            raise UserError(f"Unknown teacher mode '{mode}'; choose one of "
                            f"{', '.join(TEACHER_MODES)}")
        self.scoring = mode == "score" or (mode == "auto" and len(self.labels) <= SCORE_LABELS)
        """Whether each label is scored whole (one forced decoding per label) rather than
        generated once."""
        self._example_vectors: np.ndarray | None = None
        self.cost = TeacherCost()

    @property
    def name(self) -> str:
        return self.model.spec.name

    def messages(self, text: str, vector: np.ndarray | None = None) -> list[Message]:
        """The conversation that asks for the label of `text`."""
        messages: list[Message] = [{"role": "system", "content": self.system}]
        if self.shots and vector is not None:
            assert self._example_vectors is not None
            similarity = self._example_vectors @ vector
            picked = np.argsort(-similarity, kind="stable")[: self.shots][::-1]
            for i in picked:  # the most similar example comes last, next to the text
                example = self.examples[int(i)]
                messages.append({"role": "user", "content":
                                 f"Text: {_clip(example.text, MAX_EXAMPLE_CHARS)}"})
                messages.append({"role": "assistant", "content": example.label})
        messages.append({"role": "user", "content": f"Text: {_clip(text, MAX_TEXT_CHARS)}"})
        return messages

    def classify(self, texts: Sequence[str],
                 on_progress: Callable[[int], None] | None = None) -> list[Prediction]:
        """A label and its probability for each text."""
        from feldspar.models.base import GenerationOptions

        vectors = self._vectors(texts)
        longest = max(self.model.count_tokens(label) for label in self.labels)
        options = GenerationOptions(max_tokens=longest + 16, temperature=0.0,
                                    choices=self.labels, logprobs=TOP_LOGPROBS)
        predictions = []
        for i, text in enumerate(texts):
            started = time.perf_counter()
            messages = self.messages(text, None if vectors is None else vectors[i])
            if self.scoring:
                predictions.append(self._score(messages, options))
            else:
                predictions.append(self._generate(messages, options))
            self.cost.texts += 1
            self.cost.seconds += time.perf_counter() - started
            if on_progress is not None:
                on_progress(1)
        return predictions

    def warm(self) -> None:
        """Load the model, embed the few-shot examples and evaluate the shared part of the
        prompt, so that the first text's time is its own (not counted as cost)."""
        kept = replace(self.cost)
        self.classify(["warm-up"])
        self.cost = kept

    def _ask(self, messages: list[Message], options: GenerationOptions) -> Completion:
        done = self.model.complete(messages, options=options)
        self.cost.prompt_tokens += done.usage.prompt_tokens
        self.cost.completion_tokens += done.usage.completion_tokens
        return done

    def _generate(self, messages: list[Message], options: GenerationOptions) -> Prediction:
        """One constrained, greedy generation; the confidence from its log-probabilities."""
        done = self._ask(messages, options)
        label = done.text.strip()
        if label not in self.labels:  # a backend that cannot constrain its output
            raise UserError(f"The teacher '{self.name}' answered {label[:40]!r}, not one of "
                            "the labels; use a backend that supports grammars")
        return Prediction(label, label_confidence(done, label, self.labels), "teacher")

    def _score(self, messages: list[Message], options: GenerationOptions) -> Prediction:
        """Every label scored whole: the model's log-probability of each (its output forced
        to that label), and their softmax as the distribution."""
        scores = []
        for label in self.labels:
            done = self._ask(messages, replace(options, choices=(label,), logprobs=0))
            score = label_logprob(done, label)
            if score is None:
                raise UserError(f"The teacher '{self.name}' gives no log-probabilities, which "
                                "scoring labels needs; set classify_teacher_mode = "
                                '"generate"')
            scores.append(score)
        probabilities = np.exp(np.array(scores) - max(scores))
        probabilities /= probabilities.sum()
        best = int(probabilities.argmax())
        return Prediction(self.labels[best], float(probabilities[best]), "teacher")

    def _vectors(self, texts: Sequence[str]) -> np.ndarray | None:
        if not self.shots:
            return None
        assert self.embedder is not None
        if self._example_vectors is None:
            self._example_vectors = self.embedder.embed([e.text for e in self.examples])
        return self.embedder.embed(list(texts))
