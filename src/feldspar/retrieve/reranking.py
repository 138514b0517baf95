"""A cross-encoder that reorders search candidates by reading query and passage together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feldspar.config import Settings
from feldspar.errors import ModelError, UserError
from feldspar.extras import require


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a registered model (role "rerank").

    Register a local model with `feldspar models add NAME --path FOLDER --role rerank`,
    then set `rerank_model = "NAME"` in feldspar.toml.
    """

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        from feldspar.models.backends.hf_transformers import prepare_torch, safe_folder
        from feldspar.models.licenses import check_license
        from feldspar.models.lookup import find_spec
        from feldspar.models.weights import locate

        spec = find_spec(self.name, self.settings)
        if "rerank" not in spec.roles:
            raise UserError(f"'{spec.name}' is not a reranker (roles: {', '.join(spec.roles)})"
                            "; set rerank_model to a model with the rerank role")
        check_license(spec, self.settings)
        folder = safe_folder(locate(spec))
        st = require("sentence_transformers", extra="sbert",
                     purpose="cross-encoder reranking needs sentence-transformers")
        prepare_torch(self.settings.threads)
        try:
            self._model = st.CrossEncoder(str(folder), device="cpu", local_files_only=True,
                                          model_kwargs={"use_safetensors": True})
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"Could not load reranker from {folder}: {exc}") from exc
        return self._model

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage to the query; higher is better."""
        if not passages:
            return []
        model = self._load()
        scores = model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]
