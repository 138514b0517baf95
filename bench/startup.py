"""Start-up cost and memory: `import feldspar`, `feldspar --help`, and the peak memory of a
one-shot `feldspar chat` with the default model. Each figure is the median of fresh
processes; the bare interpreter's start is measured alongside for reference.

    python bench/startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from common import feldspar_bin, median, save

PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def wall(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def peak_mb(argv: list[str]) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK, *argv], check=True, capture_output=True,
                         text=True)
    return int(out.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    runs: dict[str, list[float]] = {"python": [], "import": [], "help": []}
    for _ in range(args.rounds):
        runs["python"].append(wall([py, "-c", "pass"]))
        runs["import"].append(wall([py, "-c", "import feldspar"]))
        runs["help"].append(wall([feldspar_bin(), "--help"]))
    chat = [feldspar_bin(), "chat", "Name three primary colors.", "--max-tokens", "64"]
    peaks = [peak_mb(chat) for _ in range(3)]
    med = {k: median(v) * 1000 for k, v in runs.items()}
    result = {"rounds": args.rounds, "median_ms": med,
              "import_ms_over_bare_python": med["import"] - med["python"],
              "chat_peak_rss_mb": peaks, "median_chat_peak_rss_mb": median(peaks)}
    save("startup", result)
    print(json.dumps({k: result[k] for k in ("median_ms", "import_ms_over_bare_python",
                                             "median_chat_peak_rss_mb")}, indent=2))


if __name__ == "__main__":
    main()
