"""Time to first token of `ask`, against its parts measured alone in the same run.

For each SQuAD question: hybrid retrieval alone; the model alone, streaming the very
prompt that `ask` builds; and `ask_stream` itself. Before each timed generation the
model answers an unrelated prompt, so that llama.cpp's prompt cache starts from the
same state for the model alone and for `ask`. Target: ask's first token <= retrieval
+ the model's own first token + 50 ms (medians).

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
            rows.append({"retrieve_s": retrieve, "model_first_token_s": raw,
                         "ask_first_token_s": ask_first,
                         "overhead_s": ask_first - retrieve - raw})
        ws.close()
    summary = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    print(f"{len(rows)} questions (medians): retrieval {summary['retrieve_s'] * 1000:.1f} ms, "
          f"model first token {summary['model_first_token_s'] * 1000:.1f} ms, ask first token "
          f"{summary['ask_first_token_s'] * 1000:.1f} ms, overhead "
          f"{summary['overhead_s'] * 1000:+.1f} ms (target <= +50 ms)")
    path = save("ask_latency", {"questions": len(rows), "median": summary, "rows": rows})
    print(f"saved {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
