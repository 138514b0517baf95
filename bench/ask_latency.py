"""Time to first token of `ask`, against its parts.

For each SQuAD question, `ask_stream` is timed to its first piece of text and split into
its own parts: retrieval, the model's own time to first token (measured by the model's
stream), and the rest, which is what `ask` adds (target: <= 50 ms). As a cross-check the
parts are also measured alone: retrieval alone, and the model alone streaming the very
prompt that `ask` builds. Before each timed generation the model answers an unrelated
prompt, so that llama.cpp's prompt cache starts from the same state every time; prompt
processing still varies by a second from run to run here, which is why the added time
is measured inside each call rather than as a difference between runs.

    python bench/ask_latency.py [--data ../shared/data] [--questions 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import save
from retrieval import DEFAULT_DATA, load, write_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FELDSPAR_HOME"] = str(Path(tmp) / "home")
        from feldspar import Workspace
        from feldspar.models import GenerationOptions, get_model
        from feldspar.rag.answering import to_source
        from feldspar.rag.prompting import build_messages

        passages, questions = load(args.data / "squad_v1_dev_subset_xquad_en")
        ws = Workspace()
        ws.ingest([write_corpus(passages, Path(tmp) / "corpus")])
        llm = get_model(None, settings=ws.settings)
        options = GenerationOptions(max_tokens=8, temperature=0.0)
        ws.ask("warm up?")  # loads the detector and the model once

        def reset() -> None:
            llm.complete("Say hello.", max_tokens=2, temperature=0.0)

        rows = []
        for q in questions[: args.questions]:
            started = time.perf_counter()
            hits = ws.search(q["question"], k=ws.settings.rag_top_k)
            retrieve = time.perf_counter() - started
            sources = [to_source(n, h, q["question"]) for n, h in enumerate(hits, 1)]
            messages = build_messages(q["question"], sources,
                                      abstain_text=ws.settings.rag_abstain_text)
            reset()
            model_first = llm.stream(messages, options=options)
            next(model_first)
            raw = model_first.result().timings.first_token_s
            reset()
            started = time.perf_counter()
            stream = ws.ask_stream(q["question"], options=options)
            next(stream, None)
            ask_first = time.perf_counter() - started
            answer = stream.result()
            if answer.abstained and answer.reason == "no relevant passages":
                continue  # the model was not asked: nothing to compare
            assert raw is not None
            t = answer.timings
            rows.append({"ask_first_token_s": ask_first, "ask_retrieve_s": t["retrieve_s"],
                         "ask_model_first_token_s": t["model_first_token_s"],
                         "added_s": ask_first - t["retrieve_s"] - t["model_first_token_s"],
                         "retrieve_alone_s": retrieve, "model_alone_first_token_s": raw,
                         "difference_s": ask_first - retrieve - raw})
        ws.close()
    if not rows:
        raise SystemExit("every question abstained before the model was asked: nothing timed")
    summary = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    added = sorted(r["added_s"] for r in rows)
    print(f"{len(rows)} questions (medians, ms): ask first token "
          f"{summary['ask_first_token_s'] * 1000:.1f} = retrieval "
          f"{summary['ask_retrieve_s'] * 1000:.1f} + model's own first token "
          f"{summary['ask_model_first_token_s'] * 1000:.1f} + added "
          f"{summary['added_s'] * 1000:.1f} (max {added[-1] * 1000:.1f}; target <= 50). "
          f"Measured alone: retrieval {summary['retrieve_alone_s'] * 1000:.1f}, model "
          f"{summary['model_alone_first_token_s'] * 1000:.1f}; difference "
          f"{summary['difference_s'] * 1000:+.1f}")
    path = save("ask_latency", {"questions": len(rows), "median": summary, "rows": rows})
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
