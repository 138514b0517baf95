"""Retrieval quality: recall@1/5/10 and MRR@10 of the gold passage for SQuAD (English) and
PIAF (French) questions, in Feldspar's dense, lexical and hybrid modes, and LlamaIndex's
default retriever (VectorStoreIndex) with the same embedding model.

Every passage is written as a file ("title", blank line, text) and goes through each
tool's own ingest, so chunking is part of what is measured.

    python bench/retrieval.py [--data ../shared/data] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import save

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("squad_v1_dev_subset_xquad_en", "piaf_fr")
K = 10


def load(folder: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    def rows(name: str) -> list[dict[str, str]]:
        with (folder / name).open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    return rows("passages.jsonl"), rows("questions.jsonl")


def write_corpus(passages: list[dict[str, str]], root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for p in passages:
        (root / f"{p['passage_id']}.txt").write_text(f"{p['title']}\n\n{p['text']}\n",
                                                     encoding="utf-8")
    return root


def score(ranked: list[list[str]], gold: list[str]) -> dict[str, float]:
    """recall@1, @5, @10 and MRR@10 over questions, given each one's ranked passage ids."""
    ranks = []
    for ids, want in zip(ranked, gold, strict=True):
        unique = list(dict.fromkeys(ids))  # several chunks of one passage count once
        ranks.append(unique.index(want) + 1 if want in unique[:K] else None)
    n = len(ranks)
    return {"recall@1": sum(r == 1 for r in ranks) / n,
            "recall@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "recall@10": sum(r is not None for r in ranks) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n,
            "questions": n}


def feldspar_runs(corpus: Path, questions: list[str], home: Path
                  ) -> dict[str, list[list[str]]]:
    os.environ["FELDSPAR_HOME"] = str(home)
    from feldspar import Workspace
    from feldspar.retrieve import search

    results: dict[str, list[list[str]]] = {}
    with Workspace() as ws:
        ws.ingest([corpus], "bench")
        for mode in ("dense", "lexical", "hybrid"):
            results[mode] = [[Path(h.chunk.path or "").stem
                              for h in ws.search(q, k=K, collection="bench",
                                                 mode=mode)]  # type: ignore[arg-type]
                             for q in questions]
        results["hybrid rrf"] = [[Path(h.chunk.path or "").stem for h in search(
            ws.store, ws.embedder, "bench", q, k=K, fusion="rrf")] for q in questions]
    return results


def llamaindex_run(corpus: Path, questions: list[str], model_folder: str) -> list[list[str]]:
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)
    # The same tokenizer and budget as Feldspar's chunker, not tiktoken (which downloads).
    Settings.tokenizer = tokenizer.tokenize
    Settings.node_parser = SentenceSplitter(chunk_size=256, chunk_overlap=32,
                                            tokenizer=tokenizer.tokenize)
    Settings.embed_model = HuggingFaceEmbedding(model_name=model_folder, device="cpu")
    documents = SimpleDirectoryReader(str(corpus)).load_data()
    index = VectorStoreIndex.from_documents(documents)
    retriever = index.as_retriever(similarity_top_k=K)
    return [[Path(n.metadata["file_name"]).stem for n in retriever.retrieve(q)]
            for q in questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("FELDSPAR_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--no-peers", action="store_true", help="Skip LlamaIndex.")
    args = parser.parse_args()
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    model_folder = str(locate(find_spec("all-minilm-l6-v2", load_settings())))
    report: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATASETS:
            passages, questions = load(args.data / name)
            corpus = write_corpus(passages, Path(tmp) / name)
            texts = [q["question"] for q in questions]
            gold = [q["passage_id"] for q in questions]
            began = time.perf_counter()
            runs = feldspar_runs(corpus, texts, Path(tmp) / f"home-{name}")
            report[name] = {f"feldspar {mode}": score(r, gold) for mode, r in runs.items()}
            print(f"{name}: feldspar {time.perf_counter() - began:.0f} s", file=sys.stderr)
            if not args.no_peers:
                began = time.perf_counter()
                report[name]["llamaindex default"] = score(
                    llamaindex_run(corpus, texts, model_folder), gold)
                print(f"{name}: llamaindex {time.perf_counter() - began:.0f} s",
                      file=sys.stderr)
    for name, rows in report.items():
        print(f"\n{name}")
        print(f"  {'system':<22} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
        for system, m in rows.items():
            print(f"  {system:<22} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} "
                  f"{m['recall@10']:>6.3f} {m['mrr@10']:>7.3f}")
    print(save("retrieval", {"k": K, "results": report}))


if __name__ == "__main__":
    main()
