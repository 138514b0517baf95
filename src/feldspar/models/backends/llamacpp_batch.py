"""Continuous batching for GGUF chat models: several sequences decode together.

A `BatchEngine` owns one llama.cpp context with `n_seq` sequences on weights that are
already loaded, and one scheduler thread, the only one that calls `llama_decode` on it.
Each step it admits waiting requests into free sequences (keeping the longest cached
prefix), then decodes one batch: the next token of every generating sequence and as much
of the admitted prompts as fits, and samples each sequence with its own sampler chain.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from feldspar.datatypes import Delta, TokenLogprob
from feldspar.errors import ModelError
from feldspar.models.base import GenerationOptions
from feldspar.models.decoding import StopFilter


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities (float64) of one row of logits."""
    logits = scores.astype(np.float64)
    shifted = logits - logits.max()
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
    return result


def token_logprob(logprobs: np.ndarray, token: int, top: int,
                  piece: Callable[[int], str]) -> TokenLogprob:
    """`token`'s log-probability and the `top` most likely tokens, best first."""
    best_of: tuple[tuple[str, float], ...] = ()
    if top:
        best = np.argpartition(-logprobs, top)[:top]
        best = best[np.argsort(-logprobs[best])]
        best_of = tuple((piece(int(i)), float(logprobs[i])) for i in best)
    return TokenLogprob(piece(token), float(logprobs[token]), best_of)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Request:
    """One generation submitted to a `BatchEngine`: iterate it for its `Delta`s (the last
    carries `finish_reason`); `cancel()` stops it and frees its sequence at the next step."""

    def __init__(self, engine: BatchEngine) -> None:
        self._engine = engine
        self._items: queue.SimpleQueue[Delta | ModelError] = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._done = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop generating (a no-op once finished)."""
        if not self._done and not self._cancelled.is_set():
            self._cancelled.set()
            self._engine.wake()

    def put(self, item: Delta | ModelError) -> None:
        """From the engine: the next piece, or the error that ends the request."""
        self._items.put(item)

    def __iter__(self) -> Iterator[Delta]:
        while not self._done:
            try:
                item = self._items.get(timeout=1.0)
            except queue.Empty:
                if not self._engine.running:  # never wait on a scheduler that is gone
                    self._done = True
                    raise ModelError("The batch engine stopped before this request "
                                     "finished") from None
                continue
            if isinstance(item, ModelError):
                self._done = True
                raise ModelError(str(item)) from item
            if item.finish_reason is not None:
                self._done = True
            yield item


class _Job:
    """A request's decoding state, touched by the scheduler thread only."""

    def __init__(self, request: Request, tokens: list[int], sampler: Any, max_tokens: int,
                 stop: tuple[str, ...], logprobs_top: int | None) -> None:
        self.request = request
        self.tokens = tokens
        self.sampler = sampler
        self.max_tokens = max_tokens
        self.stops = StopFilter(stop)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.logprobs_top = logprobs_top
        self.pending: list[int] = []
        """Prompt tokens still to decode."""
        self.next_token: int | None = None
        """The sampled token that the next step decodes."""
        self.output = -1
        """The batch index of this sequence's logits after the current step, or -1."""
        self.generated = 0


class _Slot:
    """One llama.cpp sequence: the tokens its KV cache holds, and the job using it."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.cached: list[int] = []
        self.job: _Job | None = None


class BatchEngine:
    """Decode up to `n_seq` generations together on an already loaded llama.cpp model.

    `cpp` is the llama_cpp module, `model` the loaded model's pointer and `params` the
    llama_context_params to copy (threads, batch size, attention); `n_ctx_seq` is the
    context each sequence gets. `detokenize` gives a token's bytes as generated text,
    `piece` its text for log-probabilities.
    """

    def __init__(self, cpp: Any, model: Any, params: Any, *, n_seq: int, n_ctx_seq: int,
                 detokenize: Callable[[int], bytes], piece: Callable[[int], str],
                 name: str = "model") -> None:
        self._cpp = cpp
        self._detokenize = detokenize
        self._piece = piece
        params = type(params).from_buffer_copy(params)
        params.n_seq_max = n_seq
        params.n_ctx = n_ctx_seq * n_seq
        params.kv_unified = False  # each sequence its own KV stream: decoding stays O(own)
        self.n_batch = max(min(params.n_batch, params.n_ctx), n_seq)
        params.n_batch = self.n_batch
        params.n_ubatch = min(params.n_ubatch, self.n_batch)
        self._ctx = cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not make a context of {n_seq} sequences x "
                             f"{n_ctx_seq} tokens for '{name}' (out of memory?)")
        self.n_ctx_seq = int(cpp.llama_n_ctx_seq(self._ctx))
        self._memory = cpp.llama_get_memory(self._ctx)
        self._vocab = cpp.llama_model_get_vocab(model)
        self._n_vocab = int(cpp.llama_vocab_n_tokens(self._vocab))
        self._batch = cpp.llama_batch_init(self.n_batch, 0, 1)
        self._slots = [_Slot(seq) for seq in range(n_seq)]
        self._waiting: deque[_Job] = deque()
        self._active = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"feldspar-batch-{name}",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- callers' side ------------------------------------------------------------------

    def submit(self, tokens: list[int], options: GenerationOptions, max_tokens: int,
               grammar_text: str | None, logprobs_top: int | None) -> Request:
        """Queue a generation from the prompt `tokens`; the caller has checked that the
        prompt and `max_tokens` fit `n_ctx_seq`."""
        if not tokens:
            raise ModelError("An empty prompt cannot be generated from")
        request = Request(self)
        sampler = self._sampler(options, grammar_text)
        job = _Job(request, list(tokens), sampler, max_tokens, options.stop, logprobs_top)
        with self._cond:
            if self._closed:
                self._cpp.llama_sampler_free(sampler)
                raise ModelError("The model was closed; load it again")
            self._waiting.append(job)
            self._cond.notify_all()
        return request

    def _sampler(self, options: GenerationOptions, grammar_text: str | None) -> Any:
        """The sampler chain of Llama.generate with the options the single path uses:
        grammar, then greedy, or top-k 40, top-p, min-p 0.05, temperature and a seeded draw
        (repeat penalty 1 and typical-p 1 are no-ops there, so they are left out)."""
        cpp = self._cpp
        chain = cpp.llama_sampler_chain_init(cpp.llama_sampler_chain_default_params())
        if grammar_text is not None:
            grammar = cpp.llama_sampler_init_grammar(
                self._vocab, grammar_text.encode("utf-8"), b"root")
            if not grammar:
                cpp.llama_sampler_free(chain)
                raise ModelError("llama.cpp could not parse the output grammar")
            cpp.llama_sampler_chain_add(chain, grammar)
        if options.temperature == 0:
            cpp.llama_sampler_chain_add(chain, cpp.llama_sampler_init_greedy())
        else:
            seed = options.seed if options.seed is not None else random.getrandbits(32)
            for sampler in (cpp.llama_sampler_init_top_k(40),
                            cpp.llama_sampler_init_top_p(options.top_p, 1),
                            cpp.llama_sampler_init_min_p(0.05, 1),
                            cpp.llama_sampler_init_temp(options.temperature),
                            cpp.llama_sampler_init_dist(seed)):
                cpp.llama_sampler_chain_add(chain, sampler)
        return chain

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the scheduler and free the context once no request is waiting or running;
        False (and nothing freed) when still busy after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return True
            while (self._waiting or self._active) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._closed = self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        # The scheduler has returned: nobody decodes on the context any more.
        for slot in self._slots:
            slot.cached = []
        self._cpp.llama_batch_free(self._batch)
        self._cpp.llama_free(self._ctx)
        self._ctx = None
        return True

    # -- the scheduler thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._active:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                with self._cond:
                    self._admit()
                self._step()
            except Exception as exc:  # never end the thread: fail what runs, go on
                with self._cond:
                    self._fail_all(exc)

    def _admit(self) -> None:
        """Move waiting requests into free sequences (under the lock)."""
        while self._waiting:
            job = self._waiting[0]
            if job.request.cancelled:
                self._waiting.popleft()
                self._cpp.llama_sampler_free(job.sampler)
                continue
            free = [slot for slot in self._slots if slot.job is None]
            if not free:
                return
            self._waiting.popleft()
            # The sequence that already holds the longest prefix of this prompt; among
            # equals, the one holding least (so that longer caches stay for later).
            best = max(free, key=lambda s: (common_prefix(s.cached, job.tokens),
                                            -len(s.cached)))
            try:
                self._assign(best, job)
            except Exception as exc:  # this request fails, the others go on
                best.job = job
                self._active += 1
                self._fail(best, exc)

    def _assign(self, slot: _Slot, job: _Job) -> None:
        keep = min(common_prefix(slot.cached, job.tokens), len(job.tokens) - 1)
        if keep < len(slot.cached) and not self._cpp.llama_memory_seq_rm(
                self._memory, slot.seq, keep, -1):
            self._cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            keep = 0  # a cache that cannot cut a sequence short starts over
        slot.cached = slot.cached[:keep]
        job.pending = job.tokens[keep:]
        slot.job = job
        self._active += 1

    def _release(self, slot: _Slot, *, forget: bool = False) -> None:
        """Free `slot`'s job; with `forget`, its cache too (its state is unknown)."""
        job = slot.job
        if job is not None:
            self._cpp.llama_sampler_free(job.sampler)
            job.sampler = None
            slot.job = None
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
        if forget:
            self._cpp.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.cached = []

    def _fail(self, slot: _Slot, exc: BaseException) -> None:
        job = slot.job
        self._release(slot, forget=True)
        if job is not None:
            error = ModelError(f"llama.cpp failed while generating: {exc}")
            error.__cause__ = exc
            job.request.put(error)

    def _fail_all(self, exc: BaseException) -> None:
        """After an unexpected error: fail every running request and forget every cache."""
        for slot in self._slots:
            with contextlib.suppress(Exception):
                self._fail(slot, exc)

    def _step(self) -> None:
        for slot in self._slots:
            if slot.job is not None and slot.job.request.cancelled:
                self._release(slot)
        batched = self._fill_batch()
        if not batched:
            return
        rc = self._cpp.llama_decode(self._ctx, self._batch)
        if rc != 0:
            failure = RuntimeError(f"llama_decode returned {rc}")
            for slot in batched:
                self._fail(slot, failure)
            return
        for slot in batched:
            job = slot.job
            if job is not None and job.output >= 0:
                index, job.output = job.output, -1
                try:
                    self._sample(slot, job, index)
                except Exception as exc:
                    self._fail(slot, exc)

    def _fill_batch(self) -> list[_Slot]:
        """Put the next token of every generating sequence, then as much of the admitted
        prompts as fits, into the batch; the sequences it holds."""
        batch, n, batched = self._batch, 0, []
        for slot in self._slots:
            job = slot.job
            if job is not None and job.next_token is not None:
                self._add(n, job.next_token, len(slot.cached), slot.seq, True)
                slot.cached.append(job.next_token)
                job.next_token, job.output = None, n
                batched.append(slot)
                n += 1
        for slot in self._slots:
            job = slot.job
            if job is None or not job.pending or n >= self.n_batch:
                continue
            chunk = job.pending[: self.n_batch - n]
            job.pending = job.pending[len(chunk):]
            start = len(slot.cached)
            for i, token in enumerate(chunk):
                self._add(n, token, start + i, slot.seq, False)
                n += 1
            slot.cached.extend(chunk)
            batched.append(slot)
            if not job.pending:  # the prompt's last token gives the first logits
                batch.logits[n - 1] = 1
                job.output = n - 1
        batch.n_tokens = n
        return batched

    def _add(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _sample(self, slot: _Slot, job: _Job, index: int) -> None:
        cpp = self._cpp
        logprobs = None
        if job.logprobs_top is not None:
            row = cpp.llama_get_logits_ith(self._ctx, index)
            logprobs = log_softmax(np.ctypeslib.as_array(row, shape=(self._n_vocab,)))
        token = int(cpp.llama_sampler_sample(job.sampler, self._ctx, index))
        if cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(slot, job, "stop")
            return
        job.generated += 1
        entries: tuple[TokenLogprob, ...] = ()
        if logprobs is not None:
            entries = (token_logprob(logprobs, token, job.logprobs_top or 0, self._piece),)
        shown = job.stops.push(job.decoder.decode(self._detokenize(token)))
        job.request.put(Delta(text=shown, tokens=1, logprobs=entries))
        if job.stops.stopped:
            self._finish(slot, job, "stop")
        elif job.generated >= job.max_tokens:
            self._finish(slot, job, "length")
        else:
            job.next_token = token

    def _finish(self, slot: _Slot, job: _Job, reason: str) -> None:
        rest = job.stops.push(job.decoder.decode(b"", final=True)) + job.stops.flush()
        self._release(slot)  # free before the last piece: a finished request holds nothing
        job.request.put(Delta(text=rest, finish_reason=reason))
