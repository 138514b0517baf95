"""Ingest wall time of one corpus with one embedding model (all-MiniLM-L6-v2): Feldspar,
LlamaIndex (VectorStoreIndex), Haystack (InMemoryDocumentStore +
SentenceTransformersDocumentEmbedder), and the floor: sentence-transformers alone over
Feldspar's chunks. Also Feldspar re-ingesting the unchanged corpus.

Each run is a fresh process; "ingest" is the time of the ingest call with the model
loaded, "process" the whole process (imports and model load included). Medians of
--rounds runs, taken in turn so that machine noise spreads over all tools.

    python bench/ingest_speed.py [--data ../shared/data] [--rounds 3] [--copies 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, save

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data"
DATASETS = ("squad_v1_dev_subset_xquad_en", "piaf_fr")
TOOLS = ("feldspar", "llamaindex", "haystack", "floor")


def minilm_folder() -> str:
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    return str(locate(find_spec("all-minilm-l6-v2", load_settings())))


def make_corpus(data: Path, root: Path, copies: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for name in DATASETS:
        with (data / name / "passages.jsonl").open(encoding="utf-8") as fh:
            passages = [json.loads(line) for line in fh if line.strip()]
        for copy in range(copies):
            for p in passages:
                # Copies differ by a line, so that no tool can skip them as duplicates.
                (root / f"{p['passage_id']}-{copy}.txt").write_text(
                    f"{p['title']} ({copy})\n\n{p['text']}\n", encoding="utf-8")
                n += 1
    return n


def run_feldspar(corpus: Path, home: Path) -> dict[str, float]:
    os.environ["FELDSPAR_HOME"] = str(home)
    from feldspar import Workspace

    with Workspace() as ws:
        ws.embedder.load()
        began = time.perf_counter()
        report = ws.ingest([corpus], "bench")
        first = time.perf_counter() - began
        began = time.perf_counter()
        again = ws.ingest([corpus], "bench")
        second = time.perf_counter() - began
        assert len(again.unchanged) == len(report.added)
        texts = [c.embed_text() for batch in ws.store.iter_chunks("bench") for c in batch]
    (home / "chunks.json").write_text(json.dumps(texts))
    return {"ingest": first, "reingest": second, "chunks": report.chunks}


def run_llamaindex(corpus: Path, folder: str) -> dict[str, float]:
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    Settings.tokenizer = tokenizer.tokenize
    Settings.node_parser = SentenceSplitter(chunk_size=256, chunk_overlap=32,
                                            tokenizer=tokenizer.tokenize)
    Settings.embed_model = HuggingFaceEmbedding(model_name=folder, device="cpu")
    began = time.perf_counter()
    documents = SimpleDirectoryReader(str(corpus)).load_data()
    index = VectorStoreIndex.from_documents(documents)
    seconds = time.perf_counter() - began
    return {"ingest": seconds, "chunks": len(index.docstore.docs)}


def run_haystack(corpus: Path, folder: str) -> dict[str, float]:
    from haystack import Pipeline
    from haystack.components.converters import TextFileToDocument
    try:  # Haystack 3 moved it into an integration package
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
        )
    except ImportError:
        from haystack.components.embedders import SentenceTransformersDocumentEmbedder
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    embedder = SentenceTransformersDocumentEmbedder(model=folder, device=None)
    pipe = Pipeline()
    pipe.add_component("convert", TextFileToDocument())
    pipe.add_component("split", DocumentSplitter(split_by="word", split_length=200,
                                                 split_overlap=20))
    pipe.add_component("embed", embedder)
    pipe.add_component("write", DocumentWriter(document_store=store))
    pipe.connect("convert", "split")
    pipe.connect("split", "embed")
    pipe.connect("embed", "write")
    pipe.warm_up()
    files = sorted(corpus.glob("*.txt"))
    began = time.perf_counter()
    pipe.run({"convert": {"sources": files}})
    return {"ingest": time.perf_counter() - began, "chunks": store.count_documents()}


def run_floor(chunks_file: Path, folder: str) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer

    texts = json.loads(chunks_file.read_text())
    model = SentenceTransformer(folder, device="cpu")
    began = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress_bar=False)
    return {"ingest": time.perf_counter() - began, "chunks": len(texts)}


def child(tool: str, corpus: Path, work: Path) -> None:
    folder = minilm_folder()
    if tool == "feldspar":
        result = run_feldspar(corpus, work / "home")
    elif tool == "llamaindex":
        result = run_llamaindex(corpus, folder)
    elif tool == "haystack":
        result = run_haystack(corpus, folder)
    else:
        result = run_floor(work / "home" / "chunks.json", folder)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("FELDSPAR_BENCH_DATA", DEFAULT_DATA)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=1,
                        help="How many times to repeat the passages (for a larger corpus).")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.corpus, args.work)
        return
    tools = args.tools.split(",")
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        files = make_corpus(args.data, corpus, args.copies)
        for round_ in range(args.rounds):
            for tool in tools:
                work = Path(tmp) / f"work-{round_}"
                began = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", tool, "--corpus", str(corpus),
                     "--work", str(work)], capture_output=True, text=True, check=False,
                    env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
                if out.returncode != 0:
                    sys.exit(f"{tool} failed:\n{out.stderr[-3000:]}")
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["process"] = time.perf_counter() - began
                runs[tool].append(result)
                print(f"round {round_ + 1} {tool}: {result}", file=sys.stderr)
    summary = {t: {key: median([r[key] for r in rs]) for key in rs[0]} for t, rs in runs.items()}
    base = summary["feldspar"]["ingest"]
    print(f"\n{files} files; medians of {args.rounds} rounds")
    print(f"  {'tool':<11} {'chunks':>7} {'ingest s':>9} {'process s':>10} {'vs feldspar':>12}")
    for tool, m in summary.items():
        print(f"  {tool:<11} {m['chunks']:>7.0f} {m['ingest']:>9.2f} {m['process']:>10.2f} "
              f"{m['ingest'] / base:>11.2f}x")
    if "feldspar" in summary:
        f = summary["feldspar"]
        print(f"  feldspar re-ingest of the unchanged corpus: {f['reingest']:.2f} s "
              f"({100 * f['reingest'] / f['ingest']:.1f}% of the first ingest)")
    print(save("ingest_speed", {"files": files, "rounds": args.rounds, "runs": runs,
                                "medians": summary}))


if __name__ == "__main__":
    main()
