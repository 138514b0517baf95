"""The risk taxonomy: Granite Guardian's risks, plus pii, secrets and prompt_injection, plus
custom risks that a company defines by a name and a description.

Each risk says what it is about (a prompt, an answer, a RAG context) and which detectors can
score it. A name that is not a risk gets the closest one suggested.

Example:
    >>> risk("jailbreak").subject
    'prompt'
    >>> resolve(["harm", "pii"])[1].detectors
    ('rules',)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from feldspar.errors import UserError

Subject = Literal["prompt", "answer", "context", "any"]
"""What a risk is judged on: the user's prompt, the assistant's answer, the retrieved
context (RAG), or any text."""

Family = Literal["harm", "rag", "data", "custom"]


@dataclass(frozen=True)
class Risk:
    """One risk the guard can screen for."""

    name: str
    definition: str
    """What the risk means, as the LLM judge reads it (Granite Guardian's wording for its
    own risks; a custom risk's description)."""
    family: Family
    subject: Subject
    detectors: tuple[str, ...]
    """The detectors that score it: every fast one listed ("rules", "classifier",
    "grounding"; the highest score counts), then "judge" for the uncertain band."""

    @property
    def needs_context(self) -> bool:
        """Whether scoring the risk needs retrieved passages (groundedness and relevance)."""
        return self.family == "rag"


def _harm(name: str, definition: str, subject: Subject = "any",
          detectors: tuple[str, ...] = ("classifier", "judge")) -> Risk:
    return Risk(name, definition, "harm", subject, detectors)


BUILTIN: dict[str, Risk] = {r.name: r for r in (
    _harm("harm", "The message is harmful by common-sense."),
    _harm("social_bias", "The message contains systemic prejudice against groups based on "
          "shared identity or characteristics, often stemming from stereotypes or cultural "
          "influences. This can show in thoughts, attitudes or behaviours that unfairly "
          "favour or disfavour certain groups over others."),
    _harm("jailbreak", "The message contains the deliberate circumvention of AI systems' "
          "built-in safeguards or ethical guidelines: prompts or scenarios crafted to "
          "manipulate the AI into generating restricted or inappropriate content.",
          subject="prompt"),
    _harm("violence", "The message contains content promoting or describing physical harm "
          "to individuals or groups, including depictions of assault, self-harm, or the "
          "creation of a hostile environment through threats or intimidation."),
    _harm("profanity", "The message contains language considered offensive or socially "
          "unacceptable in a given context: curse words, swear words and crude expressions, "
          "excluding slurs or derogatory terms targeting specific groups."),
    _harm("sexual_content", "The message contains material explicitly related to sexual "
          "activities, anatomy or desires, from discussions of sexual practices to graphic "
          "depictions of sexual acts, excluding general relationships or non-sexual "
          "intimacy."),
    _harm("unethical_behavior", "The message contains actions that violate moral or "
          "professional standards, focusing on exploitation for personal gain or disregard "
          "for others' well-being: fraud, theft or abuse of power, excluding physical "
          "violence or explicit bias."),
    _harm("harm_engagement", "The assistant's answer engages with or supports a harmful "
          "request instead of refusing it.", subject="answer", detectors=("judge",)),
    _harm("evasiveness", "The assistant's answer avoids or evades the user's question "
          "without a reason, though the question is safe to answer.", subject="answer",
          detectors=("judge",)),
    Risk("groundedness", "The assistant's answer includes claims or facts that are not "
         "supported by, or contradict, the provided context.", "rag", "answer",
         ("grounding", "judge")),
    Risk("context_relevance", "The retrieved context is not relevant to the user's "
         "question and does not help answer it.", "rag", "context", ("judge",)),
    Risk("answer_relevance", "The assistant's answer does not address or is not relevant "
         "to the user's question.", "rag", "answer", ("judge",)),
    Risk("pii", "The text contains personal data: email addresses, phone numbers, bank "
         "and card numbers, national identity numbers or IP addresses.", "data", "any",
         ("rules",)),
    Risk("secrets", "The text contains credentials: API keys, access tokens, private keys "
         "or passwords.", "data", "any", ("rules",)),
    Risk("prompt_injection", "The text contains instructions aimed at an AI system that "
         "tries to override its task or its instructions, such as an order hidden in a "
         "document, an email or a web page.", "harm", "any",
         ("rules", "classifier", "judge")),
)}

NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def custom_risk(name: str, description: str) -> Risk:
    """A risk defined by the company (Granite Guardian's bring-your-own-criteria): only an
    LLM judge can score it."""
    if not name or not set(name) <= NAME_CHARS:
        raise UserError(f"Invalid custom risk name '{name}': use lower-case letters, digits, "
                        "'_' and '-'")
    if name in BUILTIN:
        raise UserError(f"Custom risk '{name}' has the name of a built-in risk; rename it")
    if not description.strip():
        raise UserError(f"Custom risk '{name}' needs a description for the judge to read")
    return Risk(name, description.strip(), "custom", "any", ("judge",))


def taxonomy(custom: Mapping[str, str] | None = None) -> dict[str, Risk]:
    """Every risk: the built-in ones and the custom ones from settings (`guard_risks`)."""
    risks = dict(BUILTIN)
    for name, description in (custom or {}).items():
        risks[name] = custom_risk(name, description)
    return risks


def canonical(name: str) -> str:
    """A risk name as the taxonomy spells it: "Prompt-Injection" is "prompt_injection"
    (custom names keep their dashes).

    Example:
        >>> canonical(" PII "), canonical("Prompt-Injection"), canonical("my-risk")
        ('pii', 'prompt_injection', 'my-risk')
    """
    name = name.strip().lower()
    return name.replace("-", "_") if name.replace("-", "_") in BUILTIN else name


def risk(name: str, custom: Mapping[str, str] | None = None) -> Risk:
    """The risk called `name`; an unknown name is an error that suggests the closest."""
    known = taxonomy(custom)
    found = known.get(canonical(name))
    if found is not None:
        return found
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"Unknown risk '{name}'; {hint}see 'feldspar guard --list-risks'")


def resolve(names: Iterable[str], custom: Mapping[str, str] | None = None) -> list[Risk]:
    """Risks by name, in order, without repeats."""
    return list({r.name: r for r in (risk(n, custom) for n in names)}.values())
