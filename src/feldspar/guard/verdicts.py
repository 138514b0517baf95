"""What the guard returns: spans it found, a verdict per risk, and the action a policy took."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["allow", "flag", "redact", "block"]
"""What a policy does with a text: pass it, pass it with flags, replace the flagged spans,
or stop it. Ordered from mildest to strongest."""

ACTIONS: tuple[Action, ...] = ("allow", "flag", "redact", "block")

Direction = Literal["input", "output", "document"]
"""Where a text comes from: a user's prompt, a model's answer, or an ingested chunk."""

DIRECTIONS: tuple[Direction, ...] = ("input", "output", "document")


@dataclass(frozen=True)
class Span:
    """A piece of text that a rule found (an email address, an API key)."""

    start: int
    """Character offset of the first character in the text screened."""
    end: int
    kind: str
    """What it is: "email", "phone", "iban", "credit_card", "aws_access_key", ..."""
    score: float
    """Probability that the span really is what `kind` says, in [0, 1]."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One risk's score for one text."""

    risk: str
    score: float
    """Probability that the text carries the risk, in [0, 1]."""
    flagged: bool
    """Whether the score reached the policy's threshold for this risk."""
    detector: str
    """The detector that gave the score ("rules", "classifier", "judge:MODEL", ...)."""
    threshold: float = 0.5
    spans: tuple[Span, ...] = ()
    """Where in the text, for the risks that rules find."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spans"] = [s.to_dict() for s in self.spans]
        return out


@dataclass(frozen=True)
class GuardResult:
    """The guard's decision on one text."""

    action: Action
    verdicts: list[Verdict]
    direction: Direction
    text: str
    """The text after the action: redacted where the action is "redact", else as given."""
    audit_id: int | None = None
    """The audit log entry that records the decision (None when audit is off)."""
    redacted: tuple[Span, ...] = ()
    """The spans that the redaction replaced (offsets in the text as given)."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def flags(self) -> list[str]:
        """The risks that were flagged."""
        return [v.risk for v in self.verdicts if v.flagged]

    def to_dict(self, *, text: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "direction": self.direction,
                               "flags": self.flags,
                               "verdicts": [v.to_dict() for v in self.verdicts]}
        if text or self.action == "redact":
            out["text"] = self.text
        if self.audit_id is not None:
            out["audit_id"] = self.audit_id
        return out
