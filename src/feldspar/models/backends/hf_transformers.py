"""Hugging Face safetensors models through transformers: chat and embeddings."""

from __future__ import annotations

import codecs
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from feldspar.datatypes import Delta, Message, TokenLogprob
from feldspar.errors import ContextOverflow, ModelError, UnsupportedOption
from feldspar.extras import require
from feldspar.models.base import ChatModel, Embedder, GenerationOptions
from feldspar.models.decoding import split_stop
from feldspar.models.templates import CHATML, ChatTemplate
from feldspar.models.weights import locate


def load_pretrained(model: ChatModel | Embedder, auto_class: str) -> tuple[Any, Any, Any]:
    """(torch, tokenizer, model) for a spec's safetensors folder, never touching the Hub."""
    torch = prepare_torch(model.settings.threads)
    transformers = require("transformers", extra="transformers")
    path = _folder(locate(model.spec))
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        network = getattr(transformers, auto_class).from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"transformers could not load {path}: {exc}") from exc
    network.eval()
    return torch, tokenizer, network


def _folder(path: Path) -> Path:
    if not path.is_dir() or not (path / "config.json").exists():
        raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
    if not any(path.glob("*.safetensors")):
        # Only safetensors: a pytorch_model.bin would be unpickled, which Feldspar never does.
        raise ModelError(f"{path} has no .safetensors weights; Feldspar does not load pickles")
    return path


def prepare_torch(threads: int | None) -> Any:
    """Import torch with the thread count set and transformers' progress bars off (a
    library call should not draw on the user's terminal)."""
    torch = require("torch", extra="transformers")
    transformers = require("transformers", extra="transformers")
    transformers.logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    return torch


class TransformersChat(ChatModel):
    """A causal language model from a folder of safetensors, decoded token by token."""

    _model: Any
    _tokenizer: Any
    _torch: Any

    def _load(self) -> None:
        self._torch, self._tokenizer, self._model = load_pretrained(self, "AutoModelForCausalLM")
        # transformers 5 renamed past_key_values to cache; accept either release line.
        params = inspect.signature(self._model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        tok = self._tokenizer
        self._template = ChatTemplate(
            tok.chat_template or CHATML, name=self.spec.name,
            bos_token=tok.bos_token or "", eos_token=tok.eos_token or "")
        self._template.check()
        eos = self._model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in eos if e is not None} | (
            {int(tok.eos_token_id)} if tok.eos_token_id is not None else set())

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        if options.json_schema is not None:
            raise UnsupportedOption(
                "The transformers backend cannot constrain output to a JSON schema; use a "
                "GGUF model (llamacpp) or an OpenAI-compatible server")
        torch = self._torch
        prompt = self._template.render(messages)
        ids = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        limit = min(self.spec.context_length, self.settings.context_length)
        if ids.shape[1] >= limit:
            raise ContextOverflow(
                f"The prompt is {ids.shape[1]} tokens but the context is {limit}; shorten it")
        budget = limit - ids.shape[1]
        max_tokens = budget if options.max_tokens is None else min(options.max_tokens, budget)
        choices = None
        if options.choices is not None:
            choices = [self._tokenizer(c, add_special_tokens=False).input_ids
                       for c in options.choices]
        generator = torch.Generator()
        if options.seed is not None:
            generator.manual_seed(options.seed)
        yield Delta(prompt_tokens=int(ids.shape[1]))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced: list[int] = []
        held, finish, stopped, past, step_ids = "", "length", False, None, ids
        with torch.inference_mode():
            while len(produced) < max_tokens:
                out = self._model(input_ids=step_ids, use_cache=True,
                                  **{self._cache_arg: past})
                past = getattr(out, self._cache_arg, None) or out.past_key_values
                logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                allowed = _allowed(choices, produced)
                token = self._pick(logprobs, options, generator, allowed)
                if token in self._eos or (allowed is not None and not allowed):
                    finish = "stop"
                    break
                produced.append(token)
                lp = (self._logprob(logprobs, token, options.logprobs),) \
                    if options.logprobs is not None else ()
                piece = self._tokenizer.convert_tokens_to_string(
                    self._tokenizer.convert_ids_to_tokens([token]))
                shown, held, stopped = split_stop(held + decoder.decode(piece.encode()),
                                                  options.stop)
                yield Delta(text=shown, tokens=1, logprobs=lp)
                if stopped or (choices is not None and not _allowed(choices, produced)):
                    finish = "stop"
                    break
                step_ids = torch.tensor([[token]])
        yield Delta(text="" if stopped else held + decoder.decode(b"", final=True),
                    finish_reason=finish)

    def _pick(self, logprobs: Any, options: GenerationOptions, generator: Any,
              allowed: set[int] | None) -> int:
        torch = self._torch
        scores = logprobs.clone()
        if allowed is not None:
            if not allowed:
                return -1
            mask = torch.full_like(scores, float("-inf"))
            mask[list(allowed)] = 0.0
            scores = scores + mask
        if options.temperature == 0:
            return int(torch.argmax(scores))
        probs = torch.softmax(scores / options.temperature, dim=-1)
        ordered, index = torch.sort(probs, descending=True)
        keep = torch.cumsum(ordered, dim=-1) - ordered < options.top_p
        ordered = ordered * keep
        choice = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
        return int(index[choice])

    def _logprob(self, logprobs: Any, token: int, top: int) -> TokenLogprob:
        piece = self._tokenizer.decode
        alternatives: tuple[tuple[str, float], ...] = ()
        if top:
            values, index = self._torch.topk(logprobs, top)
            alternatives = tuple((piece([int(i)]), float(v)) for v, i in zip(values, index,
                                                                            strict=True))
        return TokenLogprob(piece([token]), float(logprobs[token]), alternatives)


def _allowed(choices: list[list[int]] | None, produced: list[int]) -> set[int] | None:
    """Tokens that keep the output on the way to one of the choices (None: no constraint)."""
    if choices is None:
        return None
    n = len(produced)
    return {c[n] for c in choices if len(c) > n and c[:n] == produced}


class TransformersEmbedder(Embedder):
    """Mean-pooled embeddings from any encoder in a folder of safetensors."""

    _model: Any
    _tokenizer: Any
    _torch: Any

    def _load(self) -> None:
        self._torch, self._tokenizer, self._model = load_pretrained(self, "AutoModel")

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        limit = min(self.spec.context_length, self._tokenizer.model_max_length)
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=limit,
                                return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return np.asarray(pooled.numpy(), dtype=np.float32)
