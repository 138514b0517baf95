"""The trained scorer, stored as plain JSON numbers and evaluated with numpy.

Two kinds are understood: `logistic` (standardised features, one weight each) and `mlp`
(standardised features, ReLU hidden layers, a logistic output). The file holds numbers
and feature names only; loading checks both, so it can never carry code.
"""

from __future__ import annotations

import json
import math
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
        if not isinstance(model, dict) or model.get("kind") not in ("logistic", "mlp"):
            raise bad("model.kind must be 'logistic' or 'mlp'")
        n = len(FEATURES)
        mean, scale = _numbers(model.get("mean"), (n,)), _numbers(model.get("scale"), (n,))
        if mean is None or scale is None or not (scale > 0).all():
            raise bad("mean and scale need one finite number per feature, scales above 0")
        raw = ([{"weight": [[w] for w in model.get("coef", [])],
                 "bias": [model.get("intercept")]}] if model["kind"] == "logistic"
               else model.get("layers"))
        if not isinstance(raw, list) or not raw:
            raise bad("no layers")
        layers = []
        width = n
        for layer in raw:
            if not isinstance(layer, dict):
                raise bad("a layer is not an object")
            weight = _numbers(layer.get("weight"), None)
            bias = _numbers(layer.get("bias"), None)
            if (weight is None or bias is None or weight.ndim != 2 or weight.shape[0] != width
                    or bias.shape != (weight.shape[1],)):
                raise bad(f"a layer does not fit ({width} inputs expected)")
            layers.append((weight, bias))
            width = weight.shape[1]
        if width != 1:
            raise bad("the last layer must have one output")
        threshold = data.get("threshold")
        per_passage = data.get("candidates_per_passage")
        if not isinstance(threshold, float) or not 0 <= threshold <= 1:
            raise bad("threshold must be a number in [0, 1]")
        if not isinstance(per_passage, int) or per_passage < 1:
            raise bad("candidates_per_passage must be a positive integer")
        info = data.get("training", {})
        return cls(mean, scale, tuple(layers), threshold, per_passage,
                   info if isinstance(info, dict) else {})

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The probability of 'grounded' for each row of a (n, len(FEATURES)) matrix."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        logits = np.clip(x[:, 0], -30.0, 30.0)
        probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
        return probabilities


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
        if isinstance(value, float):
            return round(value, 7) if math.isfinite(value) else value
        return value

    data = {"format": FORMAT, "features": list(FEATURES), "threshold": float(threshold),
            "candidates_per_passage": candidates_per_passage,
            "model": plain({"kind": kind, "mean": mean, "scale": scale, **params}),
            "training": plain(info)}
    return json.dumps(data, indent=1) + "\n"
