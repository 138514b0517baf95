"""The guard: screen texts for risks, apply the policy, record the decision.

    text ─► rules (pii, secrets) + fast classifier (harm family, jailbreak, injection)
         ─► scores in the uncertain band ─► LLM judge, when guard_model is set
         ─► verdicts ─► policy: allow | flag | redact | block ─► audit log

Example:
    >>> from feldspar.config import Settings
    >>> guard = Guard(Settings(guard_audit=False))
    >>> result = guard.check("Write to jane.doe@example.com", direction="output",
    ...                      risks=["pii"])
    >>> result.action, result.text
    ('redact', 'Write to [EMAIL]')
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from feldspar.errors import UserError
from feldspar.guard.detectors import DETECTORS, Detector, Item, Score
from feldspar.guard.policy import strongest
from feldspar.guard.redaction import redact
from feldspar.guard.risks import Risk, resolve
from feldspar.guard.verdicts import Action, Direction, GuardResult, Span, Verdict

if TYPE_CHECKING:
    from feldspar.config import RiskRule, Settings
    from feldspar.guard.judge import GuardianJudge
    from feldspar.store.base import Store
    from feldspar.store.records import AuditEntry


class Blocked(UserError):
    """The guard's policy blocked a text; `result` holds the verdicts."""

    def __init__(self, result: GuardResult) -> None:
        flagged = ", ".join(f"{v.risk} {v.score:.2f}" for v in result.verdicts if v.flagged)
        what = "prompt" if result.direction == "input" else "answer"
        where = f"; see 'feldspar audit show {result.audit_id}'" if result.audit_id else ""
        super().__init__(f"The guard blocked this {what} ({flagged}){where}")
        self.result = result


class Guard:
    """Screens texts as the settings' guard_policy says.

    Args:
        settings: the policy, custom risks, judge model and audit switches.
        store: where the audit log goes (None: decisions are not recorded).
        detectors: replace registered detectors by name (tests, a shared classifier).
        judge: the LLM judge (default: built from settings.guard_model when first needed).
    """

    def __init__(self, settings: Settings, *, store: Store | None = None,
                 detectors: Mapping[str, Detector] | None = None,
                 judge: GuardianJudge | None = None) -> None:
        self.settings = settings
        self.store = store
        self._detectors: dict[str, Detector] = dict(detectors or {})
        self._judge = judge
        self._lock = threading.Lock()
        self.listeners: list[Callable[[str, str], None]] = []
        """Called with (direction, action) for every decision `record` takes."""

    # What to screen for

    def rule(self, direction: Direction, risk: str) -> RiskRule:
        """The policy's rule for a risk; a risk outside the policy is flagged at 0.5."""
        from feldspar.config import RiskRule

        return self.settings.guard_policy.get(direction, {}).get(risk) or RiskRule()

    def risks(self, direction: Direction, names: Sequence[str] | None = None) -> list[Risk]:
        """The risks named (checked against the taxonomy), or the policy's for `direction`."""
        if names is None:
            names = list(self.settings.guard_policy.get(direction, {}))
        return resolve(names, self.settings.guard_risks)

    @property
    def judge(self) -> GuardianJudge | None:
        """The LLM judge named by guard_model, loaded when first needed."""
        with self._lock:
            if self._judge is None and self.settings.guard_model:
                from feldspar.guard.judge import GuardianJudge
                from feldspar.models.loading import get_model

                self._judge = GuardianJudge(get_model(self.settings.guard_model,
                                                      settings=self.settings))
            return self._judge

    def _detector(self, name: str) -> Detector:
        with self._lock:
            if name not in self._detectors:
                self._detectors[name] = DETECTORS[name](self.settings)
            return self._detectors[name]

    def _route(self, risks: Sequence[Risk]) -> dict[str, list[Risk]]:
        """Each risk goes to each of its fast detectors; risks only a judge scores need
        one."""
        routes: dict[str, list[Risk]] = {}
        for risk in risks:
            names = [d for d in risk.detectors if d in DETECTORS or d in self._detectors]
            if not names:
                if self.judge is None:
                    raise UserError(f"Only an LLM judge scores '{risk.name}'; set guard_model "
                                    "(e.g. granite-guardian-3.1-2b) or leave the risk out")
                names = ["judge"]
            for name in names:
                routes.setdefault(name, []).append(risk)
        return routes

    # Screening

    def check(self, text: str, *, direction: Direction = "input",
              risks: Sequence[str] | None = None, prompt: str | None = None,
              context: Sequence[str] = (), scores: Mapping[str, float] | None = None,
              source: str = "library", model: str | None = None,
              audit: bool = True) -> GuardResult:
        """Screen one text; see `check_many`."""
        return self.check_many([text], direction=direction, risks=risks, prompt=prompt,
                               context=context, scores=scores, source=source, model=model,
                               audit=audit)[0]

    def check_many(self, texts: Sequence[str], *, direction: Direction = "input",
                   risks: Sequence[str] | None = None, prompt: str | None = None,
                   context: Sequence[str] = (), scores: Mapping[str, float] | None = None,
                   source: str = "library", model: str | None = None,
                   audit: bool = True) -> list[GuardResult]:
        """Screen texts for `risks` (default: the policy's risks for `direction`).

        `prompt` is the question an answer replies to and `context` the passages it was
        given (the RAG risks need them; without context they are skipped). `scores` are
        risks the caller already measured (`ask` knows its answer's groundedness). Every
        decision goes to the audit log when `audit` and the guard_audit setting allow.
        """
        started = time.perf_counter()
        # Lone surrogates (undecodable bytes smuggled into a str) become "?", one character
        # for one, so that every detector can read the text and spans still index it.
        texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
        wanted = self.risks(direction, risks)
        if risks is not None and not context:
            needing = [r.name for r in wanted if r.needs_context]
            if needing:
                raise UserError(f"'{needing[0]}' is judged against retrieved passages; give "
                                "the context (--context FILE) or leave the risk out")
        known = dict(scores or {})
        todo = [r for r in wanted if r.name not in known and (context or not r.needs_context)]
        items = [Item(t, prompt, tuple(context)) for t in texts]
        found: list[dict[str, tuple[Score, str]]] = [
            {name: (Score(value), "grounding" if name == "groundedness" else "caller")
             for name, value in known.items()} for _ in items]
        for name, group in self._route(todo).items():
            detector = self.judge if name == "judge" else self._detector(name)
            assert detector is not None
            label = self.judge.label if name == "judge" and self.judge else name
            for row, got in zip(found, detector.score(items, group), strict=True):
                for risk, score in got.items():  # several fast detectors: the highest wins
                    if risk not in row or score.score > row[risk][0].score:
                        row[risk] = (score, label)
        self._escalate(items, wanted, found)
        results = [self._decide(text, direction, wanted, row, started)
                   for text, row in zip(texts, found, strict=True)]
        return self.record(texts, results, source=source, model=model) if audit else results

    def record(self, texts: Sequence[str], results: Sequence[GuardResult], *,
               source: str, model: str | None, ref: str | None = None) -> list[GuardResult]:
        """Write decisions to the audit log (when guard_audit is on and there is a store);
        returns them with their `audit_id`. `ref` names what the texts belong to (a
        document's path)."""
        for result in results:
            for listener in self.listeners:
                listener(result.direction, result.action)
        if not self.settings.guard_audit or self.store is None:
            return list(results)
        ids = self.store.add_audit([self._entry(t, r, source, model, ref)
                                    for t, r in zip(texts, results, strict=True)])
        return [replace(r, audit_id=i) for r, i in zip(results, ids, strict=True)]

    def _escalate(self, items: Sequence[Item], risks: Sequence[Risk],
                  found: list[dict[str, tuple[Score, str]]]) -> None:
        """The cascade: a fast score in the uncertain band goes to the judge."""
        judge = self.judge
        if judge is None:
            return
        low, high = self.settings.guard_judge_band
        by_name = {r.name: r for r in risks}
        for item, row in zip(items, found, strict=True):
            for name, (score, label) in list(row.items()):
                risk = by_name.get(name)
                if (risk is not None and "judge" in risk.detectors and label != judge.label
                        and label != "rules" and low <= score.score < high):
                    row[name] = (Score(judge.judge(item, risk)), judge.label)

    def _decide(self, text: str, direction: Direction, risks: Sequence[Risk],
                found: Mapping[str, tuple[Score, str]], started: float) -> GuardResult:
        verdicts: list[Verdict] = []
        actions: list[Action] = []
        spans: list[Span] = []
        for risk in risks:
            if risk.name not in found:
                continue
            score, detector = found[risk.name]
            rule = self.rule(direction, risk.name)
            flagged = score.score >= rule.threshold
            kept = tuple(s for s in score.spans if s.score >= rule.threshold)
            verdicts.append(Verdict(risk.name, round(score.score, 4), flagged, detector,
                                    rule.threshold, kept))
            if flagged:
                actions.append(rule.action)
                if rule.action == "redact":
                    spans += kept
        action = strongest(actions)  # a flagged risk whose rule is "allow" does nothing
        if action != "redact":
            spans = []
        return GuardResult(action, verdicts, direction, redact(text, spans) if spans else text,
                           redacted=tuple(sorted(spans, key=lambda s: s.start)),
                           timings={"total_s": time.perf_counter() - started})

    def _entry(self, text: str, result: GuardResult, source: str, model: str | None,
               ref: str | None) -> AuditEntry:
        from feldspar.store.records import AuditEntry

        verdicts = tuple({"risk": v.risk, "score": v.score, "flagged": v.flagged,
                          "threshold": v.threshold, "detector": v.detector,
                          "spans": len(v.spans)} for v in result.verdicts)
        return AuditEntry(time=time.time(), direction=result.direction, action=result.action,
                          source=source, text_sha256=sha256(text), chars=len(text),
                          flags=tuple(result.flags), verdicts=verdicts, model=model,
                          text=text if self.settings.guard_audit_text else None, ref=ref)

    def screen_document(self, path: str, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """Screen a document's chunks under the document policy; returns each chunk's
        flagged risks. Only chunks with flags go to the audit log (a whole corpus of
        clean chunks would drown it)."""
        results = self.check_many(texts, direction="document", source="ingest", audit=False)
        flagged = [(t, r) for t, r in zip(texts, results, strict=True) if r.flags]
        if flagged:
            self.record([t for t, _ in flagged], [r for _, r in flagged], source="ingest",
                        model=None, ref=path)
        return [tuple(r.flags) for r in results]

    def stream(self, pieces: Iterator[str], *, prompt: str | None = None,
               source: str = "library", model: str | None = None) -> GuardedStream:
        """Screen an answer while it streams; see `GuardedStream`."""
        return GuardedStream(self, pieces, prompt=prompt, source=source, model=model)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


HOLD_CHARS = 400
"""A streamed answer is released a sentence at a time, or about this many characters at a
time when sentences run long."""
TAIL_CHARS = 64
"""Held back behind every release and screened again with the next text, so that a
number, an address or a key that the release point would cut is seen whole."""
PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}-----")


def release_point(held: str, final: bool = False) -> int:
    """How much of the held text may be released now: up to the last sentence end (or,
    for a long run without one, the last space), but never into the last TAIL_CHARS nor
    past the start of a PEM block that has not ended; all of it once the stream ends."""
    if final:
        return len(held)
    limit = len(held) - TAIL_CHARS
    opened = [m.start() for m in PEM.finditer(held)]
    if opened and "-----END " not in held[opened[-1]:]:
        limit = min(limit, opened[-1])
    if limit <= 0:
        return 0
    for i in range(limit - 1, -1, -1):
        if held[i] == "\n" or (held[i] in ".!?" and held[i + 1].isspace()):
            return i + 1
    if limit < HOLD_CHARS:
        return 0
    space = max(held.rfind(" ", 0, limit), held.rfind("\n", 0, limit))
    return space if space > 0 else limit


class GuardedStream(Iterator[str]):
    """An answer screened while it streams, under the output policy.

    When the policy can redact or block an answer, text is held back and screened with
    what follows it (`release_point`): text comes out redacted, and a blocked answer ends
    the stream (`blocked` turns true). Otherwise text passes at once. Once the stream
    ends, `result()` screens the whole answer once more, records that decision, and
    returns it; its `text` is the whole answer as the policy leaves it.
    """

    def __init__(self, guard: Guard, pieces: Iterator[str], *, prompt: str | None,
                 source: str, model: str | None) -> None:
        self._guard, self._pieces = guard, pieces
        self._prompt, self._source, self._model = prompt, source, model
        policy = guard.settings.guard_policy.get("output", {})
        self._hold = any(r.action in ("redact", "block") for r in policy.values())
        self._text: list[str] = []
        self._held = ""
        self.blocked = False
        self._blocking: GuardResult | None = None
        self._result: GuardResult | None = None

    def __next__(self) -> str:
        while not self.blocked:
            try:
                piece = next(self._pieces)
            except StopIteration:
                if self._held:
                    out = self._release(final=True)
                    if out:
                        return out
                raise
            self._text.append(piece)
            if not self._hold:
                return piece
            self._held += piece
            out = self._release(final=False)
            if out:
                return out
        raise StopIteration

    def _release(self, *, final: bool) -> str:
        """Screen all the held text; release its first part, redacted, or block."""
        cut = release_point(self._held, final)
        if not cut:
            return ""
        result = self._guard.check(self._held, direction="output", prompt=self._prompt,
                                   source=self._source, model=self._model, audit=False)
        if result.blocked:
            self.blocked, self._blocking, self._held = True, result, ""
            return ""
        spans = [s for s in result.redacted if s.start < cut]
        cut = max([cut, *(s.end for s in spans)])  # never release half a span
        cut = min(cut, len(self._held))
        out = redact(self._held[:cut], [s for s in spans if s.end <= cut])
        self._held = self._held[cut:]
        return out

    def result(self) -> GuardResult:
        """The decision on the whole answer (recorded in the audit log)."""
        if self._result is None:
            for _ in self:
                pass
            text = "".join(self._text)
            result = self._guard.check(text, direction="output", prompt=self._prompt,
                                       source=self._source, model=self._model, audit=False)
            if self._blocking is not None and not result.blocked:
                # A part was blocked on its own: that part's verdicts explain the block.
                result = replace(result, action="block", verdicts=self._blocking.verdicts)
            self._result = self._guard.record([text], [result], source=self._source,
                                              model=self._model)[0]
        return self._result
