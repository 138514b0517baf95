"""Run every benchmark in turn (`make bench`); results land in bench/results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

for script in ("startup.py", "generation.py", "embed_speed.py", "retrieval.py",
               "ingest_speed.py", "ingest_memory.py", "search_latency.py", "grounding.py",
               "relevance.py", "ask_latency.py", "rag_eval.py", "guard_rules.py",
               "guard_speed.py", "guard_eval.py", "classify_bench.py", "serve_bench.py"):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True, cwd=HERE)
