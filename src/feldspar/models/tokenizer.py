"""A model folder's fast tokenizer (tokenizer.json), shared by the embedding backends.

Chunking measures its token budget with the embedder's own tokenizer, and the ONNX
backend tokenizes with it too; both read the folder here, without torch or transformers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feldspar.models.base import Embedder

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Tokenizer configs write "no limit" as a huge number (int(1e30)); only smaller ones count.
_NO_LIMIT = 1_000_000


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when the file is missing."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def position_offset(config: dict[str, Any]) -> int:
    """Where position ids start: RoBERTa-family models count from padding_idx + 1.

    Example:
        >>> position_offset({"model_type": "roberta", "pad_token_id": 1})
        2
    """
    if config.get("model_type") in ("roberta", "xlm-roberta"):
        return int(config.get("pad_token_id", 1)) + 1
    return 0


def max_seq_length(folder: Path) -> int:
    """Most tokens one input may have, special tokens included.

    As sentence-transformers decides it: sentence_bert_config.json's max_seq_length, else
    the smaller of the model's positions and the tokenizer's model_max_length.
    """
    config = read_json(folder / "config.json")
    limits = [int(config.get("max_position_embeddings", 512)) - position_offset(config)]
    configured = read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if configured:  # never past the model's positions, which would fail at run time
        return min(int(configured), limits[0])
    tokenizer_max = read_json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(tokenizer_max, int | float) and 0 < tokenizer_max < _NO_LIMIT:
        limits.append(int(tokenizer_max))
    return min(limits)


class TextTokenizer:
    """A folder's fast tokenizer: token spans for chunking, token ids for a model.

    Holds two copies of the tokenizer, configured once: one that counts (no truncation,
    no padding, which tokenizer.json files often set) and one that truncates for the model.
    """

    def __init__(self, folder: Path, tokenizer: Tokenizer) -> None:
        self.max_length = max_seq_length(folder)
        self._counter = tokenizer
        self._counter.no_truncation()
        self._counter.no_padding()
        specials = self._counter.num_special_tokens_to_add(is_pair=False)
        self.max_tokens = max(1, self.max_length - specials)
        """Most tokens of text one input can hold before truncation (specials excluded)."""
        self._truncator = type(tokenizer).from_str(tokenizer.to_str())
        self._truncator.enable_truncation(self.max_length)
        # Counting a request's tokens, then embedding it, tokenizes each text once.
        self._cached = functools.lru_cache(maxsize=1024)(self._ids)

    @classmethod
    def load(cls, folder: Path) -> TextTokenizer | None:
        """The tokenizer of `folder`, or None when it has no tokenizer.json."""
        path = folder / "tokenizer.json"
        if not path.is_file():
            return None
        from feldspar.extras import require

        tokenizers = require("tokenizers", extra="embed")
        return cls(folder, tokenizers.Tokenizer.from_file(str(path)))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) spans of the tokens of `text`, special tokens excluded.

        One pass of the Rust tokenizer: linear in the length of the text.
        """
        return self._counter.encode(text, add_special_tokens=False).offsets

    def ids(self, text: str) -> tuple[int, ...]:
        """The model's input ids for `text`: special tokens added, truncated to fit
        (the last 1,024 texts' are remembered)."""
        return self._cached(text)

    def _ids(self, text: str) -> tuple[int, ...]:
        # encode, not encode_batch: the batch call starts tokenizers' thread pool, after
        # which every fork (a parser subprocess) prints a warning about it.
        return tuple(self._truncator.encode(text).ids)


class FolderTokenizerEmbedder(Embedder):
    """An embedder that counts tokens with its folder's tokenizer.json.

    The tokenizer is read on first use, without loading the model (chunking needs no
    weights); a folder without one falls back to the word-based defaults.
    """

    _text: TextTokenizer | None = None
    _text_read = False

    def text_tokenizer(self) -> TextTokenizer | None:
        """The folder's tokenizer, or None when it has no tokenizer.json."""
        if not self._text_read:
            from feldspar.models.backends.hf_transformers import safe_folder
            from feldspar.models.weights import locate

            self._text = TextTokenizer.load(safe_folder(locate(self.spec)))
            self._text_read = True
        return self._text

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        tokenizer = self.text_tokenizer()
        return tokenizer.spans(text) if tokenizer else super().token_spans(text)

    def input_tokens(self, texts: Sequence[str]) -> int:
        tokenizer = self.text_tokenizer()
        if tokenizer is None:
            return super().input_tokens(texts)
        return sum(len(tokenizer.ids(text)) for text in texts)

    @property
    def max_tokens(self) -> int:
        tokenizer = self.text_tokenizer()
        return tokenizer.max_tokens if tokenizer else super().max_tokens
