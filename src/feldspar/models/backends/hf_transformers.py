"""Hugging Face safetensors models through transformers: chat and embeddings."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feldspar.datatypes import ChatDocument, Delta, Message, TokenLogprob
from feldspar.errors import ContextOverflow, ModelError, UnsupportedOption
from feldspar.extras import require
from feldspar.models.base import ChatModel, Embedder, GenerationOptions
from feldspar.models.decoding import StopFilter
from feldspar.models.templates import CHATML, ChatTemplate, prompt_runs
from feldspar.models.weights import locate


def load_pretrained(model: ChatModel | Embedder, auto_class: str) -> tuple[Any, Any, Any]:
    """(torch, tokenizer, model) for a spec's safetensors folder, never touching the Hub."""
    torch = prepare_torch(model.settings.threads)
    transformers = require("transformers", extra="transformers")
    path = safe_folder(locate(model.spec))
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        network = getattr(transformers, auto_class).from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"transformers could not load {path}: {exc}") from exc
    network.eval()
    return torch, tokenizer, network


PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def safe_folder(path: Path) -> Path:
    """`path` if it is a model folder whose weights are all safetensors.

    A folder (or a sentence-transformers module folder inside it) whose weights exist only
    as pickles is refused: loading them would run arbitrary code.
    """
    if not path.is_dir() or not (path / "config.json").exists():
        raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{path} has no .safetensors weights; Feldspar does not load pickles")
    for pattern in PICKLES:
        for pickle in path.rglob(pattern):
            if not any(pickle.parent.glob("*.safetensors")):
                raise ModelError(f"{pickle} holds pickled weights with no safetensors "
                                 "beside them; Feldspar does not load pickles")
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
        self._specials = tuple(t.content for t in tok.added_tokens_decoder.values() if t.special)
        eos = self._model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self._eos = {int(e) for e in eos if e is not None} | (
            {int(tok.eos_token_id)} if tok.eos_token_id is not None else set())

    @property
    def takes_documents(self) -> bool:
        self.load()
        return self._template.takes_documents

    def count_tokens(self, text: str) -> int:
        self.load()
        return len(self._tokenizer(text, add_special_tokens=False,
                                   split_special_tokens=True).input_ids)

    def _prompt_ids(self, messages: list[Message],
                documents: Sequence[ChatDocument] = (),
                variables: Mapping[str, Any] | None = None) -> list[int]:
        tok = self._tokenizer
        ids: list[int] = []
        for text, special in prompt_runs(self._template, messages, self._specials,
                                        documents, variables):
            # Special tokens come from the template's text only, never from messages.
            ids += [tok.convert_tokens_to_ids(text)] if special else tok(
                text, add_special_tokens=False, split_special_tokens=True).input_ids
        return ids

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        if options.json_schema is not None:
            raise UnsupportedOption(
                "The transformers backend cannot constrain output to a JSON schema; use a "
                "GGUF model (llamacpp) or an OpenAI-compatible server")
        torch = self._torch
        prompt = self._prompt_ids(messages, options.documents, options.template_vars)
        limit = min(self.spec.context_length, self.settings.context_length)
        if len(prompt) >= limit:
            raise ContextOverflow(
                f"The prompt is {len(prompt)} tokens but the context is {limit}; shorten it")
        budget = limit - len(prompt)
        max_tokens = budget if options.max_tokens is None else min(options.max_tokens, budget)
        choices = None
        if options.choices is not None:
            choices = [self._tokenizer(c, add_special_tokens=False).input_ids
                       for c in options.choices]
        generator = torch.Generator()
        if options.seed is not None:
            generator.manual_seed(options.seed)
        else:
            generator.seed()
        yield Delta(prompt_tokens=len(prompt))
        stops = StopFilter(options.stop)
        produced: list[int] = []
        sent = ""  # the decoded text already passed on
        finish, past, step_ids = "length", None, torch.tensor([prompt])
        with torch.inference_mode():
            while len(produced) < max_tokens:
                out = self._model(input_ids=step_ids, use_cache=True,
                                  **{self._cache_arg: past})
                past = getattr(out, self._cache_arg, None) or out.past_key_values
                logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                allowed = self._allowed(choices, produced)
                if allowed is not None and not allowed:  # a whole choice, and no EOS token
                    finish = "stop"
                    break
                token = self._pick(logprobs, options, generator, allowed)
                if token in self._eos:
                    finish = "stop"
                    break
                produced.append(token)
                lp = (self._logprob(logprobs, token, options.logprobs),) \
                    if options.logprobs is not None else ()
                # Decode the whole reply and pass on what is new: a character split over
                # tokens shows as U+FFFD until its last byte arrives, so hold it back.
                text = self._tokenizer.decode(produced, skip_special_tokens=True)
                piece = "" if text.endswith("\ufffd") else text[len(sent):]
                sent += piece
                yield Delta(text=stops.push(piece), tokens=1, logprobs=lp)
                if stops.stopped:
                    finish = "stop"
                    break
                step_ids = torch.tensor([[token]])
        tail = self._tokenizer.decode(produced, skip_special_tokens=True)[len(sent):]
        yield Delta(text=stops.push(tail) + stops.flush(), finish_reason=finish)

    def _allowed(self, choices: list[list[int]] | None, produced: list[int]) -> set[int] | None:
        """Tokens that keep the output on the way to one of the choices (None: free), and
        end-of-text once the output is a whole choice."""
        if choices is None:
            return None
        n = len(produced)
        allowed = {c[n] for c in choices if len(c) > n and c[:n] == produced}
        if produced in choices:
            allowed |= self._eos
        return allowed

    def _pick(self, logprobs: Any, options: GenerationOptions, generator: Any,
              allowed: set[int] | None) -> int:
        torch = self._torch
        scores = logprobs.clone()
        if allowed is not None:
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
