"""GuardClassifier: fast, calibrated scores for harm, jailbreak and prompt injection.

A text is cut into windows of at most 254 tokens (the packaged MiniLM's limit) that overlap
by 64 and, when it is longer than 48 tokens, also into sentences, which only the harm head
reads (a harmful sentence in a long text fills a sentence, not a window). It is read in
blocks of 32k characters, so memory stays bounded whatever its length. A text scores what
its most risky window scores; an empty text scores 0.

Each window goes through two stages (bench/train_guard.py trains both;
docs/guard-classifier.md gives the data and the figures):

1. Fast (about a millisecond for a prompt): static token embeddings distilled from
   all-MiniLM-L6-v2 (each vocabulary token run through the model alone, then Zipf-weighted:
   the model2vec idea) plus hashed word and character n-grams, under one logistic head per
   risk. The static part is linear, so the weights file keeps each token's head score and
   a small int8 table for the length of a window's vector, not the 384-d table.
2. Escalation (off in the packaged weights: on the test data it raised false positives
   more than it raised recall): a long-scale window of at most 128 tokens (a short text,
   or the tail of a long one) whose fast score lies in the weights' uncertain band for
   harm or jailbreak is embedded by the packaged MiniLM (about 10 ms) and scored by a
   second head on that embedding and the fast logits. The embedder is loaded on the
   first escalation.

Both stages end in a Platt scaling fitted on cross-validated training scores of whole
texts, so that scores are probabilities in [0, 1].

Example:
    >>> from feldspar.guard.classifier import GuardClassifier
    >>> scores = GuardClassifier.load().score(["Summarise this email for me.", ""])
    >>> scores.shape, float(scores[1].max())
    ((2, 3), 0.0)
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feldspar.errors import ModelError, UserError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from feldspar.config import Settings
    from feldspar.models.base import Embedder

FORMAT = "feldspar-guard-classifier/1"
WEIGHTS = Path(__file__).with_name("classifier_weights.npz")
EMBEDDER = "all-minilm-l6-v2"
"""The heads were trained on this model's tokens and embeddings, whatever
settings.embed_model says."""
RISKS = ("harm", "jailbreak", "prompt_injection")
HEADS = (*RISKS, "instruction")
"""The fast linear heads: one per risk, and one that scores a sentence of a document for
reading like an order to an assistant. A window's injection score adds its highest
sentence score: alone, "Reply in French" is a fine request; inside an email, it is not."""
BLOCK_CHARS = 32_768
"""Characters tokenized at a time: bounds the memory a long text takes."""
CHUNK = 64
"""Escalated windows embedded together."""

_MASK = np.uint64(0xFFFFFFFF)
_PRIME = np.uint64(1_000_003)
_GOLDEN = np.uint64(2_654_435_761)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FeatureConfig:
    """How texts become features; stored in the weights file and checked on load."""

    window_tokens: int = 254
    overlap_tokens: int = 64
    short_tokens: int = 48
    """Texts longer than this are also read sentence by sentence (a sentence of more
    tokens in windows of this size), so that one harmful sentence among pages of other
    text is not drowned in its window."""
    short_overlap: int = 24
    hash_bits: int = 18
    word_ngrams: tuple[int, ...] = (1, 2)
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    static_weight: float = 1.0
    word_weight: float = 1.0
    char_weight: float = 1.0
    escalate_max_tokens: int = 128
    """Longer windows are never escalated: MiniLM's cost grows with length, and its gain
    is on short, ambiguous requests."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        config = cls(**fields)
        if not (0 <= config.overlap_tokens < config.window_tokens
                and 0 <= config.short_overlap < config.short_tokens <= config.window_tokens
                and 8 <= config.hash_bits <= 24):
            raise ValueError("window sizes, overlaps or hash_bits out of range")
        return config


LONG, SHORT = 0, 1
"""The two scales of window."""
SHORT_RISKS = ("harm",)
"""The risks that sentences score. A jailbreak is a whole template (one sentence of it is
often harmless), and an injected order is one only in its context: alone, "Reply in
French" is a fine request."""


def pieces(text: str, tokenizer: Tokenizer, config: FeatureConfig
           ) -> Iterator[tuple[int, int, np.ndarray, int]]:
    """(start, end, token ids, scale) of every window of `text` that is scored: the long
    windows, then the short ones (for SHORT_RISKS) when the text does not fit in one."""
    fits = True
    for n, (start, end, ids) in enumerate(windows(text, tokenizer, config.window_tokens,
                                                  config.overlap_tokens)):
        fits = n == 0 and len(ids) <= config.short_tokens
        yield start, end, ids, LONG
    if not fits:
        for start, end, ids in sentences(text, tokenizer, config.short_tokens,
                                         config.short_overlap):
            yield start, end, ids, SHORT


_ENDS = frozenset(".!?")


def sentences(text: str, tokenizer: Tokenizer, size: int, overlap: int
              ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, token ids) of each sentence of `text` (ended by . ! ? or a line
    break), a sentence longer than `size` tokens cut into windows of `size` that overlap
    by `overlap`. Read a block at a time, as `windows` does."""
    pos = 0
    while pos < len(text):
        base, end = pos, _block_end(text, pos)
        block = text[base:end]
        encoding = _encode(tokenizer, block)
        ids, offsets = np.asarray(encoding.ids, dtype=np.int64), encoding.offsets
        cuts = [i + 1 for i in range(len(ids) - 1)
                if block[offsets[i][0]:offsets[i][1]] in _ENDS
                or "\n" in block[offsets[i][1]:offsets[i + 1][0]]]
        runs = list(zip([0, *cuts], [*cuts, len(ids)], strict=True)) if len(ids) else []
        # The last sentence of a block may go on in the next one: it starts that block.
        pos = base + offsets[runs.pop()[0]][0] if end < len(text) and len(runs) > 1 else end
        for a, b in runs:
            for i in range(a, b, size - overlap):
                j = min(b, i + size)
                yield base + offsets[i][0], base + offsets[j - 1][1], ids[i:j]
                if j == b:
                    break


_last = threading.local()


def _encode(tokenizer: Tokenizer, block: str) -> Any:
    """The tokenizer's encoding of `block`, remembered per thread for the next call:
    `windows` and `sentences` read the same blocks of a short text."""
    remembered = getattr(_last, "encoding", None)
    if remembered is not None and remembered[0] is tokenizer and remembered[1] == block:
        return remembered[2]
    encoding = tokenizer.encode(block, add_special_tokens=False)
    _last.encoding = (tokenizer, block, encoding)
    return encoding


def _block_end(text: str, pos: int) -> int:
    """Where the block that starts at `pos` ends: BLOCK_CHARS on, at a space if one is
    in its second half (so that no word is split between blocks), or the end of text."""
    end = min(len(text), pos + BLOCK_CHARS)
    if end < len(text):
        space = text.rfind(" ", pos + BLOCK_CHARS // 2, end)
        end = space if space > 0 else end
    return end


def windows(text: str, tokenizer: Tokenizer, size: int, overlap: int
            ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, end, token ids) of each window of `text`; character offsets into `text`.

    Windows hold `size` tokens (fewer for the last) and start every `size - overlap`
    tokens. The text is tokenized a block of BLOCK_CHARS characters at a time, each block
    starting where the next window starts, so that memory stays bounded.
    """
    step = size - overlap
    pos = 0
    while pos < len(text):
        end = _block_end(text, pos)
        encoding = _encode(tokenizer, text[pos:end])
        ids = np.asarray(encoding.ids, dtype=np.int64)
        offsets = encoding.offsets
        last = end >= len(text)
        i = 0
        while i < len(ids):
            j = min(len(ids), i + size)
            if j == len(ids) and i > 0 and not last:
                break  # this window starts the next block, with the text that follows
            yield pos + offsets[i][0], pos + offsets[j - 1][1], ids[i:j]
            i = len(ids) if j == len(ids) else i + step
        if last:
            return
        pos += offsets[i][0] if i < len(ids) else end - pos


def _mix(h: np.ndarray, bits: int) -> np.ndarray:
    """Spread a 32-bit hash over 2**bits buckets (Knuth's multiplicative hashing)."""
    mixed: np.ndarray = ((h * _GOLDEN) & _MASK) >> np.uint64(32 - bits)
    return mixed


def _grams(codes: np.ndarray, sizes: tuple[int, ...], salt: int) -> np.ndarray:
    """32-bit polynomial hashes of every run of n codes, for each n in `sizes` (the hash
    of a run of n + 1 extends that of its first n)."""
    hashed = [np.zeros(0, np.uint64)]
    h = np.full(len(codes), salt, dtype=np.uint64)
    for n in range(1, max(sizes) + 1):
        if len(codes) < n:
            break
        h = (h[: len(codes) - n + 1] * _PRIME + codes[n - 1:]) & _MASK
        if n in sizes:
            hashed.append(h)
    return np.concatenate(hashed)


def ngram_features(text: str, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """The hashed n-grams of `text` as (bucket indices, values): word n-grams and
    character n-grams (of the lower-cased text, spaces collapsed), each group
    L2-normalised and scaled by its weight in `config`.

    Indices may repeat (the groups share the buckets); a dot product adds them up.
    """
    normal = " ".join(text.lower().split())
    words = np.array([zlib.crc32(w.encode()) for w in _WORD.findall(normal)], dtype=np.uint64)
    chars = np.frombuffer(f" {normal} ".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    word_grams = _grams(words, config.word_ngrams, 0)
    size = 1 << config.hash_bits
    buckets = _mix(np.concatenate([word_grams, _grams(chars, config.char_ngrams, 100)]),
                   config.hash_bits).astype(np.int64)
    buckets[len(word_grams):] += size  # one np.unique for both groups, kept apart
    found, counts = np.unique(buckets, return_counts=True)
    char = found >= size
    squares = counts.astype(np.float64) ** 2
    scale = np.where(char, config.char_weight / np.sqrt(max(squares[char].sum(), 1.0)),
                     config.word_weight / np.sqrt(max(squares[~char].sum(), 1.0)))
    return found & (size - 1), counts * scale


@dataclass(frozen=True)
class GuardWeights:
    """The arrays of a trained classifier (bench/train_guard.py writes them)."""

    config: FeatureConfig
    token_scores: np.ndarray
    """(vocabulary, heads): each token's Zipf-weighted static vector times the fast heads'
    static coefficients; a window's static logit is their sum over its tokens divided by
    the length of its static vector."""
    norm_table: np.ndarray
    """(vocabulary, k) int8: each token's weighted static vector in a k-d PCA basis."""
    norm_scale: np.ndarray
    """(vocabulary,): the scale of each row of norm_table."""
    ngram_weights: np.ndarray
    """(2**hash_bits, heads): the fast heads' n-gram coefficients."""
    fast_bias: np.ndarray
    """(heads,)."""
    instruction_coef: np.ndarray
    """(risks,): the weight of a long window's highest sentence "instruction" logit in
    each risk's logit (only prompt injection uses it)."""
    fast_platt: np.ndarray
    """(risks, 2): probability = sigmoid(a * logit + b)."""
    band: np.ndarray
    """(risks, 2): a window whose fast probability for a risk lies in [low, high] is
    escalated to the MiniLM head; an empty band (low > high) escalates nothing."""
    slow_coef: np.ndarray
    """(384 + risks, risks): the escalation head on [MiniLM embedding, fast logits]."""
    slow_bias: np.ndarray
    slow_platt: np.ndarray
    info: dict[str, Any]
    """Training provenance: datasets, row counts, split rule, date, embedder, figures."""

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> GuardWeights:
        """Read and check a weights file; it holds arrays only (no pickle)."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"Cannot read the guard classifier weights {path}: {exc}; "
                             "retrain with bench/train_guard.py") from exc
        try:
            if meta.get("format") != FORMAT or tuple(meta.get("risks", ())) != RISKS:
                raise ValueError(f"format is not {FORMAT!r} with risks {RISKS}")
            weights = cls(FeatureConfig.from_dict(meta["features"]),
                          **{k: arrays[k].astype(np.float32 if k != "norm_table" else np.int8)
                             for k in _ARRAYS}, info=meta.get("training", {}))
            weights.check()
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"Invalid guard classifier weights in {path}: {exc}; "
                             "retrain with bench/train_guard.py") from exc
        return weights

    def check(self) -> None:
        n, h, vocab = len(RISKS), len(HEADS), len(self.token_scores)
        shapes = {"token_scores": (vocab, h), "norm_table": (vocab, self.norm_table.shape[1]),
                  "norm_scale": (vocab,), "ngram_weights": (1 << self.config.hash_bits, h),
                  "fast_bias": (h,), "instruction_coef": (n,), "fast_platt": (n, 2),
                  "band": (n, 2),
                  "slow_coef": (self.slow_coef.shape[0], n), "slow_bias": (n,),
                  "slow_platt": (n, 2)}
        for name, shape in shapes.items():
            array = getattr(self, name)
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, not {shape}")
            if name != "norm_table" and not np.isfinite(array).all():
                raise ValueError(f"{name} holds a number that is not finite")

    def save(self, path: Path) -> None:
        """Write the arrays and the metadata (as UTF-8 bytes) to an .npz file."""
        from dataclasses import asdict

        meta = {"format": FORMAT, "risks": list(RISKS), "features": asdict(self.config),
                "training": self.info}
        raw = json.dumps(meta, indent=1).encode("utf-8")
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        arrays["token_scores"] = arrays["token_scores"].astype(np.float32)
        arrays["ngram_weights"] = arrays["ngram_weights"].astype(np.float16)
        np.savez_compressed(path, meta=np.frombuffer(raw, dtype=np.uint8), **arrays)


_ARRAYS = ("token_scores", "norm_table", "norm_scale", "ngram_weights", "fast_bias",
           "instruction_coef",
           "fast_platt", "band", "slow_coef", "slow_bias", "slow_platt")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))
    return out


class GuardClassifier:
    """Scores texts for harm, jailbreak and prompt injection; safe to share between
    threads (the tokenizer, numpy and onnxruntime sessions are)."""

    risks: tuple[str, ...] = RISKS

    def __init__(self, weights: GuardWeights, tokenizer: Tokenizer,
                 settings: Settings | None = None) -> None:
        self.weights = weights
        self.tokenizer = tokenizer
        self.settings = settings
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()
        self._escalated = 0

    @classmethod
    def load(cls, settings: Settings | None = None, path: Path = WEIGHTS) -> GuardClassifier:
        """The packaged classifier, with the tokenizer of the packaged MiniLM; the MiniLM
        itself is loaded on the first escalation."""
        from feldspar.config import load_settings
        from feldspar.extras import require
        from feldspar.models.backends.hf_transformers import safe_folder
        from feldspar.models.lookup import find_spec
        from feldspar.models.weights import locate

        settings = settings or load_settings()
        weights = GuardWeights.load(path)
        folder = safe_folder(locate(find_spec(EMBEDDER, settings)))
        tokenizers = require("tokenizers", extra="embed")
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        if tokenizer.get_vocab_size() != len(weights.token_scores):
            raise ModelError(f"The guard classifier was trained on a vocabulary of "
                             f"{len(weights.token_scores)} tokens, but {folder} has "
                             f"{tokenizer.get_vocab_size()}; retrain with bench/train_guard.py")
        return cls(weights, tokenizer, settings)

    @property
    def escalated(self) -> int:
        """How many windows went to the MiniLM head so far (for benchmarks)."""
        return self._escalated

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), len(risks)): each text's most
        risky window; 0 for a text without tokens."""
        if isinstance(texts, str):
            raise UserError("score() takes a list of texts, not one string")
        w = self.weights
        out = np.zeros((len(texts), len(self.risks)))
        counted = np.ones((2, len(RISKS)), dtype=bool)  # the risks each scale scores
        counted[SHORT] = [risk in SHORT_RISKS for risk in RISKS]
        unsure: list[tuple[int, str, np.ndarray]] = []
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"Text {row} is a {type(text).__name__}, not a string")
            for window, ids, scale, logits in self.fast(text):
                probs = _sigmoid(logits * w.fast_platt[:, 0] + w.fast_platt[:, 1])
                # Only a short text, or the tail of a long one, may go to MiniLM.
                if (scale == LONG and len(ids) <= w.config.escalate_max_tokens
                        and ((probs >= w.band[:, 0]) & (probs <= w.band[:, 1])).any()):
                    unsure.append((row, window, logits))
                    if len(unsure) >= CHUNK:
                        self._escalate(unsure, out)
                        unsure = []
                else:
                    np.maximum(out[row], np.where(counted[scale], probs, 0.0), out=out[row])
        if unsure:
            self._escalate(unsure, out)
        return out

    def fast(self, text: str) -> Iterator[tuple[str, np.ndarray, int, np.ndarray]]:
        """(window text, token ids, scale, fast logits per risk) of each window of `text`,
        as `pieces` lists them. A long window's injection logit adds its highest sentence
        "instruction" logit; each sentence is scored once, whatever windows it is in."""
        w, n = self.weights, len(RISKS)
        config = w.config
        found = sentences(text, self.tokenizer, config.short_tokens, config.short_overlap)
        upcoming = next(found, None)
        recent: deque[tuple[int, int, float]] = deque()  # (start, end, instruction logit)
        fits: bool | None = None
        for start, end, ids in windows(text, self.tokenizer, config.window_tokens,
                                       config.overlap_tokens):
            if fits is None:  # only a first window can be short: the text is one window
                fits = len(ids) <= config.short_tokens
            raw = self.linear(text[start:end], ids)
            while upcoming is not None and upcoming[0] < end:
                a, b, tokens = upcoming
                scores = self.linear(text[a:b], tokens)
                recent.append((a, b, float(scores[n])))
                if not fits:
                    yield text[a:b], tokens, SHORT, scores[:n]
                upcoming = next(found, None)
            while recent and recent[0][0] < start:
                recent.popleft()
            inside = [score for a, b, score in recent if b <= end]
            yield text[start:end], ids, LONG, raw[:n] + w.instruction_coef * max(
                inside, default=float(raw[n]))

    def linear(self, text: str, tokens: np.ndarray) -> np.ndarray:
        """The fast heads' raw scores (one per HEADS) of one piece of text."""
        w = self.weights
        out = w.fast_bias.astype(np.float64)
        vector = (w.norm_table[tokens].astype(np.float32) * w.norm_scale[tokens, None]).sum(0)
        length = float(np.sqrt(np.dot(vector, vector)))
        if length > 0:
            out = out + w.token_scores[tokens].sum(0) / length
        index, values = ngram_features(text, w.config)
        result: np.ndarray = out + values @ w.ngram_weights[index]
        return result

    def _escalate(self, unsure: list[tuple[int, str, np.ndarray]], out: np.ndarray) -> None:
        w = self.weights
        vectors = self._minilm().embed([window for _, window, _ in unsure])
        logits = np.vstack([fast for _, _, fast in unsure])
        slow = np.hstack([vectors, logits]) @ w.slow_coef + w.slow_bias
        probs = _sigmoid(slow * w.slow_platt[:, 0] + w.slow_platt[:, 1])
        for (row, _, _), p in zip(unsure, probs, strict=True):
            np.maximum(out[row], p, out=out[row])
        with self._lock:
            self._escalated += len(unsure)

    def _minilm(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from feldspar.models.loading import get_embedder

                self._embedder = get_embedder(EMBEDDER, settings=self.settings)
            return self._embedder
