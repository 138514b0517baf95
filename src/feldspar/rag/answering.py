"""`ask`: retrieve, prompt with numbered sources, generate, then check every citation.

    question ─► (conversation? standalone rewrite) ─► hybrid search ─► relevant enough?
        no ─► abstain, showing the closest sources
        yes ─► prompt with [1]..[k] ─► stream ─► sentences × sources groundedness
              ─► checked citations; an unsupported answer becomes an abstention

The model call starts as soon as the sources are chosen, so the first token of an answer
costs retrieval plus the model's own first token; verification runs after the stream.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from feldspar.datatypes import Message
from feldspar.errors import ContextOverflow, UserError
from feldspar.models.base import ChatModel, GenerationOptions, Stream, as_messages
from feldspar.rag.answer import Answer, Source
from feldspar.rag.citations import verify
from feldspar.rag.conversation import standalone_query
from feldspar.rag.prompting import as_documents, build_messages, fit_sources, trim_history

if TYPE_CHECKING:
    from feldspar.grounding.detector import GroundednessDetector
    from feldspar.guard.screen import Guard, GuardedStream
    from feldspar.guard.verdicts import GuardResult
    from feldspar.store.records import Hit, Where
    from feldspar.workspace import Workspace

MAX_QUESTION_CHARS = 8000
"""Longer questions are refused before any work: they are documents, not questions."""

_DECLINED = re.compile(
    r"\b(do(?:es)?(?: not|n'?t) (say|mention|contain|state|provide|specify)|"
    r"(is|are) not (mentioned|stated|specified|given|provided)|"
    r"no (information|mention)|i (do not|don't|cannot|can't) (know|find|answer))\b",
    re.IGNORECASE)


def declined(text: str, abstain_text: str) -> bool:
    """Whether the model's reply says the sources do not answer.

    Example:
        >>> declined("The documents do not say.", "The documents do not say.")
        True
        >>> declined("Staff get 25 days [1].", "The documents do not say.")
        False
    """
    squashed = " ".join(text.lower().split())
    return abstain_text.lower().rstrip(".") in squashed or bool(_DECLINED.search(squashed))


def relevance(query: str, hit: Hit) -> float:
    """How well a found chunk matches the query: its cosine similarity plus the share of
    the query's content words (stemmed; English and French stop words left out) that it
    contains. The second half keeps the measure useful where the embedder is weak (it is
    English-only by default); see docs/rag.md for how the threshold was set.

    Example:
        >>> from feldspar.store.records import Chunk, Hit
        >>> hit = Hit(Chunk("Staff get 25 days of leave.", 0, 27, 1, 1), 1.0, 1,
        ...           {"dense": 0.5})
        >>> round(relevance("Days of annual leave?", hit), 2)  # 0.5 + 2 words of 3
        1.17
    """
    from feldspar.grounding.features import analyse

    wanted, found = analyse(query), analyse(hit.chunk.text)
    words = wanted.stems | wanted.numbers
    shared = len(words & (found.stems | found.numbers)) / len(words) if words else 0.0
    return hit.scores.get("dense", 0.0) + shared


def to_source(marker: int, hit: Hit, query: str) -> Source:
    chunk = hit.chunk
    assert chunk.id is not None
    assert chunk.path is not None
    return Source(marker=marker, chunk_id=chunk.id, path=chunk.path,
                  span=(chunk.start, chunk.end), lines=(chunk.line_start, chunk.line_end),
                  page=chunk.page, headings=chunk.headings, text=chunk.text,
                  score=hit.score, relevance=relevance(query, hit))


class AnswerStream(Iterator[str]):
    """The answer's text as the model writes it; `result()` checks it and returns the
    `Answer`. When `ask` abstains before generating, the stream yields the abstention."""

    def __init__(self, *, question: str, query: str, sources: list[Source], model: ChatModel,
                 stream: Stream | None, detector: Callable[[], GroundednessDetector],
                 abstain_text: str, min_support: float, started: float,
                 timings: dict[str, float], reason: str | None = None,
                 guard: Guard | None = None, checked: GuardResult | None = None) -> None:
        self._question, self._query, self._sources = question, query, sources
        self._model, self._stream, self._detector = model, stream, detector
        self._abstain_text, self._min_support = abstain_text, min_support
        self._started, self._timings, self._reason = started, timings, reason
        self._pending = [abstain_text] if stream is None else []
        self._answer: Answer | None = None
        self._guard, self._checked = guard, checked
        # The answer is screened as it streams when the output policy can redact or block.
        self._pieces: Iterator[str] | None = stream
        self._screened: GuardedStream | None = None
        if guard is not None and stream is not None:
            self._screened = guard.stream(stream, prompt=question, source="ask",
                                          model=model.spec.name)
            self._pieces = self._screened

    def __next__(self) -> str:
        if self._pending:
            return self._pending.pop()
        if self._pieces is None:
            raise StopIteration
        piece = next(self._pieces)
        self._timings.setdefault("first_token_s", time.perf_counter() - self._started)
        return piece

    def close(self) -> None:
        """Stop generating early."""
        if self._stream is not None:
            self._stream.close()

    def result(self) -> Answer:
        """Finish generating, verify the citations, screen the answer and return it."""
        if self._answer is None:
            self._answer = self._screen(self._finish())
        return self._answer

    def _screen(self, answer: Answer) -> Answer:
        """The output policy on the model's answer: block withholds it, redact rewrites it
        (the checked text, its sentences and the draft alike)."""
        if self._guard is None:
            return answer
        if self._checked is not None:
            answer.guard["input"] = self._checked
        if answer.draft is None:
            return answer  # abstained before the model was asked: nothing of its to screen
        # An abstention still carries the draft and its sentences: screen what it said.
        subject = answer.draft if answer.abstained else answer.text
        counted = [s.support for s in answer.sentences if s.checked]
        risks = list(self._guard.settings.guard_policy.get("output", {}))
        scores = {}
        if answer.abstained or not counted:
            # An abstention claims nothing: it cannot be ungrounded.
            risks = [r for r in risks if r != "groundedness"]
        else:
            scores["groundedness"] = 1.0 - sum(counted) / len(counted)
        result = self._guard.check(subject, direction="output", risks=risks,
                                   prompt=self._question,
                                   context=[s.text for s in self._sources], scores=scores,
                                   source="ask", model=answer.model, audit=False)
        if self._screened is not None and self._screened.blocked and not result.blocked:
            result = replace(result, action="block")
        result = self._guard.record([subject], [result], source="ask", model=answer.model)[0]
        answer.guard["output"] = result
        if result.blocked:
            return replace(answer, text=f"The guard withheld this answer "
                           f"({', '.join(result.flags)}).", citations=[], sentences=[],
                           draft=None, abstained=True, reason="blocked by the guard")
        if result.action != "redact":
            return answer
        if answer.abstained:
            return replace(answer, draft=result.text, sentences=[
                replace(s, text=self._redact(s.text)) for s in answer.sentences])
        return replace(redact_answer(answer, result), draft=self._redact(answer.draft))

    def _redact(self, text: str) -> str:
        assert self._guard is not None
        result = self._guard.check(text, direction="output", source="ask", audit=False)
        return result.text if result.action == "redact" else text

    def _finish(self) -> Answer:
        answer = Answer(question=self._question, query=self._query, text=self._abstain_text,
                        citations=[], sentences=[], sources=self._sources,
                        abstained=True, reason=self._reason, model=self._model.spec.name,
                        timings=self._timings)
        if self._stream is None:
            self._timings["total_s"] = time.perf_counter() - self._started
            return answer
        done = self._stream.result()
        generated = time.perf_counter()
        self._timings["generate_s"] = done.timings.total_s
        if done.timings.first_token_s is not None:
            self._timings["model_first_token_s"] = done.timings.first_token_s
            self._timings.setdefault(
                "first_token_s", self._timings["prompt_s"] + done.timings.first_token_s)
        answer.usage, answer.draft = done.usage, done.text
        if done.text.strip():
            detector = self._detector()
            text, sentences, citations = verify(self._question, done.text, self._sources,
                                                detector.support, threshold=detector.threshold)
            self._timings["verify_s"] = time.perf_counter() - generated
            counted = [s.support for s in sentences if s.checked]
            support = sum(counted) / len(counted) if counted else 0.0
            if not any(s.supported for s in sentences) and declined(done.text,
                                                                     self._abstain_text):
                answer.reason = "model declined"
            elif support >= self._min_support:
                answer = replace(answer, text=text, sentences=sentences, citations=citations,
                                 abstained=False, reason=None)
            else:
                answer.reason, answer.sentences = "not supported", sentences
        else:
            answer.reason = "model declined"
        self._timings["total_s"] = time.perf_counter() - self._started
        return answer


def ask_stream(workspace: Workspace, question: str, *, collection: str | None = None,
               model: str | ChatModel | None = None, history: Sequence[Message] = (),
               k: int | None = None, where: Where | None = None,
               options: GenerationOptions | None = None) -> AnswerStream:
    """Start answering `question` from a collection; see `Workspace.ask`."""
    from feldspar.models.loading import get_model

    if not question.strip():
        raise UserError("The question is empty; ask something, e.g. "
                        "feldspar ask \"How many days of leave do I get?\"")
    if len(question) > MAX_QUESTION_CHARS:
        raise UserError(f"The question is {len(question)} characters, over the limit of "
                        f"{MAX_QUESTION_CHARS}; ask a shorter question")
    history = as_messages(list(history)) if history else []
    settings = workspace.settings
    found = workspace.collection(collection)
    name = found.name
    if found.chunks == 0:
        raise UserError(f"Collection '{name}' has no text to answer from; ingest some files "
                        f"first: feldspar ingest PATH --collection {name}")
    llm = model if isinstance(model, ChatModel) else get_model(model, settings=settings)
    options = options or GenerationOptions(max_tokens=settings.rag_max_tokens,
                                           temperature=0.0)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    guard, checked = None, None
    if settings.guard:
        guard = workspace.guard
        checked = guard.check(question, direction="input", source="ask", model=llm.spec.name)
        if checked.blocked:
            from feldspar.guard.screen import Blocked

            raise Blocked(checked)
        question = checked.text  # redacted, when the input policy says so
        timings["guard_s"] = time.perf_counter() - started
    query = question.strip()
    if history:
        query = standalone_query(llm, history, question)
        timings["rewrite_s"] = time.perf_counter() - started
    searched = time.perf_counter()
    hits = _search(workspace, query, k or settings.rag_top_k, name, where)
    timings["retrieve_s"] = time.perf_counter() - searched
    sources = [to_source(n, hit, query) for n, hit in enumerate(hits, start=1)]
    answer = partial(AnswerStream, question=question, query=query, model=llm,
                     detector=lambda: workspace.grounding, abstain_text=settings.rag_abstain_text,
                     min_support=settings.rag_min_support, started=started, timings=timings,
                     guard=guard, checked=checked)
    if not sources or max(s.relevance for s in sources) < settings.rag_min_relevance:
        return answer(sources=sources, stream=None, reason="no relevant passages")
    window, reply = llm.context_window, options.max_tokens or settings.rag_max_tokens
    turns = trim_history(history, window=window, count=llm.count_tokens)
    fitted = fit_sources(question, sources, turns, window=window, reply_tokens=reply,
                         count=llm.count_tokens, abstain_text=settings.rag_abstain_text)
    if not fitted:
        raise ContextOverflow(
            f"No source fits beside the question in the model's context of {window} tokens; "
            "ask a shorter question, lower rag_max_tokens or chunk_tokens, or use a model "
            "with a longer context")
    # A model whose chat template takes documents (Granite's) gets them there.
    native = llm.takes_documents
    messages = build_messages(question, fitted, history=turns,
                              abstain_text=settings.rag_abstain_text, native=native)
    if native:
        options = replace(options, documents=as_documents(fitted))
    timings["prompt_s"] = time.perf_counter() - started
    stream = llm.stream(messages, options=options)
    return answer(sources=fitted, stream=stream)



def _search(workspace: Workspace, query: str, k: int, collection: str,
            where: Where | None) -> list[Hit]:
    """The `k` best chunks, leaving out those that the document policy blocks (flagged at
    ingest for a risk whose document action is "block", such as prompt injection)."""
    settings = workspace.settings
    blocked = {risk for risk, rule in settings.guard_policy.get("document", {}).items()
               if rule.action == "block"} if settings.guard else set()
    wanted = k
    while True:
        hits = workspace.search(query, k=wanted, collection=collection, where=where)
        kept = [h for h in hits if not blocked.intersection(h.chunk.flags)]
        if len(kept) >= k or len(hits) < wanted or wanted >= 4 * k:
            return [replace(h, rank=n) for n, h in enumerate(kept[:k], start=1)]
        wanted *= 2


def redact_answer(answer: Answer, result: GuardResult) -> Answer:
    """The answer with the redacted text, its sentences' spans moved to match."""
    from feldspar.guard.redaction import offset_map

    moved = offset_map(result.redacted)
    sentences = [replace(s, text=result.text[moved(s.start):moved(s.end)],
                         start=moved(s.start), end=moved(s.end)) for s in answer.sentences]
    return replace(answer, text=result.text, sentences=sentences)
