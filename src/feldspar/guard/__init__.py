"""The guard: safety monitoring of prompts, answers and documents.

Risks follow Granite Guardian's taxonomy (harm and its kinds, jailbreak, the RAG risks)
plus pii, secrets, prompt_injection and custom risks; detectors score them (rules, a fast
classifier, the groundedness detector, an LLM judge for uncertain cases); a policy per
direction and risk decides allow, flag, redact or block; the audit log records it.

Example:
    >>> from feldspar.config import Settings
    >>> from feldspar.guard import Guard
    >>> Guard(Settings(guard_audit=False)).check("My key is AKIAIOSFODNN7EXAMPLE",
    ...                                         risks=["secrets"]).flags
    ['secrets']
"""

from feldspar.guard.risks import BUILTIN, Risk, resolve, risk, taxonomy
from feldspar.guard.screen import Blocked, Guard, GuardedStream
from feldspar.guard.verdicts import ACTIONS, Action, Direction, GuardResult, Span, Verdict

__all__ = ["ACTIONS", "BUILTIN", "Action", "Blocked", "Direction", "Guard", "GuardResult",
           "GuardedStream", "Risk", "Span", "Verdict", "resolve", "risk", "taxonomy"]
