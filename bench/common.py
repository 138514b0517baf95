"""Helpers shared by the benchmarks: medians, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
DEFAULT_DATA = Path(os.environ.get("FELDSPAR_DATA") or os.environ.get("FELDSPAR_BENCH_DATA")
                    or Path(__file__).resolve().parents[2] / "shared" / "data")
"""The shared evaluation data: ../shared/data beside the repository, or $FELDSPAR_DATA."""


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
            **data}
    path.write_text(json.dumps(data, indent=2))
    return path


def feldspar_bin() -> str:
    return str(Path(sys.executable).with_name("feldspar"))


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kwargs)
