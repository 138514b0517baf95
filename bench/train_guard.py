"""Train the guard classifier (src/feldspar/guard/classifier_weights.npz) on the train part
of the five safety datasets (bench/guard_data.py), and print its figures on the test part.

Steps: (1) the static token table: every vocabulary token of the packaged MiniLM run alone
through the float32 model ([CLS] token [SEP], mean-pooled), centred, Zipf-weighted by
vocabulary rank; (2) the windows of every training text, labelled by what they hold;
(3) the fast heads: logistic regression per risk on [static vector, hashed word and char
n-grams], injection's with the highest "instruction" score of a window's sentences (a
head trained on the sentences of documents); (4) the escalation head on [MiniLM
embedding, fast logits], shipped but off unless --escalate; (5) Platt scaling of both on
5-fold out-of-fold scores of whole texts; (6) the weights file, then the test figures
computed by the packaged runtime (GuardClassifier) on the held-out texts. scikit-learn is
used here only.

    python bench/train_guard.py [--data ../shared/data] [--compare] [--no-benign-train]
                                [--holdout xstest] [--escalate]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import guard_data as gd
from common import save
from feldspar.guard.classifier import (
    EMBEDDER,
    LONG,
    RISKS,
    SHORT_RISKS,
    FeatureConfig,
    GuardClassifier,
    GuardWeights,
    ngram_features,
    pieces,
    sentences,
)

CACHE = Path(os.environ.get("TMPDIR", "/tmp"))
OUT = Path(__file__).resolve().parents[1] / "src" / "feldspar" / "guard" / "classifier_weights.npz"
NORM_DIMS = 64  # PCA dimensions kept for the length of a window's static vector
SPECIAL_IDS = 1000  # BERT's [PAD], [unusedN], [UNK], [CLS], [SEP], [MASK]: weight 0
FIRST_WORD = 1996  # BERT uncased: ids below are specials and single characters
SIF = 1e-3
FOLDS = 5
INJECTION = RISKS.index("prompt_injection")
ESCALATED = ("harm", "jailbreak")
"""Risks whose uncertain windows go to MiniLM (injection gained little for its cost)."""
REPHRASED = ("goal", "self-instruct/user_oriented", "mt_bench", "attack-alone")
"""Kinds of example whose one-sentence instructions are also trained on reworded."""
FILLS = {"filled_harmful": 3, "filled_safe": 2, "attacked": 3}
"""Training variants per template / context (the test part uses one of each)."""


# --- the static table ------------------------------------------------------------------

def token_table(settings: Any) -> np.ndarray:
    """(vocabulary, 384): the float32 MiniLM's pooled output for [CLS] token [SEP]."""
    import onnxruntime as ort

    from feldspar.models.backends.hf_transformers import safe_folder
    from feldspar.models.backends.onnx_embed import graph_path, write_graph
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    folder = safe_folder(locate(find_spec(EMBEDDER, settings)))
    graph = graph_path(folder, settings.home / "cache" / "onnx", EMBEDDER, quantized=False)
    cache = CACHE / f"feldspar-guard-table-{graph.stem}.npy"
    if cache.exists():
        return np.load(cache, allow_pickle=False)
    if not graph.is_file():
        write_graph(folder, graph, quantized=False)
    began = time.perf_counter()
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    rows = []
    for first in range(0, len(vocab), 2048):
        ids = np.arange(first, min(len(vocab), first + 2048), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        (vectors,) = session.run(None, {"input_ids": batch, "attention_mask": np.ones_like(batch)})
        rows.append(vectors)
    table = np.vstack(rows).astype(np.float32)
    print(f"static table {table.shape} built in {time.perf_counter() - began:.1f} s",
          file=sys.stderr)
    np.save(cache, table)
    return table


@dataclass(frozen=True)
class Static:
    weighted: np.ndarray
    """(vocabulary, 384): each token's centred vector times its Zipf weight."""
    norm_table: np.ndarray
    norm_scale: np.ndarray

    @classmethod
    def build(cls, table: np.ndarray) -> Static:
        vocab = len(table)
        centred = table.astype(np.float64) - table[FIRST_WORD:].mean(axis=0)
        rank = np.maximum(np.arange(vocab) - FIRST_WORD + 1, 1)
        weight = SIF / (SIF + 1.0 / (rank * np.log(vocab)))  # SIF on a Zipf frequency
        weight[:SPECIAL_IDS] = 0.0
        weighted = centred * weight[:, None]
        _, _, basis = np.linalg.svd(centred[FIRST_WORD:], full_matrices=False)
        reduced = weighted @ basis[:NORM_DIMS].T
        scale = np.abs(reduced).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        quantized = np.round(reduced / scale[:, None]).astype(np.int8)
        return cls(weighted.astype(np.float32), quantized, scale.astype(np.float32))

    def features(self, ids: np.ndarray) -> np.ndarray:
        """The static block of a window: its weighted sum over the runtime's length."""
        vector = (self.norm_table[ids].astype(np.float32) * self.norm_scale[ids, None]).sum(0)
        length = float(np.sqrt(np.dot(vector, vector)))
        total: np.ndarray = self.weighted[ids].sum(0)
        return total / length if length > 0 else np.zeros_like(total)


# --- windows -----------------------------------------------------------------------------

@dataclass
class Windows:
    texts: list[str]
    ids: list[np.ndarray]
    owner: np.ndarray
    """The example each window belongs to."""
    labels: np.ndarray
    """(windows, risks): 1 where the window carries the risk."""
    scale: np.ndarray
    """LONG or SHORT, as classifier.pieces() yields them."""
    starts: np.ndarray
    """Where each window starts in its example's text."""
    train: np.ndarray
    """(windows, risks): the windows each head is trained on (`counts`, less the jailbreak
    openings hidden in BIPIA contexts for the jailbreak head: they teach injection)."""

    @property
    def counts(self) -> np.ndarray:
        """(windows, risks): the windows whose score counts at run time for each risk."""
        out = np.ones(self.labels.shape, dtype=bool)
        for k, risk in enumerate(RISKS):
            if risk not in SHORT_RISKS:
                out[:, k] = self.scale == LONG
        return out


def window_labels(ex: gd.Example, start: int, end: int) -> list[int]:
    """The example's risks that this window holds. Jailbreak belongs to the whole
    template; harm and injection to the inserted payload, so a window needs half of it
    (or to be half payload, for a payload longer than the window)."""
    out = []
    for risk in RISKS:
        if risk not in ex.risks:
            out.append(0)
        elif risk == "jailbreak" or ex.payload is None:
            out.append(1)
        else:
            a, b = ex.payload
            inside = max(0, min(end, b) - max(start, a))
            out.append(int(inside >= min(b - a, end - start) / 2))
    return out


def cut(examples: Sequence[gd.Example], tokenizer: Any, config: FeatureConfig) -> Windows:
    texts, ids, owner, labels, scales, starts = [], [], [], [], [], []
    for n, ex in enumerate(examples):
        for start, end, tokens, scale in pieces(ex.text, tokenizer, config):
            texts.append(ex.text[start:end])
            ids.append(tokens)
            owner.append(n)
            labels.append(window_labels(ex, start, end))
            scales.append(scale)
            starts.append(start)
    owners = np.array(owner, dtype=int)
    w = Windows(texts, ids, owners, np.array(labels, dtype=int).reshape(-1, len(RISKS)),
                np.array(scales, dtype=int), np.array(starts, dtype=int),
                np.zeros((0, len(RISKS)), dtype=bool))
    hidden = np.array(["-jailbreak-" in ex.kind for ex in examples], dtype=bool)
    w.train = w.counts
    if len(owners):
        w.train[:, RISKS.index("jailbreak")] &= ~hidden[owners]
    return w


@dataclass
class Sentences:
    """The sentences of each text, for the "instruction" head, and which long windows
    hold each (as GuardClassifier.fast() pairs them)."""

    texts: list[str]
    ids: list[np.ndarray]
    owner: np.ndarray
    """The example each sentence belongs to."""
    labels: np.ndarray
    """1 for (half of) an injected payload."""
    document: np.ndarray
    """Whether it is a sentence of a document (a BIPIA context, a Wikipedia paragraph):
    the instruction head learns on these alone (an order in a prompt is no injection, and
    the injection head learns that from the window)."""
    pairs: np.ndarray
    """(pairs, 2): (long window, sentence) for each sentence wholly inside a long window."""


def split_sentences(examples: Sequence[gd.Example], w: Windows, tokenizer: Any,
                    config: FeatureConfig) -> Sentences:
    texts, ids, owner, labels, document, spans = [], [], [], [], [], []
    first: dict[int, int] = {}
    for n, ex in enumerate(examples):
        first[n] = len(texts)
        for a, b, tokens in sentences(ex.text, tokenizer, config.short_tokens,
                                      config.short_overlap):
            texts.append(ex.text[a:b])
            ids.append(tokens)
            owner.append(n)
            hidden = ex.payload is not None and "prompt_injection" in ex.risks
            labels.append(window_labels(ex, a, b)[INJECTION] if hidden else 0)
            document.append(ex.source == gd.FOLDERS["bipia"] or ex.kind == "paragraph")
            spans.append((a, b))
    pairs = []
    for n in np.flatnonzero(w.scale == LONG):
        e = int(w.owner[n])
        start, end = int(w.starts[n]), int(w.starts[n]) + len(w.texts[n])
        last = first[e + 1] if e + 1 in first else len(texts)
        pairs += [(n, j) for j in range(first[e], last)
                  if spans[j][0] >= start and spans[j][1] <= end]
    return Sentences(texts, ids, np.array(owner, dtype=int), np.array(labels, dtype=int),
                     np.array(document, dtype=bool), np.array(pairs, dtype=int).reshape(-1, 2))


def highest(sentence_values: np.ndarray, window_values: np.ndarray, sents: Sentences
            ) -> np.ndarray:
    """Per window, the highest value of the sentences wholly inside it; its own value
    when none is."""
    out = np.full(len(window_values), -np.inf)
    np.maximum.at(out, sents.pairs[:, 0], sentence_values[sents.pairs[:, 1]])
    return np.where(np.isfinite(out), out, window_values)


# --- features ----------------------------------------------------------------------------

def static_block(w: Windows | Sentences, static: Static) -> np.ndarray:
    return np.vstack([static.features(ids) for ids in w.ids])


def ngram_block(w: Windows | Sentences, config: FeatureConfig) -> Any:
    from scipy.sparse import csr_matrix

    rows, cols, values = [], [], []
    for n, text in enumerate(w.texts):
        index, value = ngram_features(text, config)
        rows.append(np.full(len(index), n))
        cols.append(index)
        values.append(value)
    return csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(w.texts), 1 << config.hash_bits))


class EmbeddingCache:
    """MiniLM vectors by text, kept in $TMPDIR between runs (JSON + .npy, no pickle)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.path = CACHE / "feldspar-guard-embeddings"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.with_suffix(".json").exists():
            texts = json.loads(self.path.with_suffix(".json").read_text(encoding="utf-8"))
            matrix = np.load(self.path.with_suffix(".npy"), allow_pickle=False)
            self.vectors = dict(zip(texts, matrix, strict=True))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            from feldspar.models.loading import get_embedder

            began = time.perf_counter()
            vectors = get_embedder(EMBEDDER, settings=self.settings).embed(missing,
                                                                           batch_size=64)
            print(f"embedded {len(missing)} windows in {time.perf_counter() - began:.0f} s",
                  file=sys.stderr)
            self.vectors.update(zip(missing, vectors, strict=True))
            known = list(self.vectors)
            self.path.with_suffix(".json").write_text(json.dumps(known), encoding="utf-8")
            np.save(self.path.with_suffix(".npy"), np.vstack([self.vectors[t] for t in known]))
        return np.vstack([self.vectors[t] for t in texts])


# --- heads -------------------------------------------------------------------------------

def fold_key(ex: gd.Example) -> str:
    """What decides an example's cross-validation fold: its group, except that a context
    with something hidden in it goes by what was hidden, so that out-of-fold scores (and
    the Platt scaling fitted on them) are for attacks never seen, as at test time."""
    if ex.payload is not None and "prompt_injection" in ex.risks:
        return f"hidden\0{ex.text[ex.payload[0]:ex.payload[1]]}"
    return f"{ex.source}\0{ex.group}"


def folds_of(examples: Sequence[gd.Example], owner: np.ndarray) -> np.ndarray:
    fold = np.array([int(hashlib.sha256(f"cv\0{fold_key(ex)}".encode()).hexdigest(), 16)
                     % FOLDS for ex in examples])
    return np.asarray(fold[owner])


def fit_logistic(x: Any, y: np.ndarray, c: float, weight: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(x, y, sample_weight=weight)
    return model.coef_[0], float(model.intercept_[0])


Heads = list[tuple[np.ndarray, float]]
"""(coefficients, bias) of the logistic head of each risk."""


def fit_heads(xs: Sequence[Any], labels: np.ndarray, c: float, weight: np.ndarray,
              rows: np.ndarray) -> Heads:
    """One logistic head per risk, each on its own features `xs[k]` and rows."""
    return [fit_logistic(x[rows[:, k]], labels[rows[:, k], k], c, weight[rows[:, k]])
            for k, x in enumerate(xs)]


def predict(xs: Sequence[Any], heads: Heads) -> np.ndarray:
    return np.stack([x @ coef + bias for x, (coef, bias) in zip(xs, heads, strict=True)],
                    axis=1)


def out_of_fold(xs: Sequence[Any], labels: np.ndarray, c: float, weight: np.ndarray,
                fold: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Every window's logits from heads trained on the other folds."""
    logits = np.zeros(labels.shape)
    for k in range(FOLDS):
        train = fold != k
        heads = fit_heads([x[train] for x in xs], labels[train], c, weight[train], rows[train])
        logits[~train] = predict([x[~train] for x in xs], heads)
    return logits


def platt(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(risks, 2): a, b of sigmoid(a * logit + b), fitted on out-of-fold logits."""
    from sklearn.linear_model import LogisticRegression

    out = []
    for k in range(labels.shape[1]):
        model = LogisticRegression(C=1e4, max_iter=1000).fit(logits[:, k:k + 1], labels[:, k])
        out.append((float(model.coef_[0, 0]), float(model.intercept_[0])))
    return np.array(out)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30, 30))))


def sample_weights(examples: Sequence[gd.Example], owner: np.ndarray) -> np.ndarray:
    """XSTest's look-alike pairs count double: they are the hard cases. A clean BIPIA
    context counts as much as its attacked copies together, so that the kind of context
    says nothing. A long text's windows share its weight (each gets 1/sqrt(windows))."""
    counts = np.bincount(owner, minlength=len(examples))
    copies = FILLS["attacked"] + 1  # BIPIA's attacks, and one hidden jailbreak opening
    per_example = np.array([2.0 if ex.source == gd.FOLDERS["xstest"]
                            else copies if ex.kind.endswith("-clean") else 1.0
                            for ex in examples])
    return np.asarray(per_example[owner] / np.maximum(np.sqrt(counts[owner]), 1.0))


# --- figures -----------------------------------------------------------------------------

def text_max(window_probs: np.ndarray, w: Windows, n: int) -> np.ndarray:
    """Each text's score: its highest window probability among the windows that count."""
    out = np.zeros((n, window_probs.shape[1]))
    counted = np.where(w.counts, window_probs, 0.0)
    for k in range(window_probs.shape[1]):
        np.maximum.at(out[:, k], w.owner, counted[:, k])
    return out


def f1(y: np.ndarray, flagged: np.ndarray) -> float:
    tp = float((y & flagged).sum())
    return 2 * tp / max(1.0, float(y.sum() + flagged.sum()))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |accuracy - confidence| per equal-width bin, weighted."""
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[edges == b].mean() - p[edges == b].mean()) * (edges == b).mean()
                     for b in range(bins) if (edges == b).any()))


def figures(examples: Sequence[gd.Example], scores: np.ndarray, threshold: float = 0.5
            ) -> dict[str, Any]:
    """F1 per risk, flag rates of the benign sets, ECE, per-kind flag rates."""
    y = np.array([[r in ex.risks for r in RISKS] for ex in examples])
    flagged = scores >= threshold
    bipia = np.array([ex.source == gd.FOLDERS["bipia"] for ex in examples])
    out: dict[str, Any] = {}
    for k, risk in enumerate(RISKS):
        mask = bipia if risk == "prompt_injection" else np.ones(len(examples), bool)
        yk, fk, pk = y[mask, k], flagged[mask, k], scores[mask, k]
        out[f"f1_{risk}"] = f1(yk, fk)
        out[f"precision_{risk}"] = float((yk & fk).sum() / max(1, fk.sum()))
        out[f"recall_{risk}"] = float((yk & fk).sum() / max(1, yk.sum()))
        out[f"ece_{risk}"] = ece(yk.astype(float), pk)
        out[f"positives_{risk}"] = int(yk.sum())
    harm_or_jb = flagged[:, :2].any(axis=1)
    for name, mask in (("benign_prompts", [ex.source == gd.FOLDERS["benign"] for ex in examples]),
                       ("xstest_safe", [ex.source == gd.FOLDERS["xstest"] and not ex.risks
                                        for ex in examples])):
        m = np.array(mask)
        out[f"flag_rate_{name}"] = float(harm_or_jb[m].mean())
        out[f"flag_rate_any_{name}"] = float(flagged[m].any(axis=1).mean())
        out[f"rows_{name}"] = int(m.sum())
    out["ece_all"] = ece(y.ravel().astype(float), scores.ravel())
    kinds: dict[str, Any] = {}
    for kind in sorted({f"{ex.source}/{ex.kind}" for ex in examples}):
        m = np.array([f"{ex.source}/{ex.kind}" == kind for ex in examples])
        kinds[kind] = {"n": int(m.sum()), **{r: round(float(flagged[m, k].mean()), 3)
                                             for k, r in enumerate(RISKS)}}
    out["flag_rate_by_kind"] = kinds
    return out


def line(name: str, fig: dict[str, Any], extra: str = "") -> str:
    return (f"{name:22s} F1 harm {fig['f1_harm']:.3f}  jailbreak {fig['f1_jailbreak']:.3f}  "
            f"injection {fig['f1_prompt_injection']:.3f} | flags: benign "
            f"{fig['flag_rate_benign_prompts']:.3f} ({fig['flag_rate_any_benign_prompts']:.3f} "
            f"any)  xstest-safe {fig['flag_rate_xstest_safe']:.3f} "
            f"({fig['flag_rate_any_xstest_safe']:.3f} any){extra}")


# --- the pipeline ------------------------------------------------------------------------

def training_examples(data: Path, *, benign_train: bool, holdout: str | None = None
                      ) -> list[gd.Example]:
    """The train part, BIPIA's train attack strings alone (benign as prompts), train
    contexts with a train jailbreak's opening hidden in them, every one-sentence
    instruction among them rephrased once, and the extra benign texts."""
    rows = [ex for ex in gd.examples(data, **FILLS) if not ex.test]
    if not benign_train:
        rows = [ex for ex in rows if ex.source != gd.FOLDERS["benign"]]
    rows += [ex for ex in gd.attack_prompts(data) + gd.injected_jailbreaks(data)
             if not ex.test]
    if holdout is not None:
        rows = [ex for ex in rows if ex.source != holdout]
    rows += gd.rephrased([ex for ex in rows if ex.kind in REPHRASED])
    return rows + gd.extra_benign(data)


def natural(examples: Sequence[gd.Example], data: Path) -> np.ndarray:
    """Which examples are the train part as it is, without the added variants (more
    fillings, attacks, rewordings): Platt scaling is fitted on these, so that the extra
    positives that training sees do not inflate the probabilities."""
    plain = {ex.text for ex in gd.examples(data)} | {ex.text for ex in gd.extra_benign(data)} \
        | {ex.text for ex in gd.attack_prompts(data)}
    return np.array([ex.text in plain and ex.kind != "rephrased" for ex in examples])


def calibration(logits: np.ndarray, w: Windows, examples: Sequence[gd.Example],
                keep: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Platt scaling of texts: each kept example's highest out-of-fold logit over its
    windows that count (or `rows`), against its own risks."""
    highest = np.full((len(examples), len(RISKS)), -np.inf)
    counted = np.where(w.counts if rows is None else rows, logits, -np.inf)
    for k in range(len(RISKS)):
        np.maximum.at(highest[:, k], w.owner, counted[:, k])
    labels = np.array([[r in ex.risks for r in RISKS] for ex in examples], dtype=int)
    rows = keep & np.isfinite(highest).all(axis=1)
    return platt(highest[rows], labels[rows])


@dataclass
class Fast:
    """The fast stage: a logistic head per risk on [static, n-grams] (injection's with its
    window's highest sentence "instruction" logit as one more feature), and the
    instruction head on sentences."""

    heads: Heads
    instruction: tuple[np.ndarray, float]
    oof: np.ndarray
    """(windows, risks): out-of-fold logits of the training windows."""


def fast_inputs(x: Any, top: np.ndarray) -> list[Any]:
    """Each risk's features: injection's have the highest instruction logit appended."""
    from scipy.sparse import csr_matrix, hstack

    return [x, x, hstack([x, csr_matrix(top[:, None])]).tocsr()]


def fit_fast(x: Any, sents: Sentences, xs: Any, w: Windows, examples: Sequence[gd.Example],
             c: float, weight: np.ndarray) -> Fast:
    fold = folds_of(examples, w.owner)
    sentence_fold = folds_of(examples, sents.owner)
    top = np.zeros(len(w.texts))
    for k in range(FOLDS):
        train = (sentence_fold != k) & sents.document
        coef, bias = fit_logistic(xs[train], sents.labels[train], c, np.ones(train.sum()))
        fold_top = highest(xs @ coef + bias, x @ coef + bias, sents)
        top[fold == k] = fold_top[fold == k]
    instruction = fit_logistic(xs[sents.document], sents.labels[sents.document], c,
                               np.ones(sents.document.sum()))
    inputs = fast_inputs(x, top)
    oof = out_of_fold(inputs, w.labels, c, weight, fold, w.train)
    return Fast(fit_heads(inputs, w.labels, c, weight, w.train), instruction, oof)


def apply_fast(fast: Fast, x: Any, sents: Sentences, xs: Any) -> np.ndarray:
    coef, bias = fast.instruction
    return predict(fast_inputs(x, highest(xs @ coef + bias, x @ coef + bias, sents)),
                   fast.heads)


def features(w: Windows | Sentences, static: Static, config: FeatureConfig) -> Any:
    from scipy.sparse import csr_matrix, hstack

    return hstack([csr_matrix(static_block(w, static) * config.static_weight),
                   ngram_block(w, config)]).tocsr()


def train(examples: list[gd.Example], w: Windows, sents: Sentences, static: Static,
          config: FeatureConfig, minilm: np.ndarray, *, c_fast: float, c_slow: float,
          band: tuple[float, float], calibrate: np.ndarray, info: dict[str, Any]
          ) -> GuardWeights:
    fold = folds_of(examples, w.owner)
    weight = sample_weights(examples, w.owner)
    fast = fit_fast(features(w, static, config), sents, features(sents, static, config), w,
                    examples, c_fast, weight)
    # MiniLM only ever sees long-scale windows, so its head learns on those alone.
    slow_rows = w.train & (w.scale == LONG)[:, None]
    slow_x = np.hstack([minilm, fast.oof])
    oof_slow = out_of_fold([slow_x] * len(RISKS), w.labels, c_slow, weight, fold, slow_rows)
    slow = fit_heads([slow_x] * len(RISKS), w.labels, c_slow, weight, slow_rows)
    dims, buckets = static.weighted.shape[1], 1 << config.hash_bits
    columns = [coef[: dims + buckets] for coef, _ in fast.heads] + [fast.instruction[0]]
    coef = np.stack(columns, axis=1)
    weights = GuardWeights(
        config=config,
        token_scores=(static.weighted @ coef[:dims]) * config.static_weight,
        norm_table=static.norm_table, norm_scale=static.norm_scale,
        ngram_weights=coef[dims:],
        fast_bias=np.array([b for _, b in fast.heads] + [fast.instruction[1]]),
        instruction_coef=np.array([coef[-1] if k == INJECTION else 0.0
                                   for k, (coef, _) in enumerate(fast.heads)]),
        fast_platt=calibration(fast.oof, w, examples, calibrate),
        band=np.array([band if risk in ESCALATED else (1.0, 0.0) for risk in RISKS]),
        slow_coef=np.stack([c for c, _ in slow], axis=1),
        slow_bias=np.array([b for _, b in slow]),
        slow_platt=calibration(oof_slow, w, examples, calibrate, slow_rows), info=info)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=gd.DEFAULT_DATA)
    parser.add_argument("--compare", action="store_true",
                        help="Also train and test options (a)-(d) and print their figures.")
    parser.add_argument("--holdout", choices=tuple(gd.FOLDERS.values()),
                        help="Only compare the options trained without this dataset and "
                             "tested on the test part plus all of it (writes no weights).")
    parser.add_argument("--no-benign-train", action="store_true",
                        help="Train on no benign_prompts rows (then all 332 are unseen).")
    parser.add_argument("--c-fast", type=float, default=3.0)
    parser.add_argument("--c-slow", type=float, default=1.0)
    parser.add_argument("--escalate", action="store_true",
                        help="Ship the cascade: send uncertain short windows to MiniLM (off "
                             "by default: it cost false positives on the test part).")
    parser.add_argument("--band", type=float, nargs=2, default=(0.15, 0.85),
                        help="With --escalate: fast probabilities escalated (low high).")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from feldspar.config import load_settings

    settings = load_settings()
    config = FeatureConfig()
    static = Static.build(token_table(settings))
    tokenizer = _tokenizer(settings)
    examples = training_examples(args.data, benign_train=not args.no_benign_train,
                                 holdout=args.holdout)
    w = cut(examples, tokenizer, config)
    sents = split_sentences(examples, w, tokenizer, config)
    print(f"{len(examples)} training texts, {len(w.texts)} windows, {len(sents.texts)} "
          "sentences of long windows", file=sys.stderr)
    cache = EmbeddingCache(settings)
    minilm = cache.embed(w.texts)
    test = [ex for ex in gd.examples(args.data) if ex.test or ex.source == args.holdout]
    if args.holdout:
        report = compare(examples, w, sents, static, config, minilm, test, cache, tokenizer,
                         args)
        print(save(f"guard_holdout_{args.holdout}", {"holdout": args.holdout,
                                                     "compare": report}))
        return

    counts = {src: sum(ex.source == src for ex in examples)
              for src in dict.fromkeys(ex.source for ex in examples)}
    info = {"date": time.strftime("%Y-%m-%d"), "embedder": EMBEDDER,
            "datasets": {name: f"{folder}/SOURCE.md" for name, folder in gd.FOLDERS.items()}
            | {"extra_benign": "banking77 (train.csv), squad_v1_dev_subset_xquad_en"},
            "train_texts_by_source": counts, "train_windows": len(w.texts),
            "train_positive_windows": {r: int(w.labels[:, k].sum()) for k, r in
                                       enumerate(RISKS)},
            "split": f"sha256(source + NUL + group) % 100 < {gd.TEST_SHARE} is test; groups "
                     "as in bench/guard_data.py", "variants_per_template_or_context": FILLS,
            "benign_prompts_in_training": not args.no_benign_train,
            "static_table": f"fp32 {EMBEDDER} on [CLS] token [SEP], centred, SIF weight "
                            f"{SIF}/({SIF}+p) with Zipf p by vocabulary rank, length from "
                            f"a {NORM_DIMS}-d int8 PCA",
            "heads": {"fast": f"logistic C={args.c_fast}", "slow": f"logistic C={args.c_slow}",
                      "escalation_band": list(args.band) if args.escalate else None}}
    band = tuple(args.band) if args.escalate else (1.0, 0.0)  # low > high: none escalated
    weights = train(examples, w, sents, static, config, minilm, c_fast=args.c_fast,
                    c_slow=args.c_slow, band=band,
                    calibrate=natural(examples, args.data), info=info)
    weights.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)

    classifier = GuardClassifier.load(settings, args.out)
    began = time.perf_counter()
    scores = classifier.score([ex.text for ex in test])
    elapsed = time.perf_counter() - began
    report: dict[str, Any] = {"test": figures(test, scores),
                              "test_texts": len(test), "escalated_windows": classifier.escalated,
                              "seconds": elapsed}
    print(line("packaged", report["test"],
               f" | escalated {classifier.escalated} windows"))
    if args.no_benign_train:
        rows = gd.benign(args.data)
        all_scores = classifier.score([ex.text for ex in rows])
        report["benign_prompts_all_rows"] = {
            "rows": len(rows), "flag_rate": float((all_scores[:, :2] >= 0.5).any(axis=1).mean()),
            "flag_rate_any": float((all_scores >= 0.5).any(axis=1).mean())}
        print(f"benign_prompts, all {len(rows)} rows (none trained on): "
              f"{report['benign_prompts_all_rows']}")
    report["bipia_attack_holdout"] = bipia_figures(test, scores)
    print(f"BIPIA (test contexts, unseen attack strings): {report['bipia_attack_holdout']}")
    hidden = [ex for ex in gd.injected_jailbreaks(args.data) if ex.test]
    found = classifier.score([ex.text for ex in hidden])[:, RISKS.index("prompt_injection")]
    report["hidden_jailbreak_openings_recall"] = float((found >= 0.5).mean())
    print(f"test contexts with a test jailbreak's opening hidden in them: "
          f"{report['hidden_jailbreak_openings_recall']:.3f} flagged as prompt_injection "
          f"({len(hidden)} texts)")
    if args.compare:
        report["compare"] = compare(examples, w, sents, static, config, minilm, test, cache,
                                    tokenizer, args)
    weights.info["test_figures"] = {k: v for k, v in report["test"].items()
                                    if k != "flag_rate_by_kind"}
    weights.save(args.out)
    name = "guard_training_no_benign" if args.no_benign_train else "guard_training"
    print(save(name, {"config": asdict(config), **report}))


def bipia_figures(test: Sequence[gd.Example], scores: np.ndarray) -> dict[str, Any]:
    k = RISKS.index("prompt_injection")
    out = {}
    for task in ("email", "table", "code", ""):
        m = np.array([ex.source == gd.FOLDERS["bipia"] and ex.kind.startswith(task)
                      for ex in test])
        y = np.array([bool(ex.risks) for ex in test])[m]
        flagged = scores[m, k] >= 0.5
        out[task or "all"] = {"f1": round(f1(y, flagged), 3),
                              "recall": round(float(flagged[y].mean()), 3),
                              "clean_flagged": round(float(flagged[~y].mean()), 3),
                              "attacked": int(y.sum()), "clean": int((~y).sum())}
    return out


def _tokenizer(settings: Any) -> Any:
    from tokenizers import Tokenizer

    from feldspar.models.backends.hf_transformers import safe_folder
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    folder = safe_folder(locate(find_spec(EMBEDDER, settings)))
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def compare(examples: list[gd.Example], w: Windows, sents: Sentences, static: Static,
            config: FeatureConfig, minilm: np.ndarray, test: list[gd.Example],
            cache: EmbeddingCache, tokenizer: Any, args: Any) -> dict[str, Any]:
    """Options (a)-(d), each trained on the same windows and scored on the test texts
    (a text scores its most risky window; Platt scaling on out-of-fold scores). Options
    (a)-(c) and d_minilm+static are plain heads; d_static+ngram adds the sentence
    instruction feature for injection, as the packaged classifier does."""
    from scipy.sparse import csr_matrix, hstack

    tw = cut(test, tokenizer, config)
    ts = split_sentences(test, tw, tokenizer, config)
    fold, weight = folds_of(examples, w.owner), sample_weights(examples, w.owner)
    keep = natural(examples, args.data)
    blocks = {"static": (static_block(w, static), static_block(tw, static)),
              "ngram": (ngram_block(w, config), ngram_block(tw, config)),
              "minilm": (minilm, cache.embed(tw.texts))}
    out: dict[str, Any] = {}

    def report(name: str, probs: np.ndarray, extra: str = "") -> None:
        out[name] = figures(test, text_max(probs, tw, len(test)))
        print(line(name, out[name], extra))

    for name, parts in {"a_minilm": ["minilm"], "b_static": ["static"], "c_ngram": ["ngram"],
                        "d_minilm+static": ["minilm", "static"]}.items():
        xtr = hstack([csr_matrix(blocks[p][0]) for p in parts]).tocsr()
        xte = hstack([csr_matrix(blocks[p][1]) for p in parts]).tocsr()
        c = args.c_slow if parts == ["minilm"] else args.c_fast
        oof = out_of_fold([xtr] * len(RISKS), w.labels, c, weight, fold, w.train)
        heads = fit_heads([xtr] * len(RISKS), w.labels, c, weight, w.train)
        ab = calibration(oof, w, examples, keep)
        report(name, sigmoid(predict([xte] * len(RISKS), heads) * ab[:, 0] + ab[:, 1]))

    fast = fit_fast(features(w, static, config), sents, features(sents, static, config), w,
                    examples, args.c_fast, weight)
    fast_test = apply_fast(fast, features(tw, static, config), ts, features(ts, static, config))
    ab_fast = calibration(fast.oof, w, examples, keep)
    fast_probs = sigmoid(fast_test * ab_fast[:, 0] + ab_fast[:, 1])
    report("d_static+ngram", fast_probs)

    long = tw.scale == LONG
    slow_rows = w.train & (w.scale == LONG)[:, None]
    slow_x = np.hstack([minilm, fast.oof])
    heads = fit_heads([slow_x] * len(RISKS), w.labels, args.c_slow, weight, slow_rows)
    ab = calibration(out_of_fold([slow_x] * len(RISKS), w.labels, args.c_slow, weight, fold,
                                 slow_rows), w, examples, keep, slow_rows)
    slow = sigmoid(predict([np.hstack([blocks["minilm"][1], fast_test])] * len(RISKS), heads)
                   * ab[:, 0] + ab[:, 1])
    report("d_stacked (all MiniLM)", np.where(long[:, None], slow, fast_probs))
    lengths = np.array([len(ids) for ids in tw.ids])
    columns = [RISKS.index(r) for r in ESCALATED]
    for low, high in ((0.1, 0.9), (0.15, 0.85), (0.25, 0.75), (0.35, 0.65)):
        for longest in (config.window_tokens, config.escalate_max_tokens):
            unsure = ((fast_probs[:, columns] >= low) & (fast_probs[:, columns] <= high)
                      ).any(axis=1) & (lengths <= longest) & long
            name = f"d_cascade_{low}-{high}_upto{longest}"
            report(name, np.where(unsure[:, None], slow, fast_probs),
                   f" | escalated {unsure.sum()} of {len(unsure)} windows, "
                   f"{lengths[unsure].sum()} tokens")
            out[name]["escalated_windows"] = int(unsure.sum())
            out[name]["escalated_tokens"] = int(lengths[unsure].sum())
    return out


if __name__ == "__main__":
    main()
