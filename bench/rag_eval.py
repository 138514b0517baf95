"""Answer quality of `ask` on SQuAD (English) and PIAF (French), through `feldspar eval rag`.

For each dataset, a seeded sample of questions is asked of a collection holding the
passages of four fifths of the articles; the questions of the other articles are the
unanswerable ones. Reported: citation validity (must be 1.0), recall@k, answer exact
match / F1 / contains-gold, citation precision and recall, abstention on unanswerable
questions, false abstention on answerable ones, and latency.

    python bench/rag_eval.py [--data ../shared/data] [--limit 150] [-m MODEL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from common import RESULTS, feldspar_bin, save
from retrieval import DATASETS, DEFAULT_DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("-m", "--model", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FELDSPAR_HOME": str(Path(tmp) / "home")}
        for name in DATASETS:
            out = RESULTS / f"rag_eval_{name}{'_' + args.model if args.model else ''}.json"
            RESULTS.mkdir(exist_ok=True)
            argv = [feldspar_bin(), "eval", "rag", "--dataset", str(args.data / name),
                    "--limit", str(args.limit), "--output", str(out)]
            if args.model:
                argv += ["-m", args.model]
            done = subprocess.run(argv, env=env, text=True, capture_output=True)
            print(f"== {name}\n{done.stdout}{done.stderr}")
            if done.returncode not in (0, 3):
                raise SystemExit(done.returncode)
            report = json.loads(out.read_text())
            results[name] = dict(report["metrics"])
    save("rag_eval" + (f"_{args.model}" if args.model else ""),
         {"limit": args.limit, "model": args.model, "metrics": results})


if __name__ == "__main__":
    main()
