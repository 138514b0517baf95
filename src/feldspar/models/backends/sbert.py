"""Embeddings through sentence-transformers (the default embedder's backend)."""

from __future__ import annotations

from typing import Any

import numpy as np

from feldspar.errors import ModelError
from feldspar.extras import require
from feldspar.models.backends.hf_transformers import prepare_torch, safe_folder
from feldspar.models.tokenizer import FolderTokenizerEmbedder
from feldspar.models.weights import locate


class SentenceTransformerEmbedder(FolderTokenizerEmbedder):
    """A sentence-transformers model from a local folder; nothing is fetched from a hub.

    Token spans come from the folder's tokenizer.json, without loading torch.
    """

    _model: Any

    def _load(self) -> None:
        path = safe_folder(locate(self.spec))
        st = require("sentence_transformers", extra="sbert",
                     purpose="sentence-transformers embeddings need torch")
        prepare_torch(self.settings.threads)
        try:
            # A local folder and local_files_only: the library never reaches for the Hub.
            self._model = st.SentenceTransformer(
                str(path), device="cpu", local_files_only=True,
                model_kwargs={"use_safetensors": True})
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"Could not load embedding model from {path}: {exc}") from exc

    @property
    def dimension(self) -> int:
        self.load()
        return int(self._model.get_sentence_embedding_dimension())

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                     normalize_embeddings=False, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
