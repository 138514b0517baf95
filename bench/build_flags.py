"""Compare llama-cpp-python builds: raw decoding speed of the packaged model, alternating
between interpreters that each have one build installed.

    python bench/build_flags.py --python portable=.venv/bin/python \\
        --python avx512=/tmp/v512/bin/python [--rounds 5]

Used to choose the build flags in the Makefile (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess

from common import median, save

CHILD = """
import json, sys, time, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=2048, n_threads=2, n_threads_batch=2,
                      verbose=False)
prompt = "The history of the printing press in Europe began in Mainz, where"
first = None; n = 0
for chunk in llm.create_completion(prompt, max_tokens=200, temperature=0, stream=True):
    if chunk["choices"][0]["text"]:
        n += 1
        first = first or time.perf_counter()
print(json.dumps({"tokens_per_s": (n - 1) / (time.perf_counter() - first)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", action="append", required=True, help="LABEL=INTERPRETER")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    model = str(locate(find_spec("smollm2-135m-instruct", load_settings())))
    builds = dict(item.split("=", 1) for item in args.python)
    speeds: dict[str, list[float]] = {label: [] for label in builds}
    for i in range(args.rounds):
        order = list(builds) if i % 2 == 0 else list(reversed(builds))
        for label in order:
            out = subprocess.run([builds[label], "-c", CHILD, model], capture_output=True,
                                 text=True, check=True)
            speeds[label].append(json.loads(out.stdout)["tokens_per_s"])
    med = {label: median(v) for label, v in speeds.items()}
    first = next(iter(builds))
    result = {"tokens_per_s": speeds, "median_tokens_per_s": med,
              "ratio_to_first": {label: med[label] / med[first] for label in builds}}
    save("build_flags", result)
    print(json.dumps({k: result[k] for k in ("median_tokens_per_s", "ratio_to_first")},
                     indent=2))


if __name__ == "__main__":
    main()
