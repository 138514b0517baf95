"""Peak memory of `feldspar ingest` over a synthetic corpus of --chunks chunks (default
100,000): Markdown files whose sections each become one short chunk, embedded with the
default embedder. The peak resident memory of the ingest process and of its parser child
is sampled every 50 ms.

    python bench/ingest_memory.py [--chunks 100000] [--per-file 50]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import feldspar_bin, save

WORDS = ["invoice", "payment", "refund", "account", "card", "transfer", "balance", "fee",
         "limit", "branch", "loan", "mortgage", "savings", "deposit", "statement", "overdraft",
         "interest", "rate", "pin", "chip", "contactless", "travel", "insurance", "claim",
         "policy", "premium", "renewal", "address", "phone", "email", "login"]


def make_corpus(root: Path, chunks: int, per_file: int) -> int:
    rng = random.Random(0)
    files = 0
    for start in range(0, chunks, per_file):
        sections = [f"## Section {start + i}\n\n" + " ".join(rng.choices(WORDS, k=12)) + "."
                    for i in range(min(per_file, chunks - start))]
        (root / f"doc{files:05}.md").write_text("\n\n".join(sections) + "\n")
        files += 1
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--per-file", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        files = make_corpus(corpus, args.chunks, args.per_file)
        env = {**os.environ, "FELDSPAR_HOME": str(Path(tmp) / "home")}
        began = time.perf_counter()
        # The report goes to a file: a pipe nobody reads until the end would fill and stall.
        report_file = (Path(tmp) / "report.json").open("w+")
        proc = subprocess.Popen([feldspar_bin(), "ingest", str(corpus), "--json"], env=env,
                                stdout=report_file, stderr=subprocess.DEVNULL, text=True)
        main_proc = psutil.Process(proc.pid)
        peak_main = peak_child = 0
        while proc.poll() is None:
            try:
                peak_main = max(peak_main, main_proc.memory_info().rss)
                for child in main_proc.children(recursive=True):
                    peak_child = max(peak_child, child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        report_file.seek(0)
        out = report_file.read()
        report_file.close()
        if proc.returncode != 0:
            sys.exit(f"ingest failed with status {proc.returncode}: {out[-2000:]}")
        import json

        report = json.loads(out)
        db_mb = (Path(tmp) / "home" / "feldspar.db").stat().st_size / 2**20
    result = {"files": files, "chunks": report["chunks"], "seconds": seconds,
              "peak_rss_mb": peak_main / 2**20, "parser_peak_rss_mb": peak_child / 2**20,
              "database_mb": db_mb}
    print(f"{result['chunks']} chunks from {files} files in {seconds:.0f} s "
          f"({result['chunks'] / seconds:.0f} chunks/s); peak RSS {result['peak_rss_mb']:.0f} "
          f"MB (parser child {result['parser_peak_rss_mb']:.0f} MB); database {db_mb:.0f} MB")
    print(save("ingest_memory", result))


if __name__ == "__main__":
    main()
