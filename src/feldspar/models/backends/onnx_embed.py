"""Embeddings through ONNX Runtime: BERT-family encoders, no torch.

The ONNX graph is built here from the folder's safetensors (embeddings, encoder layers,
the sentence-transformers pooling), its MatMul weights quantized to int8 per output
channel, and cached under `settings.home/cache/onnx`; later loads read the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feldspar.errors import ModelError, UnsupportedOption
from feldspar.extras import require
from feldspar.models.backends.hf_transformers import safe_folder
from feldspar.models.tokenizer import (
    FolderTokenizerEmbedder,
    TextTokenizer,
    position_offset,
    read_json,
)
from feldspar.models.weights import locate

if TYPE_CHECKING:
    import onnx

    from feldspar.config import Settings
    from feldspar.models.spec import ModelSpec

GRAPH_VERSION = 1
"""Bump when `build_graph` changes what it writes, so that cached graphs are rebuilt."""

OPSET = 17  # the first with LayerNormalization
OUTPUT = "sentence_embedding"
MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
POOLING_MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
"""The pooling modes the graph can hold, in sentence-transformers' order of concatenation."""
_MODULES = {"Transformer", "Pooling", "Normalize"}
_HEAD = 1 << 20  # bytes of each weights file read for the fingerprint, at each end
_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


@dataclass(frozen=True)
class EncoderConfig:
    """What the graph needs to know of a model folder's config.json and pooling."""

    model_type: str
    hidden: int
    heads: int
    layers: int
    eps: float
    position_offset: int
    pooling: tuple[str, ...]


def read_encoder(folder: Path) -> EncoderConfig:
    """The encoder a folder holds; `UnsupportedOption` if this backend cannot build it."""
    config = read_json(folder / "config.json")
    model_type = str(config.get("model_type", "?"))
    alternative = f"use the sentence-transformers backend ('sentence-transformers:{folder}')"
    if model_type not in MODEL_TYPES:
        raise UnsupportedOption(f"The onnx backend runs {', '.join(MODEL_TYPES)} encoders, "
                                f"not model_type '{model_type}'; {alternative}")
    act = config.get("hidden_act", "gelu")
    positions = config.get("position_embedding_type", "absolute")
    if act != "gelu" or positions != "absolute":
        raise UnsupportedOption(f"The onnx backend needs hidden_act 'gelu' and absolute "
                                f"positions, not {act!r} and {positions!r}; {alternative}")
    for module in json.loads((folder / "modules.json").read_text(encoding="utf-8")) \
            if (folder / "modules.json").is_file() else []:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _MODULES:
            raise UnsupportedOption(f"The onnx backend cannot run the sentence-transformers "
                                    f"module {kind!r}; {alternative}")
    return EncoderConfig(
        model_type=model_type,
        hidden=int(config["hidden_size"]),
        heads=int(config["num_attention_heads"]),
        layers=int(config["num_hidden_layers"]),
        eps=float(config.get("layer_norm_eps", 1e-12)),
        position_offset=position_offset(config),
        pooling=_pooling(folder, alternative),
    )


def _pooling(folder: Path, alternative: str) -> tuple[str, ...]:
    pooling_dirs = sorted(folder.glob("*_Pooling"))
    if not pooling_dirs:
        return ("mean_tokens",)  # what sentence-transformers gives a plain encoder
    config = read_json(pooling_dirs[0] / "config.json")
    modes = tuple(mode for mode in POOLING_MODES if config.get(f"pooling_mode_{mode}"))
    others = [key for key, on in config.items() if key.startswith("pooling_mode_") and on
              and key.removeprefix("pooling_mode_") not in POOLING_MODES]
    if others or not modes:
        raise UnsupportedOption(f"The onnx backend pools by {', '.join(POOLING_MODES)}, not "
                                f"{', '.join(others) or 'nothing'}; {alternative}")
    return modes


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The floating-point tensors of a safetensors file as float32 arrays (others skipped).

    Read by hand (8-byte header length, JSON header, raw data) so that bf16 needs no torch.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if not 0 < length <= size - 8:
            raise ModelError(f"{path} is not a safetensors file")
        header = json.loads(f.read(length))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + length)
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") not in _DTYPES:
            continue
        begin, end = info["data_offsets"]
        shape = tuple(int(d) for d in info["shape"])
        width = np.dtype(_DTYPES[info["dtype"]]).itemsize
        if not 0 <= begin <= end <= data.size or end - begin != width * int(np.prod(shape)):
            raise ModelError(f"{path} is damaged: tensor {name} lies outside the file")
        raw = data[begin:end].view(_DTYPES[info["dtype"]])
        if info["dtype"] == "BF16":  # bf16 is the top half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = raw.astype(np.float32).reshape(shape)
    return tensors


def _weights(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of the folder's safetensors files, the model's name prefix removed."""
    tensors: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(read_safetensors(path))
    key = "embeddings.word_embeddings.weight"
    prefix = next((name[: -len(key)] for name in tensors if name.endswith(key)), None)
    if prefix is None:
        raise ModelError(f"{folder} holds no {key}: not a BERT-family encoder")
    return {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}


class _Graph:
    """Nodes and initializers, named as they are added."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        base, n = name, 1
        while name in self._names:
            n += 1
            name = f"{base}_{n}"
        self._names.add(name)
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._unique(name)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def weight(self, key: str) -> np.ndarray:
        if key in self.weights:
            return self.weights[key]
        old = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta")
        if old in self.weights:
            return self.weights[old]
        raise ModelError(f"The weights have no tensor {key}")

    def op(self, op_type: str, inputs: Sequence[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        name = self._unique(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attrs))
        return name

    def split(self, x: str, names: list[str], size: int) -> list[str]:
        """`x` cut into len(names) equal parts of `size` along its last axis."""
        from onnx import helper

        names = [self._unique(name) for name in names]
        sizes = self.const(f"{x}.sizes", np.full(len(names), size, dtype=np.int64))
        self.nodes.append(helper.make_node("Split", [x, sizes], names, name=f"{x}.split",
                                           axis=-1))
        return names

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        """x @ weight.T + bias, for a torch Linear's (out, in) weight."""
        w = self.const(f"{name}.weight", weight.T)
        b = self.const(f"{name}.bias", bias)
        return self.op("Add", [self.op("MatMul", [x, w], f"{name}.matmul"), b], name)

    def torch_linear(self, x: str, key: str, name: str) -> str:
        """x @ W.T + b for the torch Linear whose weights are named `key`."""
        return self.linear(x, self.weight(f"{key}.weight"), self.weight(f"{key}.bias"), name)

    def layer_norm(self, x: str, key: str, eps: float, name: str) -> str:
        scale = self.const(f"{name}.weight", self.weight(f"{key}.weight"))
        bias = self.const(f"{name}.bias", self.weight(f"{key}.bias"))
        return self.op("LayerNormalization", [x, scale, bias], name, axis=-1, epsilon=eps)


def build_graph(folder: Path) -> onnx.ModelProto:
    """The float32 ONNX graph of the encoder in `folder`, pooling included.

    Inputs input_ids and attention_mask, int64 of shape (batch, sequence); output
    sentence_embedding, float32 of shape (batch, dim): pooled as the folder's
    sentence-transformers config says, not normalized.
    """
    from onnx import TensorProto, helper

    cfg = read_encoder(folder)
    g = _Graph(_weights(folder))
    i64 = np.int64
    ids, mask = "input_ids", "attention_mask"

    # Embeddings. Single texts always have token type 0, so its row joins the positions.
    positions = g.weight("embeddings.position_embeddings.weight")
    if "embeddings.token_type_embeddings.weight" in g.weights:
        positions = positions + g.weights["embeddings.token_type_embeddings.weight"][0]
    word = g.const("word_embeddings", g.weight("embeddings.word_embeddings.weight"))
    table = g.const("position_embeddings", positions)
    seq = g.op("Shape", [ids], "sequence_length", start=1, end=2)
    first = g.const("first_position", np.array([cfg.position_offset], dtype=i64))
    axis0 = g.const("axis0", np.array([0], dtype=i64))
    # RoBERTa's positions count from padding_idx + 1 over real tokens; with padding on
    # the right that is a plain slice (padded positions are masked out anyway).
    last = g.op("Add", [seq, first], "last_position")
    rows = g.op("Slice", [table, first, last, axis0], "position_rows")
    x = g.op("Add", [g.op("Gather", [word, ids], "word_rows"), rows], "embedded")
    x = g.layer_norm(x, "embeddings.LayerNorm", cfg.eps, "embeddings.norm")

    maskf = g.op("Cast", [mask], "mask_float", to=TensorProto.FLOAT)
    # Additive attention mask (batch, 1, 1, sequence): 0 for tokens, -10000 for padding.
    bias = g.op("Mul", [g.op("Sub", [maskf, g.const("one", np.array(1, np.float32))],
                             "mask_minus_one"),
                        g.const("mask_penalty", np.array(10000.0, np.float32))], "mask_bias")
    bias = g.op("Unsqueeze", [bias, g.const("axes12", np.array([1, 2], dtype=i64))],
                "attention_bias")

    size = cfg.hidden // cfg.heads
    heads_shape = g.const("heads_shape", np.array([0, 0, cfg.heads, size], dtype=i64))
    hidden_shape = g.const("hidden_shape", np.array([0, 0, cfg.hidden], dtype=i64))
    for n in range(cfg.layers):
        x = _layer(g, x, bias, n, cfg, heads_shape, hidden_shape)

    pooled = g.op("Identity", [_pool(g, x, maskf, cfg.pooling)], OUTPUT)
    dim = cfg.hidden * len(cfg.pooling)
    graph = helper.make_graph(
        g.nodes, "encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
         for name in (ids, mask)],
        [helper.make_tensor_value_info(pooled, TensorProto.FLOAT, ["batch", dim])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="feldspar")
    model.ir_version = 8  # the IR of opset 17, which any onnxruntime since 1.12 reads
    return model


def _layer(g: _Graph, x: str, bias: str, n: int, cfg: EncoderConfig, heads_shape: str,
           hidden_shape: str) -> str:
    """One post-LayerNorm transformer encoder layer."""
    key, name = f"encoder.layer.{n}", f"layer{n}"
    size = cfg.hidden // cfg.heads
    # One MatMul for Q, K and V (one quantization of x instead of three); the softmax
    # scale 1/sqrt(head size) is folded into the query weights.
    scales = (1 / np.sqrt(size), 1.0, 1.0)
    parts = [f"{key}.attention.self.{part}" for part in ("query", "key", "value")]
    qkv = g.linear(x, np.concatenate([g.weight(f"{p}.weight") * s
                                      for p, s in zip(parts, scales, strict=True)]),
                   np.concatenate([g.weight(f"{p}.bias") * s
                                   for p, s in zip(parts, scales, strict=True)]),
                   f"{name}.qkv")
    q, k, v = (g.op("Reshape", [p, heads_shape], f"{p}.heads")
               for p in g.split(qkv, [f"{name}.q", f"{name}.k", f"{name}.v"], cfg.hidden))
    q = g.op("Transpose", [q], f"{name}.q.t", perm=[0, 2, 1, 3])
    k = g.op("Transpose", [k], f"{name}.k.t", perm=[0, 2, 3, 1])
    v = g.op("Transpose", [v], f"{name}.v.t", perm=[0, 2, 1, 3])
    scores = g.op("Add", [g.op("MatMul", [q, k], f"{name}.scores"), bias], f"{name}.masked")
    probs = g.op("Softmax", [scores], f"{name}.probs", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v], f"{name}.context")],
                   f"{name}.context.t", perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, hidden_shape], f"{name}.context.merged")
    attended = g.torch_linear(context, f"{key}.attention.output.dense",
                              f"{name}.attention.out")
    x = g.layer_norm(g.op("Add", [attended, x], f"{name}.attention.residual"),
                     f"{key}.attention.output.LayerNorm", cfg.eps, f"{name}.attention.norm")
    inner = g.torch_linear(x, f"{key}.intermediate.dense", f"{name}.intermediate")
    inner = _gelu(g, inner, f"{name}.gelu")
    out = g.torch_linear(inner, f"{key}.output.dense", f"{name}.output")
    return g.layer_norm(g.op("Add", [out, x], f"{name}.output.residual"),
                        f"{key}.output.LayerNorm", cfg.eps, f"{name}.output.norm")


def _gelu(g: _Graph, x: str, name: str) -> str:
    """Exact GELU, x * (1 + erf(x / sqrt 2)) / 2 (onnxruntime fuses it into one kernel)."""
    half = g.const(f"{name}.half", np.array(0.5, np.float32))
    root2 = g.const(f"{name}.sqrt2", np.array(np.sqrt(2.0), np.float32))
    one = g.const(f"{name}.one", np.array(1.0, np.float32))
    erf = g.op("Erf", [g.op("Div", [x, root2], f"{name}.scaled")], f"{name}.erf")
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, one], f"{name}.plus1")],
                             f"{name}.times"), half], name)


def _pool(g: _Graph, x: str, maskf: str, modes: tuple[str, ...]) -> str:
    """The sentence vector: the pooling modes of the folder, concatenated."""
    i64 = np.int64
    mask3 = "" if modes == ("cls_token",) else g.op(
        "Unsqueeze", [maskf, g.const("axis2", np.array([2], dtype=i64))], "mask3")
    pooled: list[str] = []
    for mode in modes:
        if mode == "cls_token":
            first = g.const("cls_index", np.array(0, dtype=i64))
            pooled.append(g.op("Gather", [x, first], "pool.cls", axis=1))
        elif mode == "max_tokens":
            # Padding gets -1e9 so that it never wins (as sentence-transformers does).
            penalty = g.op("Mul", [g.op("Sub", [mask3, g.const("pool.one", np.array(
                1, np.float32))], "pool.pad"), g.const("pool.big", np.array(1e9, np.float32))],
                "pool.penalty")
            pooled.append(g.op("ReduceMax", [g.op("Add", [x, penalty], "pool.masked_x")],
                               "pool.max", axes=[1], keepdims=0))
        else:
            axis1 = g.const("axis1", np.array([1], dtype=i64))
            total = g.op("ReduceSum", [g.op("Mul", [x, mask3], "pool.kept"), axis1],
                         "pool.sum", keepdims=0)
            count = g.op("ReduceSum", [mask3, axis1], "pool.count", keepdims=0)
            count = g.op("Max", [count, g.const("pool.min_count", np.array(1e-9, np.float32))],
                         "pool.count_clamped")
            if mode == "mean_sqrt_len_tokens":
                count = g.op("Sqrt", [count], "pool.sqrt_count")
            pooled.append(g.op("Div", [total, count], f"pool.{mode}"))
    if len(pooled) == 1:
        return pooled[0]
    return g.op("Concat", pooled, "pool.concat", axis=-1)


@cache
def seven_bit_weights() -> bool:
    """Whether this CPU wants weights quantized to 7 bits (`reduce_range`).

    On x86 without VNNI, onnxruntime's uint8 x int8 kernel sums pairs of products into
    int16 (VPMADDUBSW), which full 8-bit weights can saturate; 7 bits cannot. VNNI and
    ARM kernels do not saturate, and 8 bits are a little more accurate there.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # not Linux: cannot tell, so take the safe side
    return re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", cpuinfo) is None


def quantize(model: onnx.ModelProto, path: Path, *, reduce_range: bool) -> None:
    """Write `model` to `path` with the weights of its MatMuls in int8.

    One scale per output channel: onnxruntime's default, one per tensor, costs MiniLM
    0.05 of cosine to its float vectors on average and 0.09 at worst; per channel, 0.006.
    """
    ort_quantization = require("onnxruntime.quantization", extra="embed")
    # The graph is built ready for quantization: this tells quantize_dynamic so, which
    # otherwise logs through the root logger and so configures the caller's logging.
    meta = model.metadata_props.add()
    meta.key, meta.value = "onnx.quant.pre_process", "onnxruntime.quant"
    ort_quantization.quantize_dynamic(
        model, path, op_types_to_quantize=["MatMul"], per_channel=True,
        reduce_range=reduce_range, weight_type=ort_quantization.QuantType.QInt8)


def fingerprint(folder: Path, *, quantized: bool) -> str:
    """A short hash of what the graph of `folder` is built from.

    The configs in full, and of each weights file its size, mtime and first and last MiB:
    hashing it all takes 0.1 s for MiniLM's 90 MB on every load (seconds for a 1 GB
    model), and a rewritten file gets a new mtime.
    """
    precision = f"int8 reduce_range={seven_bit_weights()}" if quantized else "fp32"
    digest = hashlib.sha256(f"v{GRAPH_VERSION} {precision}".encode())
    for name in ("config.json", "modules.json"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    for pooling in sorted(folder.glob("*_Pooling/config.json")):
        digest.update(pooling.read_bytes())
    for path in sorted(folder.glob("*.safetensors")):
        stat = path.stat()
        digest.update(f"{path.name} {stat.st_size} {stat.st_mtime_ns}".encode())
        with path.open("rb") as f:
            digest.update(f.read(_HEAD))
            f.seek(max(0, stat.st_size - _HEAD))
            digest.update(f.read(_HEAD))
    return digest.hexdigest()[:16]


def graph_path(folder: Path, cache: Path, name: str, *, quantized: bool = True) -> Path:
    """Where the graph of `folder` is cached: its name and fingerprint, under `cache`."""
    safe = re.sub(r"[^\w.-]+", "_", name)
    suffix = "" if quantized else "-fp32"
    return cache / f"{safe}-{fingerprint(folder, quantized=quantized)}{suffix}.onnx"


def write_graph(folder: Path, path: Path, *, quantized: bool = True) -> None:
    """Build the graph of `folder` and write it to `path`, whole or not at all.

    Written to a temporary name and renamed, so that processes loading at the same time
    never see half a file.
    """
    onnx = require("onnx", extra="embed")
    model = build_graph(folder)
    # A name of its own per writer (mkstemp would also do, but makes the file private).
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if quantized:
            quantize(model, temp, reduce_range=seven_bit_weights())
        else:
            onnx.save(model, str(temp))
        os.replace(temp, path)
    except OSError as exc:
        raise ModelError(f"Could not write the embedder's ONNX graph to {path}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)


class OnnxEmbedder(FolderTokenizerEmbedder):
    """A BERT-family encoder from a local safetensors folder, run by ONNX Runtime.

    The first load builds and caches the int8 graph (seconds); later loads read it.
    """

    _session: Any
    _pool: ThreadPoolExecutor | None = None
    _tokenizer: TextTokenizer

    def __init__(self, spec: ModelSpec, settings: Settings, *, quantized: bool = True) -> None:
        super().__init__(spec, settings)
        self.quantized = quantized

    def _load(self) -> None:
        folder = safe_folder(locate(self.spec))
        read_encoder(folder)  # an unsupported model fails before anything is built
        require("onnxruntime", extra="embed")
        tokenizer = self.text_tokenizer()
        if tokenizer is None:
            raise ModelError(f"{folder} has no tokenizer.json, which the onnx backend needs; "
                             f"use 'sentence-transformers:{folder}' instead")
        self._tokenizer = tokenizer
        path = graph_path(folder, self.settings.home / "cache" / "onnx", self.spec.name,
                          quantized=self.quantized)
        if not path.is_file():
            write_graph(folder, path, quantized=self.quantized)
        try:
            self._session = self._open(path)
        except Exception:  # onnxruntime raises its own types for a damaged file: rebuild once
            write_graph(folder, path, quantized=self.quantized)
            try:
                self._session = self._open(path)
            except Exception as exc:
                raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc

    def _open(self, path: Path) -> Any:
        ort = require("onnxruntime", extra="embed")
        options = ort.SessionOptions()
        # One thread per run and one run per core (embed_batch): one short text leaves a
        # second intra-op thread mostly waiting; two texts side by side were ~1.8x faster.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: a library should not print warnings
        # Fusing residual Add + LayerNormalization into SkipLayerNormalization made MiniLM
        # about 10% slower (its kernel took 20% of the time, against 13% for the pair).
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=["SkipLayerNormFusion"])

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        # One text per run: activations are quantized with one scale per run, so a text
        # alone gets its own scale and the same vector whatever it is batched with (and
        # no padding to compute). Runs go side by side, one per core: onnxruntime's run()
        # is thread-safe and releases the GIL.
        ids = [np.array([self._tokenizer.ids(text)], dtype=np.int64) for text in texts]
        rows = list(self._runners().map(self._run, ids))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)

    def _run(self, row: np.ndarray) -> np.ndarray:
        (vector,) = self._session.run(None, {"input_ids": row,
                                             "attention_mask": np.ones_like(row)})
        return np.asarray(vector[0])

    def _runners(self) -> ThreadPoolExecutor:
        if self._pool is None:
            workers = self.settings.threads or os.cpu_count() or 1
            self._pool = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="feldspar-embed")
        return self._pool

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
            self._pool = None
