"""Generation speed: Feldspar (Python API and `feldspar chat`) against raw llama-cpp-python.

Same model file, prompt, greedy settings and thread count, measured in one run and
alternating, so that the shared machine's noise falls on both sides alike. Speed is
(completion_tokens - 1) / (total_s - first_token_s): decoding only, prompt excluded.

    python bench/generation.py [--rounds 7] [--max-tokens 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import llama_cpp

import feldspar
from common import feldspar_bin, median, run, save
from feldspar.config import load_settings

PROMPT = "Write a detailed essay about the history of the printing press in Europe."


def raw_llama(llm: llama_cpp.Llama, max_tokens: int) -> tuple[float, int]:
    """tokens/s of llama-cpp-python's own streaming chat completion."""
    first = None
    chunks = 0
    for chunk in llm.create_chat_completion(
            [{"role": "user", "content": PROMPT}], max_tokens=max_tokens, temperature=0,
            stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            chunks += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    return ((chunks - 1) / (end - first) if chunks > 1 else 0.0), chunks


def feldspar_api(model: feldspar.models.ChatModel, max_tokens: int) -> tuple[float, int]:
    done = model.stream(PROMPT, max_tokens=max_tokens, temperature=0).result()
    assert done.timings.first_token_s is not None
    n = done.usage.completion_tokens
    return (n - 1) / (done.timings.total_s - done.timings.first_token_s), n


def feldspar_cli(max_tokens: int, threads: int) -> tuple[float, int]:
    out = run([feldspar_bin(), "chat", PROMPT, "--json", "--temperature", "0",
               "--max-tokens", str(max_tokens), "--threads", str(threads)])
    data = json.loads(out.stdout)
    return float(data["timings"]["tokens_per_s"]), int(data["usage"]["completion_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings(threads=args.threads)
    model = feldspar.get_model(settings=settings)
    path = model._llama.model_path  # the very file Feldspar loaded
    raw = llama_cpp.Llama(model_path=path, n_ctx=settings.context_length,
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    feldspar_api(model, 16)  # warm both
    raw_llama(raw, 16)
    runners = {"raw": lambda: raw_llama(raw, args.max_tokens),
               "api": lambda: feldspar_api(model, args.max_tokens),
               "cli": lambda: feldspar_cli(args.max_tokens, args.threads)}
    speeds: dict[str, list[float]] = {who: [] for who in runners}
    tokens: dict[str, list[int]] = {who: [] for who in runners}
    for i in range(args.rounds):
        for who in (list(runners) if i % 2 == 0 else list(reversed(runners))):
            speed, count = runners[who]()
            speeds[who].append(speed)
            tokens[who].append(count)
    med = {k: median(v) for k, v in speeds.items()}
    result = {
        "model": model.spec.name, "threads": args.threads, "max_tokens": args.max_tokens,
        "rounds": args.rounds, "tokens_per_s": speeds, "completion_tokens": tokens,
        "median_tokens_per_s": med,
        "ratio_api_to_raw": med["api"] / med["raw"], "ratio_cli_to_raw": med["cli"] / med["raw"],
    }
    save("generation", result)
    print(json.dumps({k: result[k] for k in ("median_tokens_per_s", "ratio_api_to_raw",
                                             "ratio_cli_to_raw", "completion_tokens")},
                     indent=2))


if __name__ == "__main__":
    main()
