"""Policies: for each direction and risk, a threshold and an action; and how the actions of
several flagged risks combine into one.

Settings hold the policy (`guard_policy`, merged over `DEFAULT_GUARD_POLICY`):

    [guard_policy.input]
    harm = { action = "block", threshold = 0.5 }
    pii = { action = "redact" }

Example:
    >>> strongest(["flag", "block", "redact"])
    'block'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from feldspar.errors import UserError
from feldspar.guard.risks import resolve
from feldspar.guard.verdicts import ACTIONS, DIRECTIONS, Action

if TYPE_CHECKING:
    from feldspar.config import RiskRule

SPAN_RISKS = frozenset({"pii", "secrets"})
"""Risks whose detectors return spans, so that "redact" can replace them."""


def strongest(actions: Iterable[Action]) -> Action:
    """The strongest of several actions (block > redact > flag > allow)."""
    return max(actions, key=ACTIONS.index, default="allow")


def check_policy(policy: Mapping[str, Mapping[str, RiskRule]], custom: Mapping[str, str],
                 *, judge: bool) -> None:
    """Raise UserError for a policy that names an unknown direction or risk, redacts a risk
    without spans, or needs a judge that is not configured."""
    for direction, rules in policy.items():
        if direction not in DIRECTIONS:
            raise UserError(f"Unknown direction '{direction}' in guard_policy: use input, "
                            "output or document")
        try:
            found_risks = resolve(rules, custom)
        except UserError as exc:
            raise UserError(f"guard_policy.{direction}: {exc}") from exc
        for found in found_risks:
            where = f"guard_policy.{direction}.{found.name}"
            if rules[found.name].action == "redact" and direction == "document":
                raise UserError(f"{where}: documents are stored whole, so they cannot be "
                                "redacted; use flag, or block to keep them out of prompts")
            if rules[found.name].action == "redact" and found.name not in SPAN_RISKS:
                raise UserError(f"{where}: 'redact' needs a risk with spans (pii, secrets); "
                                "use flag or block")
            if found.detectors == ("judge",) and not judge:
                raise UserError(f"{where}: only an LLM judge scores '{found.name}'; set "
                                "guard_model or remove the risk")
