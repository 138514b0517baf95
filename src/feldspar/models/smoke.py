"""A one-token generation in a child process, so that a backend that crashes the process
(llama.cpp built for instructions this CPU cannot run dies with SIGILL) is reported clearly
instead of killing the caller."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass

from feldspar.errors import ModelError

REBUILD = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON '
    '-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" '
    "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python"
)

_CHILD = """
import json, sys
from feldspar.models import get_model
reply = get_model(sys.argv[1] or None).complete("Hi", max_tokens=1, temperature=0)
print(json.dumps({"text": reply.text, "tokens": reply.usage.completion_tokens}))
"""


@dataclass(frozen=True)
class SmokeResult:
    model: str
    text: str
    tokens: int


def smoke_test(model: str | None = None, timeout: float = 300.0) -> SmokeResult:
    """Generate one token with `model` in a child process; raise `ModelError` on a crash."""
    try:
        # -P: the current directory must not shadow modules (a stray ./json.py).
        done = subprocess.run([sys.executable, "-P", "-c", _CHILD, model or ""],
                              capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ModelError(f"The one-token smoke test did not finish in {timeout:.0f} s") from exc
    if done.returncode < 0:
        sig = signal.Signals(-done.returncode)
        if sig == signal.SIGILL:
            raise ModelError(
                "llama.cpp crashed with SIGILL (illegal instruction): llama-cpp-python was "
                "built for CPU instructions this machine cannot run; rebuild it portably: "
                + REBUILD)
        raise ModelError(f"The model backend crashed with {sig.name} while generating one "
                         "token; reinstall llama-cpp-python")
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise ModelError(f"The smoke test failed: {lines[-1] if lines else 'no output'}")
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return SmokeResult(model=model or "default", text=data["text"], tokens=data["tokens"])
    except (IndexError, ValueError, KeyError) as exc:
        raise ModelError(f"The smoke test printed no result: {done.stdout[-200:]!r}") from exc
