"""The guard as a user runs it, on the held-out test part of the shared safety sets
(bench/guard_data.py splits them; bench/train_guard.py never trains on this part):

1. `feldspar eval guard --dataset TEST.jsonl --target-fpr 0.05 --json`, in a fresh
   FELDSPAR_HOME with the default policy: precision, recall, F1 and AUPRC per risk, the
   flag rate on benign prompts and on XSTest's safe prompts, tuned thresholds.
2. Latency of `Guard.check` (rules + classifier + policy, no audit) on ~50-word prompts,
   and the throughput of `Guard.check_many` in batches of 64.
3. The peer in the same run: the LLM judge path (Granite Guardian's protocol) on the
   packaged SmolLM2-135M, the only chat model offline here, on a sample of the test part:
   F1 for harm and its cost per text.

    python bench/guard_eval.py [--data ../shared/data] [--judge-sample 120]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import feldspar_bin, save
from guard_data import DEFAULT_DATA, write_test_jsonl

RISKS = ("harm", "jailbreak", "prompt_injection")


def eval_guard(test: Path, home: Path) -> dict[str, object]:
    argv = [feldspar_bin(), "eval", "guard", "--dataset", str(test), "--target-fpr", "0.05",
            "--json", "-o", str(home / "report.json")]
    for risk in RISKS:
        argv += ["--risk", risk]
    env = {**os.environ, "FELDSPAR_HOME": str(home)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    print(" ".join(argv[1:]), file=sys.stderr)
    return json.loads(done.stdout)


def fifty_words(rows: list[dict[str, object]]) -> list[str]:
    """Prompts of about 50 words: the test texts cut or repeated to 45-55 words."""
    out = []
    for row in rows:
        words = str(row["text"]).split()
        while words and len(words) < 45:
            words = words + words
        if words:
            out.append(" ".join(words[:50]))
    return out


def speed(texts: list[str], home: Path) -> dict[str, float]:
    from feldspar.config import Settings
    from feldspar.guard import Guard

    guard = Guard(Settings(home=home, guard_audit=False))
    guard.check_many(texts[:64])  # load the classifier and the embedder
    times = []
    for _ in range(3):
        for text in texts[:200]:
            began = time.perf_counter()
            guard.check(text)
            times.append(time.perf_counter() - began)
    batch_times = []
    for _ in range(3):
        began = time.perf_counter()
        for start in range(0, len(texts), 64):
            guard.check_many(texts[start : start + 64])
        batch_times.append(time.perf_counter() - began)
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * times[int(0.95 * len(times))],
            "texts": len(texts), "prompts_per_s": len(texts) / statistics.median(batch_times),
            "mean_words": statistics.mean(len(t.split()) for t in texts)}


def judge_peer(rows: list[dict[str, object]], sample: int, home: Path) -> dict[str, object]:
    """The harm risk judged by SmolLM2-135M in Granite Guardian's protocol, against the
    classifier on the same texts."""
    from feldspar.config import Settings
    from feldspar.guard import Guard
    from feldspar.guard.judge import GuardianJudge
    from feldspar.models.loading import get_model

    picked = [r for r in rows if r["source"] in ("advbench", "xstest", "benign_prompts")]
    step = max(1, len(picked) // sample)
    picked = picked[::step][:sample]
    settings = Settings(home=home, guard_audit=False)
    model = get_model("smollm2-135m-instruct", settings=settings)
    # A band of [0, 1) sends every classifier score to the judge: the judge alone.
    judged = Guard(Settings(home=home, guard_audit=False, guard_judge_band=(0.0, 1.0)),
                   judge=GuardianJudge(model))
    out: dict[str, object] = {"texts": len(picked)}
    for name, guard in (("classifier", Guard(settings)), ("judge", judged)):
        began = time.perf_counter()
        scores = [guard.check(str(r["text"]), risks=["harm"]).verdicts[0].score
                  for r in picked]
        seconds = time.perf_counter() - began
        labels = ["harm" in r["risks"] for r in picked]  # type: ignore[operator]
        tp = sum(s >= 0.5 and y for s, y in zip(scores, labels, strict=True))
        fp = sum(s >= 0.5 and not y for s, y in zip(scores, labels, strict=True))
        fn = sum(s < 0.5 and y for s, y in zip(scores, labels, strict=True))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        out[name] = {"f1_harm": f1, "ms_per_text": 1000 * seconds / len(picked)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--judge-sample", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        test = home / "guard_test.jsonl"
        lines = write_test_jsonl(test, args.data)
        report = eval_guard(test, home)
        rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
        fast = speed(fifty_words(rows), home)
        peer = judge_peer(rows, args.judge_sample, home) if args.judge_sample else None
    result = {"test_lines": lines, "eval_guard": report, "speed": fast, "judge_peer": peer}
    path = save("guard_eval", result)
    for risk in report["risks"]:  # type: ignore[union-attr]
        print(f"{risk['risk']:<17} F1 {risk['f1']:.3f}  P {risk['precision']:.3f}  "
              f"R {risk['recall']:.3f}  AUPRC {risk['auprc']:.3f}  (threshold "
              f"{risk['threshold']}; tuned {risk.get('tuned')})")
    print(f"benign flag rate {report['benign_flag_rate']:.3f} "  # type: ignore[index]
          f"{report['benign_flag_rate_by_source']}")  # type: ignore[index]
    print(f"Guard.check p50 {fast['p50_ms']:.2f} ms, p95 {fast['p95_ms']:.2f} ms; "
          f"{fast['prompts_per_s']:.0f} prompts/s in batches of 64")
    if peer:
        print(f"judge peer: {peer}")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
