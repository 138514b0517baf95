"""The onnx embedding backend: a graph built from the packaged all-MiniLM-L6-v2 weights,
int8 per channel, against sentence-transformers on the same weights."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from feldspar.config import Settings
from feldspar.errors import UnsupportedOption
from feldspar.models.backends import onnx_embed
from feldspar.models.backends.onnx_embed import OnnxEmbedder
from feldspar.models.backends.sbert import SentenceTransformerEmbedder
from feldspar.models.lookup import find_spec
from feldspar.models.registry import embed_class
from feldspar.models.spec import ModelSpec, Source
from feldspar.models.weights import locate

pytestmark = pytest.mark.integration

SENTENCES = [
    "How many days of annual leave do employees get?",
    "Staff are entitled to 25 days of paid holiday per year.",
    "The server room must stay below 24 degrees Celsius.",
    "Expense claims above 500 euros need a manager's approval.",
    "Who approves travel outside the European Union?",
    "The cafeteria opens at half past seven.",
    "Passwords must be rotated every ninety days.",
    "The quarterly report is due on the fifth working day.",
    "Backups run nightly and are kept for thirty days.",
    "Visitors sign in at reception and wear a badge.",
    "A cat sat on the mat.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
    "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
    "def add(a, b): return a + b",
    "SELECT name FROM users WHERE id = 42;",
    "Le chat est sur la table.",
    "Die Sitzung beginnt um neun Uhr.",
    "東京は日本の首都です。",
    "ok",
    "",
    "!!! ??? ...",
    "Error 0x80070005: access denied (see https://example.com/kb/5).",
    "The patient presented with acute abdominal pain and fever.",
    "Interest rates rose by a quarter point in March.",
    "The striker scored twice in the second half.",
    "Quantum entanglement links the states of two particles.",
    "Mix the flour and butter, then add cold water slowly.",
    "The contract terminates automatically after twelve months unless renewed.",
    "Recycling bins are emptied every Tuesday morning.",
    "She walked along the river at dusk, thinking about the letter.",
    " ".join(["The committee reviewed the proposal in detail and asked for a revised "
              "budget, a clearer timeline and a risk assessment."] * 12),
]

QUERIES = ["How much holiday do I get?", "What temperature should the server room be?",
           "Who signs off on big expenses?", "When are backups made?",
           "How often do passwords change?"]
PASSAGES = [SENTENCES[1], SENTENCES[2], SENTENCES[3], SENTENCES[8], SENTENCES[6],
            SENTENCES[5], SENTENCES[9]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One FELDSPAR_HOME for the module, so that the graph is built once for it."""
    return tmp_path_factory.mktemp("onnx-home")


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return find_spec("all-minilm-l6-v2", Settings())


@pytest.fixture(scope="module")
def onnx_model(home: Path, spec: ModelSpec) -> OnnxEmbedder:
    model = OnnxEmbedder(spec, Settings(home=home))
    model.load()
    return model


@pytest.fixture(scope="module")
def reference(home: Path, spec: ModelSpec) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(spec, Settings(home=home))


def test_the_default_embedder_runs_on_onnx(settings: Settings) -> None:
    assert embed_class(find_spec(settings.embed_model, settings)) is OnnxEmbedder


def test_the_float_graph_reproduces_sentence_transformers(
        home: Path, spec: ModelSpec, reference: SentenceTransformerEmbedder) -> None:
    exact = OnnxEmbedder(spec, Settings(home=home), quantized=False)
    cosine = np.sum(exact.embed(SENTENCES) * reference.embed(SENTENCES), axis=1)
    assert cosine.min() > 0.99999


def test_int8_vectors_stay_close_to_sentence_transformers(
        onnx_model: OnnxEmbedder, reference: SentenceTransformerEmbedder) -> None:
    cosine = np.sum(onnx_model.embed(SENTENCES) * reference.embed(SENTENCES), axis=1)
    # Measured (VNNI CPU): mean 0.993, min 0.974 (the shortest texts move most).
    assert cosine.mean() >= 0.985
    assert cosine.min() >= 0.96


def test_int8_ranks_passages_as_sentence_transformers_does(
        onnx_model: OnnxEmbedder, reference: SentenceTransformerEmbedder) -> None:
    def scores(model: OnnxEmbedder | SentenceTransformerEmbedder) -> np.ndarray:
        return np.asarray(model.embed(QUERIES) @ model.embed(PASSAGES).T)

    ours, theirs = scores(onnx_model), scores(reference)
    assert ours.argmax(axis=1).tolist() == theirs.argmax(axis=1).tolist() == [0, 1, 2, 3, 4]
    # Below the nearest, unrelated passages score within a few hundredths of each other,
    # so their order is noise; the scores themselves stay close.
    assert np.abs(ours - theirs).max() < 0.05


def test_a_text_gets_the_same_vector_whatever_its_batch(onnx_model: OnnxEmbedder) -> None:
    together = onnx_model.embed(SENTENCES, batch_size=7)
    alone = np.concatenate([onnx_model.embed([text]) for text in SENTENCES[:5]])
    assert np.array_equal(together[:5], alone)
    assert onnx_model.embed([]).shape == (0, 384)
    assert onnx_model.dimension == 384


def test_the_graph_is_cached_once_and_reused(
        onnx_model: OnnxEmbedder, home: Path, spec: ModelSpec,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cached = onnx_embed.graph_path(locate(spec), home / "cache" / "onnx", spec.name)
    assert cached.is_file()
    before = cached.stat().st_mtime_ns

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached graph was rebuilt")

    monkeypatch.setattr(onnx_embed, "write_graph", no_rebuild)
    again = OnnxEmbedder(spec, Settings(home=home))
    again.load()
    assert cached.stat().st_mtime_ns == before
    assert np.array_equal(again.embed(SENTENCES[:3]), onnx_model.embed(SENTENCES[:3]))
    assert not list((home / "cache" / "onnx").glob("*.tmp"))


def test_a_corrupt_cached_graph_is_rebuilt(
        onnx_model: OnnxEmbedder, home: Path, spec: ModelSpec, tmp_path: Path) -> None:
    other = tmp_path / "home"
    shutil.copytree(home / "cache", other / "cache")
    cached = onnx_embed.graph_path(locate(spec), other / "cache" / "onnx", spec.name)
    size = cached.stat().st_size
    cached.write_bytes(cached.read_bytes()[: size // 3])  # a write cut short
    rebuilt = OnnxEmbedder(spec, Settings(home=other))
    assert np.array_equal(rebuilt.embed(SENTENCES[:3]), onnx_model.embed(SENTENCES[:3]))
    assert cached.stat().st_size == size


NO_TORCH = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "sentence_transformers"):
            raise ImportError(f"{name} is not allowed here")
sys.meta_path.insert(0, Refuse())
import feldspar
embedder = feldspar.get_embedder()
vectors = embedder.embed(["hello"])
spans = embedder.token_spans("hello world")
print(type(embedder).__name__, vectors.shape[1], len(spans))
"""


def test_the_first_load_needs_no_torch(tmp_path: Path) -> None:
    env = {**os.environ, "FELDSPAR_HOME": str(tmp_path / "fresh")}
    out = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["OnnxEmbedder", "384", "2"]
    assert list((tmp_path / "fresh" / "cache" / "onnx").glob("all-minilm-l6-v2-*.onnx"))
    assert not out.stderr  # nothing printed: no warnings, no progress bars


def test_safetensors_are_read_in_every_float_type(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = {"half": torch.randn(3, 4).half(), "brain": torch.randn(5).bfloat16(),
               "single": torch.randn(2, 2), "ids": torch.arange(4)}
    safetensors_torch.save_file(tensors, str(tmp_path / "t.safetensors"))
    read = onnx_embed.read_safetensors(tmp_path / "t.safetensors")
    assert set(read) == {"half", "brain", "single"}
    for name, array in read.items():
        assert array.dtype == np.float32
        assert np.array_equal(array, tensors[name].float().numpy())


@pytest.mark.parametrize("text", [
    "Hello, naïve café-goers! Ünïcödé and 東京 and emoji 🎉 too.",
    "  leading and trailing spaces  ",
    "",
    "word " * 3000,
])
def test_token_spans_are_the_tokenizers_tokens(
        onnx_model: OnnxEmbedder, spec: ModelSpec, home: Path, text: str) -> None:
    spans = onnx_model.token_spans(text)
    tokenizer = onnx_model.text_tokenizer()
    assert tokenizer is not None
    count = len(tokenizer._counter.encode(text, add_special_tokens=False).ids)
    assert len(spans) == count
    assert all(0 <= s < e <= len(text) and text[s:e].strip() for s, e in spans)
    assert spans == sorted(spans)
    sbert = SentenceTransformerEmbedder(spec, Settings(home=home))
    assert sbert.token_spans(text) == spans
    assert "_model" not in vars(sbert)  # spans without loading the model


def test_max_tokens_leaves_room_for_special_tokens(
        onnx_model: OnnxEmbedder, reference: SentenceTransformerEmbedder) -> None:
    assert onnx_model.max_tokens == reference.max_tokens == 254  # max_seq_length 256


def test_a_long_text_is_truncated_to_what_fits(onnx_model: OnnxEmbedder) -> None:
    text = " ".join(f"word{i % 97}" for i in range(2000))
    spans = onnx_model.token_spans(text)
    assert len(spans) > onnx_model.max_tokens
    head = text[: spans[onnx_model.max_tokens - 1][1]]
    long, fitting = onnx_model.embed([text, head])
    assert np.array_equal(long, fitting)


def _folder_with_config(tmp_path: Path, spec: ModelSpec, **changes: object) -> ModelSpec:
    folder = tmp_path / "model"
    shutil.copytree(locate(spec), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return dataclasses.replace(spec, name="changed", origin="registered",
                               source=Source(kind="path", path=str(folder)))


def test_an_unsupported_model_type_is_refused(tmp_path: Path, spec: ModelSpec) -> None:
    changed = _folder_with_config(tmp_path, spec, model_type="gpt2")
    with pytest.raises(UnsupportedOption, match="sentence-transformers"):
        OnnxEmbedder(changed, Settings(home=tmp_path / "home")).load()
    assert not (tmp_path / "home" / "cache" / "onnx").exists()


def test_a_changed_config_gets_a_new_graph(tmp_path: Path, spec: ModelSpec) -> None:
    changed = _folder_with_config(tmp_path, spec)
    folder = locate(changed)
    first = onnx_embed.graph_path(folder, tmp_path, "m")
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert onnx_embed.graph_path(folder, tmp_path, "m") != first


def _tiny_encoder(folder: Path, model_type: str, pooling: str) -> None:
    """A small random encoder with transformers' own layout, saved as safetensors."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config_class = {"bert": transformers.BertConfig,
                    "roberta": transformers.RobertaConfig}[model_type]
    model_class = {"bert": transformers.BertModel,
                   "roberta": transformers.RobertaModel}[model_type]
    torch.manual_seed(0)
    config = config_class(vocab_size=120, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=64 + (2 if model_type == "roberta" else 0))
    model_class(config, add_pooling_layer=False).eval().save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, f"pooling_mode_{pooling}": True}))


@pytest.mark.parametrize(("model_type", "pooling"), [
    ("bert", "cls_token"), ("bert", "max_tokens"), ("roberta", "mean_tokens"),
    ("roberta", "mean_sqrt_len_tokens")])
def test_the_graph_matches_transformers(tmp_path: Path, model_type: str, pooling: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    onnxruntime = pytest.importorskip("onnxruntime")

    _tiny_encoder(tmp_path, model_type, pooling)
    ids = np.array([[0, 5, 17, 9, 33, 2], [0, 44, 2, 1, 1, 1]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=np.int64)
    session = onnxruntime.InferenceSession(
        onnx_embed.build_graph(tmp_path).SerializeToString(),
        providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"input_ids": ids, "attention_mask": mask})

    model = transformers.AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor(ids),
                       attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    keep = mask[:, :, None].astype(np.float32)
    expected = {
        "cls_token": hidden[:, 0],
        "max_tokens": np.where(keep > 0, hidden, -1e9).max(axis=1),
        "mean_tokens": (hidden * keep).sum(axis=1) / keep.sum(axis=1),
        "mean_sqrt_len_tokens": (hidden * keep).sum(axis=1) / np.sqrt(keep.sum(axis=1)),
    }[pooling]
    assert np.allclose(ours, expected, atol=1e-4)
