"""The guard's PII and secret rules: span precision, recall and F1 per kind on the labelled
synthetic sets, how well the scores match the observed precision, hits on real public text,
latency per ~50-word prompt, throughput, and time on hostile input.

Quality: `feldspar.guard.synthetic` sets of 5,000 texts each (seed 2025; the tests use 1234),
spans scoring >= 0.5; a span is right when it has the gold kind and covers at least half of
a gold span. The sets are synthetic, written by the same hand as the rules: read them as a
regression check, not as real-world accuracy. Real text: every span >= 0.5 that the rules
find in the public datasets under --data (BANKING77 queries, SQuAD and PIAF paragraphs,
benign prompts, BIPIA emails, tables and code), which carry no labels: hits per 1,000 texts.

    python bench/guard_rules.py [--n 5000] [--seed 2025] [--data ../shared/data] [--runs 1000]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from common import DEFAULT_DATA, save
from feldspar.guard.pii import find_pii
from feldspar.guard.secrets import find_secrets
from feldspar.guard.synthetic import Example, make_pii_set, make_secret_set, tally
from feldspar.guard.verdicts import Span

THRESHOLD = 0.5
BUCKETS = (0.5, 0.7, 0.9, 0.97, 1.01)
Finder = Callable[[str], list[Span]]
FILLER = ("Could you please summarise the attached notes and list the next steps for the team "
          "before the review on Friday, keeping it short and friendly. I also need a draft reply "
          "to the customer that explains the delay, apologises for the trouble and proposes two "
          "dates for a call next week, in a polite and professional tone.")


def both(text: str) -> list[Span]:
    return find_pii(text) + find_secrets(text)


def quality(examples: list[Example], find: Finder) -> dict[str, dict[str, float]]:
    return {kind: {"precision": t.precision, "recall": t.recall, "f1": t.f1, "gold": t.gold,
                   "predicted": t.predicted}
            for kind, t in tally(examples, find, THRESHOLD).items()}


def calibration(examples: list[Example], find: Finder) -> list[dict[str, float]]:
    """For spans in each score bucket: their mean score, and the share that is right."""
    scored: list[tuple[float, bool]] = []
    for text, gold in examples:
        for s in find(text):
            if s.score >= BUCKETS[0]:
                right = any(k == s.kind and (min(s.end, b) - max(s.start, a)) * 2 >= b - a
                            for a, b, k in gold)
                scored.append((s.score, right))
    out = []
    for low, high in itertools.pairwise(BUCKETS):
        inside = [(p, ok) for p, ok in scored if low <= p < high]
        if inside:
            out.append({"from": low, "to": min(high, 1.0), "spans": len(inside),
                        "mean_score": statistics.mean(p for p, _ in inside),
                        "precision": sum(ok for _, ok in inside) / len(inside)})
    return out


def real_texts(data: Path) -> Iterator[tuple[str, str]]:
    """(source, text) from the public datasets that are on this machine."""
    banking = data / "banking77"
    for name in ("train.csv", "test.csv"):
        if (banking / name).exists():
            with (banking / name).open(encoding="utf-8") as fh:
                yield from (("banking77", row["text"]) for row in csv.DictReader(fh))
    for folder in ("squad_v1_dev_subset_xquad_en", "piaf_fr"):
        path = data / folder / "passages.jsonl"
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                yield from ((folder, json.loads(line)["text"]) for line in fh if line.strip())
    path = data / "benign_prompts" / "benign_prompts.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            yield from (("benign_prompts", json.loads(line)["text"]) for line in fh)
    for task in ("email", "table", "code"):
        path = data / "bipia_indirect_prompt_injection" / f"{task}_train.jsonl"
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    context = json.loads(line).get("context") or ""
                    text = "\n".join(context) if isinstance(context, list) else context
                    yield f"bipia_{task}", text


def real_hits(data: Path) -> dict[str, dict[str, object]]:
    texts: Counter[str] = Counter()
    hits: dict[str, Counter[str]] = {}
    prose = []
    for source, text in real_texts(data):
        if source in ("squad_v1_dev_subset_xquad_en", "piaf_fr"):
            prose.append(text)
        texts[source] += 1
        kinds = hits.setdefault(source, Counter())
        kinds.update(s.kind for s in both(text) if s.score >= THRESHOLD)
    out: dict[str, dict[str, object]] = {
        source: {"texts": n, "hits": dict(hits[source]),
                 "hits_per_1000_texts": 1000 * sum(hits[source].values()) / n}
        for source, n in texts.items()}
    if prose:
        out["wikipedia_prose"] = {"characters": sum(map(len, prose)),
                                  "throughput_mb_per_s": throughput("\n\n".join(prose))}
    return out


def prompts(n: int, seed: int) -> list[str]:
    """~50-word prompts: synthetic texts (with PII, secrets or look-alikes) padded with
    plain sentences."""
    rng = random.Random(seed)
    filler = FILLER.split()
    pool = [t for t, _ in make_pii_set(n, seed)] + [t for t, _ in make_secret_set(n, seed)]
    out = []
    for _ in range(n):
        words = rng.choice(pool).split()[:40]
        cut = rng.randint(0, len(filler) - 50)
        out.append(" ".join(words + filler[cut:cut + max(0, 50 - len(words))]))
    return out


def throughput(text: str) -> float:
    """Megabytes (characters / 1e6) per second for both finders on `text`."""
    began = time.perf_counter()
    both(text)
    return len(text) / 1e6 / (time.perf_counter() - began)


def latency(runs: int, seed: int) -> dict[str, float]:
    texts = prompts(runs, seed)
    plain = " ".join(FILLER.split()[:50])
    timings = []
    for text in texts:
        began = time.perf_counter()
        both(text)
        timings.append((time.perf_counter() - began) * 1000)
    plain_timings = []
    for _ in range(runs):
        began = time.perf_counter()
        both(plain)
        plain_timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    return {"p50_ms_per_prompt": statistics.median(timings),
            "p95_ms_per_prompt": timings[int(0.95 * (len(timings) - 1))],
            "p50_ms_plain_prompt": statistics.median(plain_timings),
            "mean_words_per_prompt": statistics.mean(len(t.split()) for t in texts),
            "prompts": runs, "throughput_mb_per_s": throughput("\n".join(texts))}


def hostile() -> dict[str, float]:
    """Seconds for both finders on inputs built to make regular expressions backtrack."""
    rng = random.Random(0)
    cases = {
        "random latin-1, 10 MB": bytes(rng.getrandbits(8) for _ in range(10_000_000))
        .decode("latin-1"),
        "'a' * 1M": "a" * 1_000_000, "'1 ' * 500k": "1 " * 500_000, "'1' * 1M": "1" * 1_000_000,
        "'1.1.1.1 ' * 125k": "1.1.1.1 " * 125_000, "'a@' * 500k": "a@" * 500_000,
        "'DE89 ' * 200k": "DE89 " * 200_000, "'eyJ' * 333k": "eyJ" * 333_333,
        "'password=aaaa ' * 70k": "password=aaaa " * 70_000, "'a://b:' * 160k": "a://b:" * 160_000,
        "PEM headers * 30k": "-----BEGIN RSA PRIVATE KEY-----\n" * 30_000,
    }
    out = {}
    for name, text in cases.items():
        began = time.perf_counter()
        both(text)
        out[name] = time.perf_counter() - began
    return out


def show(title: str, report: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}\n{'kind':<20} {'gold':>6} {'found':>6} {'P':>6} {'R':>6} {'F1':>6}")
    for kind, m in report.items():
        print(f"{kind:<20} {m['gold']:>6.0f} {m['predicted']:>6.0f} {m['precision']:>6.3f} "
              f"{m['recall']:>6.3f} {m['f1']:>6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    sets = {"pii": (make_pii_set(args.n, args.seed), find_pii),
            "secrets": (make_secret_set(args.n, args.seed), find_secrets)}
    results: dict[str, object] = {"n": args.n, "seed": args.seed, "threshold": THRESHOLD}
    for name, (examples, find) in sets.items():
        report = quality(examples, find)
        show(f"{name}: {args.n} synthetic texts, spans >= {THRESHOLD}", report)
        buckets = calibration(examples, find)
        for b in buckets:
            print(f"  scores {b['from']:.2f}-{b['to']:.2f}: {b['spans']:>5.0f} spans, "
                  f"mean score {b['mean_score']:.3f}, right {b['precision']:.3f}")
        results[name] = {"quality": report, "calibration": buckets}
    if args.data.exists():
        results["real_text"] = real = real_hits(args.data)
        print(f"\nreal text, spans >= {THRESHOLD} (no labels: every hit is listed, right or not)")
        for source, r in real.items():
            if "hits" in r:
                print(f"  {source:<30} {r['texts']:>6} texts  {r['hits']}")
            else:
                print(f"  both finders on SQuAD and PIAF paragraphs ({r['characters']} "
                      f"characters): {r['throughput_mb_per_s']:.1f} MB/s")
    results["latency"] = speed = latency(args.runs, args.seed)
    print(f"\nfind_pii + find_secrets: p50 {speed['p50_ms_per_prompt']:.3f} ms, p95 "
          f"{speed['p95_ms_per_prompt']:.3f} ms per prompt of "
          f"{speed['mean_words_per_prompt']:.0f} words ({args.runs} prompts); "
          f"p50 {speed['p50_ms_plain_prompt']:.3f} ms for one without PII or secrets; "
          f"{speed['throughput_mb_per_s']:.1f} MB/s on all of them as one text "
          f"({os.cpu_count()} cores, one used)")
    results["hostile_seconds"] = slow = hostile()
    for name, seconds in slow.items():
        print(f"  hostile {name:<26} {seconds:6.2f} s")
    print(save("guard_rules", results))


if __name__ == "__main__":
    main()
