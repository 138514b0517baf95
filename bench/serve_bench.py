"""Serving speed: `feldspar serve` over HTTP against in-process generation with the same
packaged model, and against llama-cpp-python's own server on the same GGUF file.

One run starts both servers as subprocesses on 127.0.0.1 (a temporary FELDSPAR_HOME, a
random key, the same thread count and context for all three paths) and measures, with
rounds alternating the order (A, B, C, then C, B, A) so that the shared machine's noise
falls on every path alike, each path warmed first:

1. one stream, greedy (temperature 0, fixed seed), fixed prompt and max_tokens:
   end-to-end completion tokens/s (tokens / time from the request to the last event),
   decoding tokens/s ((tokens - 1) / (last - first token)), time to the first content
   token (TTFT) and, over HTTP, time to the first server-sent event (TTFB: the role delta);
2. CLIENTS clients streaming the same request at once: aggregate completion tokens/s
   (all tokens / time from the first request to the last event) against one in-process
   stream;
3. POST /v1/embeddings (the openai SDK, its default base64 encoding) on short sentences
   in batches, texts/s against in-process `feldspar.get_embedder().embed()`; skipped,
   saying so, where the server has no such endpoint.

Feldspar has no `ignore_eos`: the prompt asks for a long essay, and every row reports its
completion tokens. llama-cpp-python's server runs with its defaults (so its requests get
repeat_penalty 1.1, and logits_all is on) except --n_threads/--n_threads_batch and
--n_ctx, set to Feldspar's, and --interrupt_requests False: with its default (True) a
request that waits cuts the running stream short, which would leave nothing to measure
with concurrent clients. The options are written to the results.

`feldspar serve` runs as configured (FELDSPAR_* from the environment), so with the guard
on by default: an output policy that may redact holds text back until it can be screened,
which shows in its TTFT. --no-guard runs it with FELDSPAR_GUARD=false, to see the cost
of serving alone.

    python bench/serve_bench.py [--repeats 7] [--max-tokens 128] [--clients 4] [--threads 2]
                                [--texts 256] [--batch-size 32] [--no-guard] [--quick]

--quick is a smoke run (1 repeat, 16 tokens, 64 texts) written to serve_quick.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np

from common import DEFAULT_DATA, feldspar_bin, median, save

PROMPT = "Write a detailed essay about the history of the printing press in Europe."
SEED = 1234
IN_PROCESS, FELDSPAR, LLAMA = "in-process", "feldspar serve", "llama-cpp-python server"
QUESTIONS = DEFAULT_DATA / "squad_v1_dev_subset_xquad_en" / "questions.jsonl"
TTFB_SLACK_S = 0.020
"""The target: over HTTP, the first event comes no later than in-process TTFT + 20 ms."""


@dataclass
class Run:
    """One streamed generation, seconds from the request (or the `stream()` call)."""

    ttft_s: float
    total_s: float
    completion_tokens: int
    finish_reason: str | None
    ttfb_s: float | None = None
    text: str = ""
    started: float = 0.0
    """perf_counter() at the request, to place concurrent runs on one clock."""

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.total_s

    @property
    def decode_tokens_per_s(self) -> float:
        n = self.completion_tokens
        return (n - 1) / (self.total_s - self.ttft_s) if n > 1 else 0.0


@dataclass
class Burst:
    """CLIENTS concurrent runs of the same request."""

    runs: list[Run]

    @property
    def wall_s(self) -> float:
        return (max(r.started + r.total_s for r in self.runs)
                - min(r.started for r in self.runs))

    @property
    def tokens_per_s(self) -> float:
        return sum(r.completion_tokens for r in self.runs) / self.wall_s


# -- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(name: str, argv: list[str], env: dict[str, str], log: Path, ready_url: str,
           headers: dict[str, str], timeout_s: float = 180) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess, ready (`ready_url` answers 200) when the block starts, and
    stopped however the block ends (SIGTERM, then SIGKILL after 15 s)."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited ({process.returncode}) before it was ready; "
                                 f"its log ends:\n{tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, headers=headers, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} was not ready after {timeout_s:.0f} s; its log "
                                 f"ends:\n{tail(log)}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# -- generation ------------------------------------------------------------------------


def in_process(model: Any, max_tokens: int) -> Run:
    started = time.perf_counter()
    stream = model.stream(PROMPT, max_tokens=max_tokens, temperature=0, seed=SEED)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    done = stream.result()
    assert first is not None, "no token"
    return Run(first - started, end - started, done.usage.completion_tokens,
               done.finish_reason, text=done.text, started=started)


def over_http(client: httpx.Client, body: dict[str, Any]) -> Run:
    """One streamed chat completion, read as server-sent events. Completion tokens are the
    usage the server reports, or (llama-cpp-python's server sends none when streaming)
    the content deltas, one a token."""
    started = time.perf_counter()
    first_event = first = None
    deltas, usage, finish, parts = 0, None, None, []
    for now, event in events(client, body):
        if first_event is None:
            first_event = now
        if event.get("usage"):
            usage = int(event["usage"]["completion_tokens"])
        for choice in event.get("choices") or ():
            if content := (choice.get("delta") or {}).get("content"):
                deltas += 1
                parts.append(content)
                if first is None:
                    first = now
            finish = choice.get("finish_reason") or finish
    end = time.perf_counter()
    if first is None or first_event is None:
        raise SystemExit(f"{client.base_url} streamed no token")
    return Run(first - started, end - started, usage if usage is not None else deltas, finish,
               ttfb_s=first_event - started, text="".join(parts), started=started)


def events(client: httpx.Client, body: dict[str, Any]) -> Iterator[tuple[float, dict[str, Any]]]:
    """(perf_counter() at its arrival, event) for each server-sent event but [DONE]; the
    body is read to its end, so that the connection goes back to the pool."""
    with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise SystemExit(f"{client.base_url} answered {response.status_code}: "
                             f"{response.text[:500]}")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            now, data = time.perf_counter(), line[5:].strip()
            if data == "[DONE]":
                continue
            event = json.loads(data)
            if "error" in event:
                raise SystemExit(f"{client.base_url} sent an error: {event['error']}")
            yield now, event


def chat_body(model: str, max_tokens: int, usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
                            "max_tokens": max_tokens, "temperature": 0, "seed": SEED,
                            "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    return body


def burst(run: Callable[[int], Run], clients: int) -> Burst:
    """`clients` threads, released together, each making one run."""
    gate = threading.Barrier(clients)
    runs: list[Run | None] = [None] * clients
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            gate.wait()
            runs[i] = run(i)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return Burst([r for r in runs if r is not None])


# -- embeddings ------------------------------------------------------------------------


def sentences(count: int) -> tuple[list[str], str]:
    """`count` short real sentences (SQuAD questions), and where they came from."""
    if QUESTIONS.is_file():
        with QUESTIONS.open(encoding="utf-8") as f:
            found = list(dict.fromkeys(json.loads(line)["question"].strip() for line in f))
        if len(found) >= count:
            return found[:count], str(QUESTIONS)
    print(f"note: {QUESTIONS} is missing or short; embedding made-up sentences instead",
          file=sys.stderr)
    subjects = ("The invoice", "Our office in Lyon", "The new laptop", "This quarter's report",
                "The support team", "A customer in Berlin", "The backup job", "The contract")
    verbs = ("was sent late", "needs a second review", "failed twice last night",
             "is waiting for approval", "answered within an hour", "costs more than planned",
             "moved to the cloud", "was renewed for two years")
    made = [f"{s} {v} ({i})." for i in range(count) for s in subjects for v in verbs]
    return made[:count], "generated"


def embeddings_endpoint(url: str, key: str, model: str) -> str | None:
    """None when POST /v1/embeddings works, else why it does not."""
    try:
        response = httpx.post(f"{url}/embeddings", json={"model": model, "input": ["probe"]},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60)
    except httpx.HTTPError as exc:
        return f"POST /v1/embeddings failed: {exc}"
    if response.status_code != 200:
        return f"POST /v1/embeddings answered {response.status_code}: {response.text[:200]}"
    return None


def embed_http(client: Any, model: str, texts: list[str], batch: int) -> tuple[float, Any]:
    started = time.perf_counter()
    rows: list[list[float]] = []
    for i in range(0, len(texts), batch):
        reply = client.embeddings.create(model=model, input=texts[i:i + batch])
        rows.extend(item.embedding for item in sorted(reply.data, key=lambda d: d.index))
    seconds = time.perf_counter() - started
    return len(texts) / seconds, np.asarray(rows, dtype=np.float32)


def embed_in_process(embedder: Any, texts: list[str], batch: int) -> tuple[float, Any]:
    started = time.perf_counter()
    vectors = embedder.embed(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - started), vectors


# -- the run ---------------------------------------------------------------------------


def alternate(names: list[str], i: int) -> list[str]:
    return names if i % 2 == 0 else list(reversed(names))


def summary(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "median_tokens_per_s": median([r.tokens_per_s for r in runs]),
        "median_decode_tokens_per_s": median([r.decode_tokens_per_s for r in runs]),
        "median_ttft_ms": 1000 * median([r.ttft_s for r in runs]),
        "completion_tokens": [r.completion_tokens for r in runs],
        "finish_reasons": sorted({str(r.finish_reason) for r in runs}),
        "rounds": [{k: v for k, v in asdict(r).items() if k not in ("text", "started")}
                   for r in runs],
    }
    ttfb = [r.ttfb_s for r in runs if r.ttfb_s is not None]
    if ttfb:
        out["median_ttfb_ms"] = 1000 * median(ttfb)
    return out


def burst_summary(bursts: list[Burst]) -> dict[str, Any]:
    return {
        "median_aggregate_tokens_per_s": median([b.tokens_per_s for b in bursts]),
        "median_wall_s": median([b.wall_s for b in bursts]),
        "completion_tokens_per_client": [[r.completion_tokens for r in b.runs] for b in bursts],
        "median_ttft_ms": 1000 * median([r.ttft_s for b in bursts for r in b.runs]),
        "max_ttft_ms": 1000 * max(r.ttft_s for b in bursts for r in b.runs),
        "aggregate_tokens_per_s": [b.tokens_per_s for b in bursts],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, help="rounds of each measure (default 7)")
    parser.add_argument("--max-tokens", type=int, help="tokens per reply (default 128)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, help="sentences to embed (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-guard", action="store_true",
                        help="run feldspar serve with FELDSPAR_GUARD=false (the guard off)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 repeat, 16 tokens, 64 texts (serve_quick.json)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 7)
    max_tokens = args.max_tokens or (16 if args.quick else 128)
    count = args.texts or (64 if args.quick else 256)
    # SIGTERM ends the run as Ctrl-C does: through the `finally` that stops the servers.
    signal.signal(signal.SIGTERM, _terminated)

    with tempfile.TemporaryDirectory(prefix="feldspar-serve-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        home, key = Path(tmp), secrets.token_urlsafe(24)
        # The same settings in this process and in the server: FELDSPAR_* from here.
        os.environ["FELDSPAR_HOME"] = str(home)
        os.environ["FELDSPAR_THREADS"] = str(args.threads)
        result = measure(stack, home, key, args, repeats, max_tokens, count)
    name = "serve_quick" if args.quick else "serve"
    path = save(name, result)
    print(table(result))
    print(f"\nResults: {path}")


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def measure(stack: contextlib.ExitStack, home: Path, key: str, args: argparse.Namespace,
            repeats: int, max_tokens: int, count: int) -> dict[str, Any]:
    import feldspar
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    settings = load_settings()
    model = feldspar.get_model(settings=settings)
    gguf = locate(find_spec(settings.chat_model, settings))
    embed_model = settings.embed_model
    auth = {"Authorization": f"Bearer {key}"}

    port = free_port()
    fs_url = f"http://127.0.0.1:{port}/v1"
    fs_env = {"FELDSPAR_API_KEYS": "(random)"} | ({"FELDSPAR_GUARD": "false"}
                                                  if args.no_guard else {})
    stack.enter_context(server(
        FELDSPAR, [feldspar_bin(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        {**os.environ, **fs_env, "FELDSPAR_API_KEYS": key}, home / "feldspar-serve.log",
        f"http://127.0.0.1:{port}/health", auth))
    llama_options = ["--n_ctx", str(model.context_window), "--n_threads", str(args.threads),
                     "--n_threads_batch", str(args.threads), "--interrupt_requests", "False"]
    port = free_port()
    llama_url = f"http://127.0.0.1:{port}/v1"
    stack.enter_context(server(
        LLAMA, [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                "--host", "127.0.0.1", "--port", str(port), *llama_options],
        dict(os.environ), home / "llama-server.log", f"{llama_url}/models", {}))
    print(f"servers up: {FELDSPAR} {fs_url}, {LLAMA} {llama_url}", file=sys.stderr)

    def clients(url: str, headers: dict[str, str]) -> list[httpx.Client]:
        return [stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=600))
                for _ in range(args.clients)]

    http = {FELDSPAR: clients(fs_url, auth), LLAMA: clients(llama_url, {})}
    # llama-cpp-python's server answers whatever model name it is given.
    bodies = {FELDSPAR: chat_body(model.spec.name, max_tokens, usage=True),
              LLAMA: chat_body(model.spec.name, max_tokens, usage=False)}
    single: dict[str, Callable[[], Run]] = {
        IN_PROCESS: lambda: in_process(model, max_tokens),
        FELDSPAR: lambda: over_http(http[FELDSPAR][0], bodies[FELDSPAR]),
        LLAMA: lambda: over_http(http[LLAMA][0], bodies[LLAMA]),
    }

    def concurrent(who: str, body: dict[str, Any]) -> Burst:
        return burst(lambda i: over_http(http[who][i], body), args.clients)

    many: dict[str, Callable[[], Burst]] = {
        who: partial(concurrent, who, bodies[who]) for who in (FELDSPAR, LLAMA)}

    # Warm every path, every client's connection included.
    in_process(model, 8)
    for who in (FELDSPAR, LLAMA):
        concurrent(who, {**bodies[who], "max_tokens": 8})

    print(f"generation: {repeats} rounds of {max_tokens} tokens", file=sys.stderr)
    runs: dict[str, list[Run]] = {who: [] for who in single}
    bursts: dict[str, list[Burst]] = {who: [] for who in many}
    for i in range(repeats):
        for who in alternate(list(single), i):
            runs[who].append(single[who]())
        for who in alternate(list(many), i):
            bursts[who].append(many[who]())

    gen = {who: summary(r) for who, r in runs.items()}
    base = gen[IN_PROCESS]
    for who in (FELDSPAR, LLAMA):
        g = gen[who]
        g["ratio_tokens_per_s_to_in_process"] = (g["median_tokens_per_s"]
                                                 / base["median_tokens_per_s"])
        g["ratio_decode_to_in_process"] = (g["median_decode_tokens_per_s"]
                                           / base["median_decode_tokens_per_s"])
        g["ttft_over_in_process_ms"] = g["median_ttft_ms"] - base["median_ttft_ms"]
        g["ttfb_target_ms"] = base["median_ttft_ms"] + 1000 * TTFB_SLACK_S
        g["ttfb_within_target"] = g["median_ttfb_ms"] <= g["ttfb_target_ms"]
        g["same_text_as_in_process"] = runs[who][0].text == runs[IN_PROCESS][0].text
    conc = {who: burst_summary(b) for who, b in bursts.items()}
    for c in conc.values():
        c["ratio_to_one_in_process_stream"] = (c["median_aggregate_tokens_per_s"]
                                               / base["median_tokens_per_s"])

    texts, source = sentences(count)
    embed = embeddings(fs_url, key, embed_model, texts, args.batch_size, repeats, settings)
    embed.update({"texts": len(texts), "source": source, "batch_size": args.batch_size,
                  "model": embed_model})

    return {
        "model": model.spec.name, "gguf": str(gguf), "threads": args.threads,
        "context": model.context_window, "max_tokens": max_tokens, "repeats": repeats,
        "clients": args.clients, "prompt": PROMPT, "seed": SEED, "temperature": 0,
        "quick": args.quick,
        "feldspar_serve_env": {k: "(hidden)" if any(w in k for w in ("KEY", "TOKEN", "SECRET"))
                               else v for k, v in os.environ.items()
                               if k.startswith("FELDSPAR_")} | fs_env,
        "server_guard": (not args.no_guard) and bool(getattr(settings, "guard", False)),
        "llama_cpp_server_options": llama_options,
        "client": f"httpx {httpx.__version__} (server-sent events read line by line)",
        "single_stream": gen, "concurrent": conc, "embeddings": embed,
        "sample_text": {who: r[0].text for who, r in runs.items()},
    }


def embeddings(url: str, key: str, model: str, texts: list[str], batch: int, repeats: int,
               settings: Any) -> dict[str, Any]:
    import openai

    import feldspar

    embedder = feldspar.get_embedder(settings=settings)
    embed_in_process(embedder, texts[:batch], batch)  # loads (builds the int8 graph once)
    why = embeddings_endpoint(url, key, model)
    if why is not None:
        print(f"embeddings: SKIPPED, {why}", file=sys.stderr)
        return {"skipped": why}
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)
    print(f"embeddings: {repeats} rounds of {len(texts)} texts", file=sys.stderr)
    runners: dict[str, Callable[[], tuple[float, Any]]] = {
        IN_PROCESS: lambda: embed_in_process(embedder, texts, batch),
        FELDSPAR: lambda: embed_http(client, model, texts, batch),
    }
    speeds: dict[str, list[float]] = {who: [] for who in runners}
    vectors: dict[str, Any] = {}
    try:
        embed_http(client, model, texts[:batch], batch)  # warm
        for i in range(repeats):
            for who in alternate(list(runners), i):
                speed, vectors[who] = runners[who]()
                speeds[who].append(speed)
    except openai.OpenAIError as exc:  # keep the generation figures of this run
        print(f"embeddings: FAILED, {exc}", file=sys.stderr)
        return {"skipped": f"failed: {exc}"}
    med = {who: median(v) for who, v in speeds.items()}
    cosine = np.sum(vectors[FELDSPAR] * vectors[IN_PROCESS], axis=1)
    return {"texts_per_s": speeds, "median_texts_per_s": med,
            "ratio_http_to_in_process": med[FELDSPAR] / med[IN_PROCESS],
            "min_cosine_http_to_in_process": float(cosine.min())}


def table(r: dict[str, Any]) -> str:
    gen, conc, emb = r["single_stream"], r["concurrent"], r["embeddings"]
    base = gen[IN_PROCESS]
    lines = [
        f"Model {r['model']}, {r['threads']} threads, context {r['context']}, greedy, "
        f"max_tokens {r['max_tokens']}, {r['repeats']} rounds (medians); the guard of "
        f"feldspar serve {'on' if r['server_guard'] else 'off'}.",
        "",
        "| one stream | tokens/s (end to end) | ratio | decode tokens/s | TTFT ms | "
        "TTFB ms | completion tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for who, g in gen.items():
        ratio = g.get("ratio_tokens_per_s_to_in_process", 1.0)
        ttfb = f"{g['median_ttfb_ms']:.0f}" if "median_ttfb_ms" in g else "-"
        lines.append(f"| {who} | {g['median_tokens_per_s']:.1f} | {ratio:.2f} | "
                     f"{g['median_decode_tokens_per_s']:.1f} | {g['median_ttft_ms']:.0f} | "
                     f"{ttfb} | {_counts(g['completion_tokens'])} |")
    lines += ["", f"TTFB target: in-process TTFT + {1000 * TTFB_SLACK_S:.0f} ms = "
              f"{base['median_ttft_ms'] + 1000 * TTFB_SLACK_S:.0f} ms; "
              + "; ".join(f"{who}: {'met' if gen[who]['ttfb_within_target'] else 'missed'}"
                          for who in (FELDSPAR, LLAMA)),
              "", f"| {r['clients']} concurrent streams | aggregate tokens/s | ratio to one "
              "in-process stream | TTFT ms (median / max) | tokens per client |",
              "|---|---|---|---|---|"]
    for who, c in conc.items():
        tokens = sorted({t for b in c["completion_tokens_per_client"] for t in b})
        lines.append(f"| {who} | {c['median_aggregate_tokens_per_s']:.1f} | "
                     f"{c['ratio_to_one_in_process_stream']:.2f} | "
                     f"{c['median_ttft_ms']:.0f} / {c['max_ttft_ms']:.0f} | "
                     f"{_counts(tokens)} |")
    lines.append("")
    if "skipped" in emb:
        lines.append(f"Embeddings: skipped ({emb['skipped']}).")
    else:
        lines += [f"| embeddings ({emb['texts']} texts, batches of {emb['batch_size']}) | "
                  "texts/s | ratio |", "|---|---|---|"]
        for who, v in emb["median_texts_per_s"].items():
            lines.append(f"| {who} | {v:.1f} | {v / emb['median_texts_per_s'][IN_PROCESS]:.2f} |")
        lines.append(f"\nLowest cosine, HTTP to in-process vectors: "
                     f"{emb['min_cosine_http_to_in_process']:.6f}")
    return "\n".join(lines)


def _counts(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (the servers were stopped)")
