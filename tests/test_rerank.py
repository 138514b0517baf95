"""A configured cross-encoder reorders search results (the reranker's quality is the
model's; what is tested here is that its scores, from a real model, decide the order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feldspar.config import load_settings
from feldspar.errors import UserError
from feldspar.models.adding import register_local
from feldspar.models.lookup import find_spec
from feldspar.models.weights import locate
from feldspar.workspace import Workspace
from tests.test_ingest import MIXED, write

pytestmark = pytest.mark.integration


@pytest.fixture
def reranker_folder(tmp_path: Path) -> Path:
    """A cross-encoder made from the packaged MiniLM (its scoring head is untrained)."""
    from sentence_transformers import CrossEncoder

    folder = tmp_path / "cross-encoder"
    minilm = locate(find_spec("all-minilm-l6-v2", load_settings()))
    CrossEncoder(str(minilm), num_labels=1, device="cpu").save(str(folder))
    assert list(folder.glob("*.safetensors"))
    return folder


def test_the_reranker_decides_the_order(tmp_path: Path, reranker_folder: Path) -> None:
    from sentence_transformers import CrossEncoder

    settings = load_settings()
    register_local(settings, "tiny-reranker", reranker_folder, roles=("rerank",),
                   license_id="Apache-2.0")
    write(tmp_path / "corpus", MIXED)
    ranked = load_settings(rerank_model="tiny-reranker")
    with Workspace(ranked) as ws:
        ws.ingest([tmp_path / "corpus"])
        hits = ws.search("office holidays", k=4)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert all("rerank" in h.scores and h.score == h.scores["rerank"] for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    direct = CrossEncoder(str(reranker_folder), device="cpu").predict(
        [("office holidays", h.chunk.text) for h in hits])
    assert [round(float(s), 4) for s in direct] == [round(h.score, 4) for h in hits]


def test_a_model_without_the_rerank_role_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "corpus", {"a.txt": "some text"})
    with Workspace(load_settings(rerank_model="all-minilm-l6-v2")) as ws:
        ws.ingest([tmp_path / "corpus"])
        with pytest.raises(UserError, match="is not a reranker"):
            ws.search("text")
