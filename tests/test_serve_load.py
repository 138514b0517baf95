"""A bounded load test on loopback: 16 streams at once for 60 seconds against the real
packaged model, with the guard on. No 5xx, every stream ends with its one [DONE], and the
server's memory stays within a stated bound."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from feldspar.config import Settings

from .serving import KEY, MODEL, running

pytestmark = pytest.mark.integration

CLIENTS = 16
SECONDS = 60.0
MEMORY_GROWTH_MB = 150
"""The most the process may grow from the end of the warm-up to the end of the run."""


def test_sixteen_streams_for_a_minute(tmp_path: Path) -> None:
    process = psutil.Process()
    statuses: Counter[int] = Counter()
    unfinished: list[str] = []
    lock = threading.Lock()
    with running(Settings(home=tmp_path, api_keys=KEY)) as url:  # type: ignore[arg-type]
        def stream(n: int) -> None:
            body = {"model": MODEL, "max_tokens": 32, "stream": True, "temperature": 0.7,
                    "messages": [{"role": "user", "content": f"Tell me fact number {n} "
                                  "about the sea."}]}
            with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {KEY}"}) as c, \
                    c.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                lines = [line for line in response.iter_lines() if line.startswith("data: ")]
            with lock:
                statuses[response.status_code] += 1
                if response.status_code == 200 and lines.count("data: [DONE]") != 1:
                    unfinished.append(lines[-1] if lines else "(nothing)")

        for n in range(4):  # warm-up: the model, the guard, the connection pool
            stream(n)
        before = process.memory_info().rss
        deadline = time.monotonic() + SECONDS

        def client(i: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                stream(i * 1000 + n)
                n += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        grown = (process.memory_info().rss - before) / 1e6
    served = sum(statuses.values()) - 4
    print(f"{served} streams in {SECONDS:g} s by {CLIENTS} clients; statuses {dict(statuses)}; "
          f"memory +{grown:.0f} MB")
    assert not any(status >= 500 for status in statuses), statuses
    assert statuses[200] >= CLIENTS + 4  # every client was served, at least once
    assert not unfinished
    assert grown < MEMORY_GROWTH_MB
