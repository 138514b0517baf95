"""The trained scorer, stored as plain JSON numbers and evaluated with numpy.

Three kinds are understood, all on standardised features: `logistic` (one weight each),
`mlp` (ReLU hidden layers, a logistic output) and `trees` (gradient-boosted regression
trees whose leaf values add up to a log-odds). The file holds numbers and feature names
only; loading checks both, so it can never carry code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feldspar.errors import ModelError
from feldspar.grounding.features import FEATURES

FORMAT = "feldspar-grounding/1"
WEIGHTS = Path(__file__).with_name("weights.json")


@dataclass(frozen=True)
class GroundingModel:
    """Standardisation, layers and the decision threshold of a trained scorer."""

    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    """(weight (n_in, n_out), bias (n_out,)) pairs; ReLU between them, a sigmoid at the end."""
    trees: Trees | None
    threshold: float
    """Scores at or above it count as grounded (chosen by cross-validation on training data)."""
    candidates_per_passage: int
    """How many sentences of each passage are embedded (those sharing the most words)."""
    info: dict[str, Any]

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> GroundingModel:
        """Read and check a weights file written by bench/train_grounding.py."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"Cannot read the groundedness weights {path}: {exc}") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "weights") -> GroundingModel:
        def bad(why: str) -> ModelError:
            return ModelError(f"Invalid groundedness weights in {where}: {why}; "
                              "retrain with bench/train_grounding.py")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"format is not {FORMAT!r}")
        if data.get("features") != list(FEATURES):
            raise bad("the feature list differs from this version's")
        model = data.get("model")
        if not isinstance(model, dict) or model.get("kind") not in KINDS:
            raise bad(f"model.kind must be one of {', '.join(KINDS)}")
        n = len(FEATURES)
        mean, scale = _numbers(model.get("mean"), (n,)), _numbers(model.get("scale"), (n,))
        if mean is None or scale is None or not (scale > 0).all():
            raise bad("mean and scale need one finite number per feature, scales above 0")
        trees = Trees.from_dict(model, n) if model["kind"] == "trees" else None
        if model["kind"] == "trees" and trees is None:
            raise bad("the trees are not well formed")
        layers = _layers(model, n)
        if layers is None:
            raise bad(f"the layers do not fit {n} features and one output")
        threshold = data.get("threshold")
        per_passage = data.get("candidates_per_passage")
        if not isinstance(threshold, float) or not 0 <= threshold <= 1:
            raise bad("threshold must be a number in [0, 1]")
        if not isinstance(per_passage, int) or per_passage < 1:
            raise bad("candidates_per_passage must be a positive integer")
        info = data.get("training", {})
        return cls(mean, scale, layers, trees, threshold, per_passage,
                   info if isinstance(info, dict) else {})

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The probability of 'grounded' for each row of a (n, len(FEATURES)) matrix."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        logits = x[:, 0]
        if self.trees is not None:
            # Trees compare in float32, as scikit-learn's do, so that splits agree exactly.
            standard = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
            logits = logits + self.trees.predict(standard.astype(np.float32))
        logits = np.clip(logits, -30.0, 30.0)
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return probabilities


def _layers(model: dict[str, Any], n_features: int
            ) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
    """The (weight, bias) layers of a model dict, or None if they do not fit together."""
    raw: Any
    if model["kind"] == "trees":  # the trees add to a constant log-odds
        raw = [{"weight": [[0.0]] * n_features, "bias": [model.get("bias")]}]
    elif model["kind"] == "logistic":
        raw = [{"weight": [[w] for w in model.get("coef", [])],
                "bias": [model.get("intercept")]}]
    else:
        raw = model.get("layers")
    if not isinstance(raw, list) or not raw:
        return None
    layers = []
    width = n_features
    for layer in raw:
        if not isinstance(layer, dict):
            return None
        weight = _numbers(layer.get("weight"), None)
        bias = _numbers(layer.get("bias"), None)
        if (weight is None or bias is None or weight.ndim != 2 or weight.shape[0] != width
                or bias.shape != (weight.shape[1],)):
            return None
        layers.append((weight, bias))
        width = weight.shape[1]
    return tuple(layers) if width == 1 else None


@dataclass(frozen=True)
class Trees:
    """Regression trees as padded (n_trees, n_nodes) arrays; a leaf points to itself."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    """Leaf values, already scaled by the learning rate."""
    depth: int

    @classmethod
    def from_dict(cls, model: dict[str, Any], n_features: int) -> Trees | None:
        raw = model.get("trees")
        depth = model.get("depth")
        if not isinstance(raw, list) or not raw or not isinstance(depth, int) or depth < 1:
            return None
        width = max(len(t.get("left", [])) if isinstance(t, dict) else 0 for t in raw)
        arrays = {k: np.zeros((len(raw), width)) for k in ("feature", "threshold", "left",
                                                            "right", "value")}
        for i, tree in enumerate(raw):
            parts = {k: _numbers(tree.get(k), None) if isinstance(tree, dict) else None
                     for k in arrays}
            count = len(tree["left"]) if isinstance(tree, dict) else 0
            if any(p is None or p.shape != (count,) for p in parts.values()):
                return None
            for key, part in parts.items():
                assert part is not None
                arrays[key][i, :count] = part
                if key in ("left", "right"):  # padding nodes are leaves
                    arrays[key][i, count:] = np.arange(count, width)
        feature, left, right = (arrays[k].astype(np.int64) for k in ("feature", "left", "right"))
        if ((feature < 0) | (feature >= n_features)).any() or (
                (left < 0) | (left >= width) | (right < 0) | (right >= width)).any():
            return None
        return cls(feature, arrays["threshold"], left, right, arrays["value"], depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The sum of the trees' leaf values for each row of `x` (standardised)."""
        trees = np.arange(len(self.feature))
        node = np.zeros((len(x), len(trees)), dtype=np.int64)
        rows = np.arange(len(x))[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            node = np.where(go_left, self.left[trees, node], self.right[trees, node])
        total: np.ndarray = self.value[trees, node].sum(axis=1)
        return total


KINDS = ("logistic", "mlp", "trees")


def _numbers(value: Any, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """`value` as a finite float array (of `shape` if given), or None if it is not one."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.dtype != np.float64 or not np.isfinite(array).all() or array.ndim == 0:
        return None
    if shape is not None and array.shape != shape:
        return None
    return array


def dump(mean: np.ndarray, scale: np.ndarray, kind: str, params: dict[str, Any],
         threshold: float, candidates_per_passage: int, info: dict[str, Any]) -> str:
    """The JSON text of a weights file (used by the training script)."""
    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [plain(v) for v in value.tolist()] if value.ndim else float(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = {"format": FORMAT, "features": list(FEATURES), "threshold": float(threshold),
            "candidates_per_passage": candidates_per_passage,
            "model": plain({"kind": kind, "mean": mean, "scale": scale, **params}),
            "training": plain(info)}
    return json.dumps(data, indent=1) + "\n"
