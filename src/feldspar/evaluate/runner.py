"""Ask every case, score each reply, and sum the scores up into a report."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from feldspar.errors import FeldsparError
from feldspar.evaluate import metrics as m
from feldspar.evaluate.cases import RagCase
from feldspar.rag.answer import Answer
from feldspar.rag.citations import strip_markers

logger = logging.getLogger(__name__)

TIMINGS = ("total_s", "first_token_s", "retrieve_s")
"""The answer timings summarised by their median (p50) and 95th percentile (p95)."""


@dataclass(frozen=True)
class CaseResult:
    """One case as it went: the reply, what it retrieved and cited, and its scores."""

    case: RagCase
    answer: str = ""
    abstained: bool = False
    reason: str | None = None
    """Why it abstained (`Answer.reason`)."""
    cited: tuple[str, ...] = ()
    """The document path of each citation, in order (a document cited twice is here twice)."""
    retrieved: tuple[str, ...] = ()
    """The distinct documents of the answer's sources, in rank order."""
    valid_citations: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    """exact_match, f1, contains_gold (0 when it abstained), recall@k, reciprocal_rank and
    cites_gold on answerable cases; citation_precision and citation_validity when it cites."""
    timings: dict[str, float] = field(default_factory=dict)
    """`Answer.timings`, and wall_s: the seconds the runner waited for the reply."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    """The message of the `FeldsparError` that ended this case; it then has no scores."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {**out.pop("case"), **out}


# What each mean in the table is over (the rest are counts and sums); see `RagReport.table`.
_OVER = {"mrr": "answerable cases", "exact_match": "answerable cases",
         "f1": "answerable cases", "contains_gold": "answerable cases",
         "exact_match_answered": "answered cases", "f1_answered": "answered cases",
         "contains_gold_answered": "answered cases",
         "citation_precision": "citing cases",
         "citation_recall": "answerable cases", "citation_validity": "citations",
         "abstention_rate": "unanswerable cases", "false_abstention_rate": "answerable cases"}


@dataclass
class RagReport:
    """The results of `run_rag`, case by case, and their aggregate `metrics`."""

    results: list[CaseResult]
    k_values: tuple[int, ...] = (1, 5)

    def groups(self) -> dict[str, list[CaseResult]]:
        """The populations that metrics average over: scored, errors, answerable,
        unanswerable, answered (answerable and not abstained) and citing (answerable, with
        at least one citation). Cases that ended in an error are in none but "errors"."""
        scored = [r for r in self.results if r.error is None]
        answerable = [r for r in scored if r.case.answerable]
        return {"scored": scored, "errors": [r for r in self.results if r.error is not None],
                "answerable": answerable,
                "unanswerable": [r for r in scored if not r.case.answerable],
                "answered": [r for r in answerable if not r.abstained],
                "citing": [r for r in answerable if r.cited]}

    @property
    def metrics(self) -> dict[str, float | int | None]:
        """The aggregate metrics (definitions in docs/evaluation.md); None where there was
        nothing to average over."""
        g = self.groups()

        def mean(over: str, key: str) -> float | None:
            return _mean(r.scores[key] for r in g[over])

        out: dict[str, float | int | None] = {
            "cases": len(self.results), "answerable": len(g["answerable"]),
            "unanswerable": len(g["unanswerable"]), "errors": len(g["errors"])}
        for k in self.k_values:
            out[f"recall@{k}"] = mean("answerable", f"recall@{k}")
        out["mrr"] = mean("answerable", "reciprocal_rank")
        for key in ("exact_match", "f1", "contains_gold"):
            out[key] = mean("answerable", key)
        for key in ("exact_match", "f1", "contains_gold"):
            out[f"{key}_answered"] = mean("answered", key)
        out["citation_precision"] = mean("citing", "citation_precision")
        out["citation_recall"] = mean("answerable", "cites_gold")
        out["citation_validity"] = _ratio(sum(r.valid_citations for r in g["scored"]),
                                          _citations(g["scored"]))
        out["abstention_rate"] = _mean(r.abstained for r in g["unanswerable"])
        out["false_abstention_rate"] = _mean(r.abstained for r in g["answerable"])
        for key in TIMINGS:
            values = sorted(r.timings[key] for r in g["scored"] if key in r.timings)
            out[f"{key}_p50"] = _percentile(values, 0.5)
            out[f"{key}_p95"] = _percentile(values, 0.95)
        out["prompt_tokens"] = sum(r.prompt_tokens for r in g["scored"])
        out["completion_tokens"] = sum(r.completion_tokens for r in g["scored"])
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"metrics": {...}, "cases": [...]}."""
        return {"metrics": self.metrics, "cases": [r.to_dict() for r in self.results]}

    def table(self) -> str:
        """The aggregate metrics as an aligned text table: metric, value, and the cases it
        is a mean over."""
        g = self.groups()
        sizes = {f"{name} cases": len(group) for name, group in g.items()}
        sizes["citations"] = _citations(g["scored"])
        rows = [("METRIC", "VALUE", "OVER")]
        for key, value in self.metrics.items():
            over = _OVER.get(key, "answerable cases" if key.startswith("recall@")
                             else "scored cases" if key.endswith(("_p50", "_p95")) else "")
            shown = ("n/a" if value is None else f"{value:.3f}" if isinstance(value, float)
                     else str(value))
            rows.append((key, shown, f"{sizes[over]} {over}" if over else ""))
        width, value_width = (max(len(row[i]) for row in rows) for i in range(2))
        return "\n".join(f"{a:<{width}}  {b:>{value_width}}  {c}".rstrip()
                         for a, b, c in rows)


def run_rag(cases: Iterable[RagCase], ask: Callable[[RagCase], Answer], *,
            k_values: Sequence[int] = (1, 5),
            on_case: Callable[[CaseResult], None] | None = None) -> RagReport:
    """Ask each case in turn and score the reply.

    A case whose `ask` raises a `FeldsparError` is recorded with the message as its
    `error` and the run goes on; any other exception propagates.

    Args:
        cases: what to ask.
        ask: returns the answer to a case, e.g.
            `lambda case: ws.ask(case.question, collection="docs")`.
        k_values: the k of each recall@k.
        on_case: called with each result as it is scored (a progress bar).

    Example:
        >>> from feldspar.rag.answer import Answer
        >>> def ask(case):
        ...     return Answer(case.question, case.question, "I don't know.", [], [], [],
        ...                   abstained=True, reason="no relevant passages", model="stub")
        >>> report = run_rag([RagCase("1", "Who?", (), (), answerable=False)], ask)
        >>> report.metrics["abstention_rate"], report.metrics["false_abstention_rate"]
        (1.0, None)
    """
    results = []
    for case in cases:
        start = time.perf_counter()
        try:
            answer = ask(case)
        except FeldsparError as exc:
            logger.info("Case %s failed: %s", case.id, exc)
            result = CaseResult(case, error=str(exc) or type(exc).__name__,
                                timings={"wall_s": time.perf_counter() - start})
        else:
            result = score(case, answer, k_values, wall_s=time.perf_counter() - start)
        results.append(result)
        if on_case is not None:
            on_case(result)
    return RagReport(results, tuple(k_values))


def score(case: RagCase, answer: Answer, k_values: Sequence[int] = (1, 5), *,
          wall_s: float = 0.0) -> CaseResult:
    """Score one answer to one case (see `CaseResult.scores`)."""
    retrieved = tuple(m.ranked_documents([s.path for s in answer.sources]))
    cited = tuple(c.source for c in answer.citations)
    scores: dict[str, float] = {}
    if case.answerable:
        # An abstention is not an answer: it scores 0 whatever its wording. Markers are
        # not words of the answer.
        answered, text = not answer.abstained, strip_markers(answer.text)
        scores["exact_match"] = m.exact_match(text, case.answers) if answered else 0.0
        scores["f1"] = m.f1(text, case.answers) if answered else 0.0
        scores["contains_gold"] = float(answered and m.contains_gold(text, case.answers))
        for k in k_values:
            scores[f"recall@{k}"] = m.recall_at_k(retrieved, case.gold_sources, k)
        scores["reciprocal_rank"] = m.reciprocal_rank(retrieved, case.gold_sources)
        gold = m.gold_citations(cited, case.gold_sources)
        scores["cites_gold"] = float(gold > 0)
        if cited:
            scores["citation_precision"] = gold / len(cited)
    valid = m.valid_citations(answer)
    if cited:
        scores["citation_validity"] = valid / len(cited)
    return CaseResult(
        case, answer=answer.text, abstained=answer.abstained, reason=answer.reason,
        cited=cited, retrieved=retrieved, valid_citations=valid, scores=scores,
        timings={**answer.timings, "wall_s": wall_s},
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens)


def _citations(results: Iterable[CaseResult]) -> int:
    return sum(len(r.cited) for r in results)


def _mean(values: Iterable[float]) -> float | None:
    found = list(values)
    return sum(found) / len(found) if found else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values, interpolating linearly between closest ranks."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
