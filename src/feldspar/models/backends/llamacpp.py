"""GGUF models in process through llama-cpp-python."""

from __future__ import annotations

import codecs
import contextlib
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from feldspar.config import Settings
from feldspar.datatypes import ChatDocument, Delta, Message, TokenLogprob
from feldspar.errors import ContextOverflow, ModelError, UserError
from feldspar.extras import require
from feldspar.models.backends.llamacpp_batch import BatchEngine, log_softmax, token_logprob
from feldspar.models.base import ChatModel, GenerationOptions
from feldspar.models.decoding import StopFilter
from feldspar.models.gguf import check_gguf
from feldspar.models.grammar import choices_grammar, schema_grammar
from feldspar.models.spec import ModelSpec
from feldspar.models.templates import CHATML, ChatTemplate, prompt_runs
from feldspar.models.weights import locate


class _LogprobRecorder:
    """A logits processor that remembers the log-softmax of the logits it is shown, so
    that log-probabilities come without llama.cpp's logits_all (a n_ctx x n_vocab array)."""

    def __init__(self, top: int, piece: Any) -> None:
        self.top = top
        self.piece = piece
        self.last: np.ndarray | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        self.last = log_softmax(scores)
        return scores

    def take(self, token: int) -> TokenLogprob:
        assert self.last is not None
        logprobs, self.last = self.last, None
        return token_logprob(logprobs, token, self.top, self.piece)


class LlamaCppChat(ChatModel):
    """Chat with a GGUF model; the model's own chat template renders in a sandbox.

    With settings.llama_parallel > 1, generations run through a `BatchEngine` that decodes
    up to that many sequences together; otherwise one at a time through `Llama.generate`.
    """

    _llama: Any
    _template: ChatTemplate
    _owner: int | None = None
    """The thread whose generation holds the model, if any."""
    _engine: BatchEngine | None = None

    def __init__(self, spec: ModelSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        self._gen_lock = threading.Lock()

    def _load(self) -> None:
        llama_cpp = require("llama_cpp", extra="llamacpp", purpose="GGUF models need llama.cpp")
        path = locate(self.spec)
        if path.is_dir():
            raise ModelError(f"{path} is a folder; a GGUF model is a single .gguf file")
        check_gguf(path)
        threads = self.settings.threads or os.cpu_count() or 1
        n_ctx = min(self.settings.context_length, self.spec.context_length)
        parallel = self.settings.llama_parallel
        try:
            self._llama = llama_cpp.Llama(
                model_path=str(path),
                # With a batch engine, Llama's own context only tokenizes: keep it small.
                n_ctx=n_ctx if parallel == 1 else min(n_ctx, 512),
                n_threads=threads,
                n_threads_batch=threads,
                flash_attn=self.settings.flash_attention,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp could not load {path}: the file is corrupt, truncated or of an "
                f"unsupported architecture ({exc}); re-download it"
            ) from exc
        self._llama_cpp = llama_cpp
        source = self._llama.metadata.get("tokenizer.chat_template") or CHATML
        self._template = ChatTemplate(
            source,
            name=self.spec.name,
            bos_token=self._piece(self._llama.token_bos()),
            eos_token=self._piece(self._llama.token_eos()),
        )
        self._template.check()
        self._specials = self._special_texts()
        if parallel > 1:
            self._start_engine(n_ctx, parallel)

    def _start_engine(self, n_ctx: int, parallel: int) -> None:
        """A batch engine on the weights just loaded, with a context of its own."""
        llama = self._llama
        try:
            self._engine = BatchEngine(
                self._llama_cpp, llama._model.model, llama.context_params,
                n_seq=parallel, n_ctx_seq=n_ctx,
                detokenize=lambda token: bytes(llama.detokenize([token])),
                piece=self._piece, name=self.spec.name)
        except ModelError:
            llama.close()
            raise

    def _special_texts(self) -> tuple[str, ...]:
        """The text of every control and user-defined token: what tokenizing with
        special=True turns into single tokens."""
        cpp, vocab = self._llama_cpp, self._llama._model.vocab
        wanted = cpp.LLAMA_TOKEN_ATTR_CONTROL | cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        return tuple(piece for token in range(cpp.llama_vocab_n_tokens(vocab))
                     if cpp.llama_vocab_get_attr(vocab, token) & wanted
                     and (piece := self._piece(token)))

    def close(self, wait: bool = True) -> None:
        # Never free the model under a running generation; give up rather than hang.
        if not self._gen_lock.acquire(timeout=10 if wait else 0):
            return
        try:
            with self._lock:
                if self._loaded:
                    # The engine stops once its requests are done; still busy, give up.
                    if self._engine is not None:
                        if not self._engine.close(timeout=10 if wait else 0):
                            return
                        self._engine = None
                    self._llama.close()
                    self._loaded = False
        finally:
            self._gen_lock.release()

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self._llama.detokenize([token], special=True)).decode("utf-8", "replace")

    def render(self, messages: list[Message]) -> str:
        """The prompt text that the model sees for `messages`."""
        self.load()
        return self._template.render(messages)

    def count_tokens(self, text: str) -> int:
        self.load()
        with self._lock:  # close() frees the model under the same lock
            if not self._loaded:
                raise ModelError(f"Model '{self.spec.name}' was closed")
            return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False,
                                            special=False))

    @property
    def takes_documents(self) -> bool:
        self.load()
        return self._template.takes_documents

    def _prompt_tokens(self, messages: list[Message],
                documents: Sequence[ChatDocument] = (),
                variables: Mapping[str, Any] | None = None) -> list[int]:
        tokenize = self._llama.tokenize
        tokens: list[int] = []
        for text, special in prompt_runs(self._template, messages, self._specials,
                                        documents, variables):
            # Special tokens come from the template's text only, never from messages.
            tokens += tokenize(text.encode("utf-8"), add_bos=False, special=special)
        bos = tokenize(b"", add_bos=True, special=False)  # [BOS] if the model wants one
        if bos and tokens[:1] != bos:
            tokens = bos + tokens
        return tokens

    @staticmethod
    def _grammar_text(options: GenerationOptions) -> str | None:
        if options.choices is not None:
            return choices_grammar(options.choices)
        if options.json_schema is not None:
            return schema_grammar(options.json_schema)
        return None

    def _grammar(self, options: GenerationOptions) -> Any:
        text = self._grammar_text(options)
        if text is None:
            return None
        return self._llama_cpp.LlamaGrammar.from_string(text, verbose=False)

    def _budget(self, tokens: list[int], n_ctx: int, options: GenerationOptions) -> int:
        """Most tokens to generate after `tokens`; ContextOverflow when they fill n_ctx."""
        if len(tokens) >= n_ctx:
            raise ContextOverflow(
                f"The prompt is {len(tokens)} tokens but '{self.spec.name}' has a context of "
                f"{n_ctx} (model maximum {self.spec.context_length}); shorten the prompt or "
                "raise context_length in feldspar.toml (FELDSPAR_CONTEXT_LENGTH)"
            )
        budget = n_ctx - len(tokens)
        return budget if options.max_tokens is None else min(options.max_tokens, budget)

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        if self.settings.llama_parallel > 1:
            yield from self._generate_batched(messages, options)
            return
        if self._owner == threading.get_ident():
            raise UserError(
                f"This thread is still reading a stream of '{self.spec.name}'; read it to "
                "the end or call its close() before starting another"
            )
        # One generation at a time per model: other threads wait here for their turn.
        with self._gen_lock:
            self._owner = threading.get_ident()
            try:
                self.load()  # close() may have freed the model while this request waited
                yield from self._generate(messages, options)
            finally:
                self._owner = None

    def _generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        tokens = self._prompt_tokens(messages, options.documents, options.template_vars)
        max_tokens = self._budget(tokens, self._llama.n_ctx(), options)
        grammar = self._grammar(options)
        recorder = None
        if options.logprobs is not None:
            recorder = _LogprobRecorder(options.logprobs, self._piece)
        yield Delta(prompt_tokens=len(tokens))
        yield from self._sample(tokens, options, max_tokens, grammar, recorder)

    def _generate_batched(self, messages: list[Message],
                          options: GenerationOptions) -> Iterator[Delta]:
        # Under the model lock, so that close() cannot free the model between the load and
        # the submission; the engine runs everything submitted before it stops.
        with self._lock:
            if not self._loaded:  # close() may have freed the model since stream() loaded it
                self._load()
                self._loaded = True
            engine = self._engine
            assert engine is not None
            tokens = self._prompt_tokens(messages, options.documents, options.template_vars)
            max_tokens = self._budget(tokens, engine.n_ctx_seq, options)
            request = engine.submit(tokens, options, max_tokens, self._grammar_text(options),
                                    options.logprobs)
        try:
            yield Delta(prompt_tokens=len(tokens))
            yield from request
        finally:
            request.cancel()  # a stream closed early frees its sequence at the next step

    def _sample(
        self,
        tokens: list[int],
        options: GenerationOptions,
        max_tokens: int,
        grammar: Any,
        recorder: _LogprobRecorder | None,
    ) -> Iterator[Delta]:
        llama = self._llama
        vocab = llama._model.vocab
        is_eog = self._llama_cpp.llama_vocab_is_eog
        llama.set_seed(options.seed if options.seed is not None else random.getrandbits(32))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopFilter(options.stop)
        generated, finish = 0, "length"
        processors = None
        if recorder is not None:
            processors = self._llama_cpp.LogitsProcessorList([recorder])
        tokens_out = llama.generate(
            tokens,
            top_k=40,
            top_p=options.top_p,
            min_p=0.05,
            temp=options.temperature,
            repeat_penalty=1.0,
            grammar=grammar,
            logits_processor=processors,
        )
        with contextlib.closing(tokens_out):
            for token in tokens_out:
                # The thread reading the stream now; a stream may move between the workers
                # of a pool, and only its current reader would wait on itself.
                self._owner = threading.get_ident()
                if is_eog(vocab, token):
                    finish = "stop"
                    break
                generated += 1
                logprobs = (recorder.take(token),) if recorder is not None else ()
                shown = stops.push(decoder.decode(llama.detokenize([token])))
                yield Delta(text=shown, tokens=1, logprobs=logprobs)
                if stops.stopped:
                    finish = "stop"
                    break
                if generated >= max_tokens:
                    break
        yield Delta(text=stops.push(decoder.decode(b"", final=True)) + stops.flush(),
                    finish_reason=finish)
