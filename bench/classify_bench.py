"""Text classification on BANKING77 (bench/classify_data.py), through the library's API in
a Workspace on a temporary FELDSPAR_HOME:

a. Full data, 77 intents: the student trained on all of train, scored on all of test
   (accuracy, macro-F1, training time, cross-validated accuracy, batch throughput and
   single-text latency with the embedder warm); the peer in the same run, scikit-learn's
   LogisticRegression(C=10) on the same embeddings.
b. 8 examples per intent, for --seeds samples of train, scored on all of test.
c. The LLM teacher on 77 intents, zero-shot and 8-shot (the shots drawn from the 8-per-intent
   examples), on a seeded sample of --teacher-sample test texts; the cascade of the
   8-per-intent student and each teacher on that sample, with the threshold at which the
   cascade matches the teacher while escalating the fewest texts.
d. Six departments with descriptions: the zero-shot teacher on the test sample; distilling
   it, the teacher labelling --distill-texts train texts (gold labels hidden) and a student
   trained on its labels alone (all of them, and only the confident ones), scored on all
   of test; the departments' cascade; a student on the gold labels of the same texts.

Timings are medians where repeated, with the models loaded and warm. Progress goes to
stderr; the results to bench/results/classify.json (classify_quick.json for --quick, a
smoke run of a couple of minutes on a small slice of the data).

    python bench/classify_bench.py [--data ../shared/data] [--teacher-sample 200]
        [--distill-texts 600] [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classify_data import (
    DEFAULT_DATA,
    DEPARTMENTS,
    DESCRIPTIONS,
    Pair,
    categories,
    load,
    per_class,
    sample,
    to_departments,
)
from common import save

if TYPE_CHECKING:
    from feldspar import Workspace
    from feldspar.classify.classifier import Classifier
    from feldspar.classify.teacher import Teacher

SHOTS = 8
"""Examples per intent in part b, and examples in the few-shot prompt in part c."""
REPEATS = 3
"""Timed passes of the student over the test set (the median is reported)."""
SAMPLE_SEED = 0
"""Seeds the test sample the teacher labels and the train texts it distils."""
STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def counter(what: str, total: int) -> Callable[[int], None]:
    """A progress callback that reports about every tenth of `total`, with the rate."""
    done, began = [0], time.perf_counter()
    step = max(1, total // 10)

    def tick(n: int) -> None:
        before = done[0]
        done[0] += n
        if done[0] // step != before // step or done[0] == total:
            rate = done[0] / max(time.perf_counter() - began, 1e-9)
            say(f"  {what}: {done[0]}/{total} ({rate:.2f}/s)")
    return tick


def examples(pairs: Sequence[Pair]) -> list[Any]:
    from feldspar.store.records import Example

    return [Example(text, label, "human") for text, label in pairs]


def texts_of(pairs: Sequence[Pair]) -> list[str]:
    return [text for text, _ in pairs]


def gold_of(pairs: Sequence[Pair]) -> list[str]:
    return [label for _, label in pairs]


def thin(points: list[dict[str, float]], most: int = 101) -> list[dict[str, float]]:
    """At most `most` points, evenly spread, the first and the last kept."""
    if len(points) <= most:
        return points
    keep = sorted({round(i * (len(points) - 1) / (most - 1)) for i in range(most)})
    return [points[i] for i in keep]


def new_classifier(ws: Workspace, name: str, labels: Sequence[str],
                   descriptions: dict[str, str] | None = None) -> Classifier:
    from feldspar.classify import labelsets

    labelsets.create(ws.store, name, labels, descriptions)
    return ws.classifier(name)


def train(clf: Classifier, pairs: Sequence[Pair] | None = None, **kwargs: Any
          ) -> dict[str, Any]:
    """Train the student (on `pairs`, else on what the label set stores); what it took."""
    began = time.perf_counter()
    student = clf.train(examples(pairs) if pairs is not None else None, **kwargs)
    info = student.info
    return {"examples": info["examples"], "sources": info["sources"],
            "wall_seconds": time.perf_counter() - began,
            "train_seconds": info["train_seconds"], "cv_accuracy": info["cv_accuracy"]}


def evaluate(clf: Classifier, test: Sequence[Pair], teacher: Teacher | None = None,
             teacher_sample: int | None = None, *, per_class_rows: bool = False
             ) -> dict[str, Any]:
    """evaluate_classifier's report, the cascade curve thinned, per-class rows dropped
    unless asked for."""
    from feldspar.evaluate.classifying import evaluate_classifier

    on_teacher = counter(f"teacher ({teacher.name}, {teacher.shots} shots)",
                         teacher_sample or 0) if teacher is not None else None
    report, _ = evaluate_classifier(clf, texts_of(test), gold_of(test), teacher=teacher,
                                    teacher_limit=teacher_sample, seed=SAMPLE_SEED,
                                    on_teacher=on_teacher)
    for part in ("student", "teacher", "cascade"):
        if part in report and not (per_class_rows and part == "student"):
            report[part].pop("per_class", None)
    if "cascade_curve" in report:
        report["cascade_curve"] = thin(report["cascade_curve"])
    return report


def warm_teacher(teacher: Teacher, text: str) -> None:
    """Load the model and evaluate the shared part of the prompt (and, few-shot, embed the
    examples) on a text outside the measured ones."""
    teacher.classify([text])


# a. Full data


def full_data(ws: Workspace, intents: list[str], train_pairs: list[Pair],
              test: list[Pair]) -> dict[str, Any]:
    from feldspar.classify.student import embed

    say(f"a. full data: training the student on {len(train_pairs)} texts, 77 intents")
    clf = new_classifier(ws, "intents", intents)
    ws.embedder.embed(["warm up"])
    trained = train(clf, train_pairs)
    say(f"  trained in {trained['wall_seconds']:.1f} s; scoring on {len(test)} test texts")
    report = evaluate(clf, test, per_class_rows=True)
    student = clf.student()
    embedder = clf.embedder(student.embed_model)
    passes = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        student.predict(texts_of(test), embedder)
        passes.append(time.perf_counter() - began)
    speed = {"texts": len(test), "pass_seconds": passes,
             "texts_per_s": len(test) / statistics.median(passes),
             "latency_p50_ms": report["student"]["latency"]["p50_ms"],
             "latency_p95_ms": report["student"]["latency"]["p95_ms"]}
    say(f"  student: accuracy {report['student']['accuracy']:.4f}, "
        f"{speed['texts_per_s']:.0f} texts/s; the scikit-learn peer")
    return {"train": trained, "report": report, "speed": speed,
            "peer": sklearn_peer(embed, ws, intents, train_pairs, test)}


def sklearn_peer(embed: Callable[..., Any], ws: Workspace, intents: list[str],
                 train_pairs: list[Pair], test: list[Pair]) -> dict[str, Any]:
    """scikit-learn's LogisticRegression(C=10) on the same embeddings, and the library's own
    L-BFGS fit of the same model once (no cross-validation, no calibration), both timed."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from feldspar.classify.fitting import fit_logistic, logits
    from feldspar.classify.student import REGULARIZATION
    from feldspar.evaluate.classifying import class_report

    index = {label: i for i, label in enumerate(intents)}
    began = time.perf_counter()
    x_train = embed(ws.embedder, texts_of(train_pairs))
    embed_seconds = time.perf_counter() - began
    x_test = embed(ws.embedder, texts_of(test))
    y_train = np.array([index[label] for label in gold_of(train_pairs)])
    out: dict[str, Any] = {"embed_train_seconds": embed_seconds}

    def score(predicted: np.ndarray) -> dict[str, float]:
        report = class_report(gold_of(test), [intents[int(i)] for i in predicted], intents)
        return {"texts": len(test), "accuracy": report.accuracy, "macro_f1": report.macro_f1}

    began = time.perf_counter()
    model = LogisticRegression(C=10, max_iter=3000).fit(x_train, y_train)
    fit_seconds = time.perf_counter() - began
    predicted = model.classes_[model.predict_proba(x_test).argmax(1)]
    out["sklearn"] = {"model": "LogisticRegression(C=10, max_iter=3000)",
                      "fit_seconds": fit_seconds, "iterations": int(model.n_iter_.max()),
                      **score(predicted)}
    began = time.perf_counter()
    params = fit_logistic(x_train, y_train, len(intents), l2=REGULARIZATION / len(y_train))
    out["feldspar_fit_once"] = {"fit_seconds": time.perf_counter() - began,
                                **score(logits(params, x_test).argmax(1))}
    say(f"  sklearn: accuracy {out['sklearn']['accuracy']:.4f} in {fit_seconds:.1f} s "
        f"(one feldspar fit: {out['feldspar_fit_once']['fit_seconds']:.1f} s)")
    return out


# b. 8 examples per intent


def few_examples(ws: Workspace, intents: list[str], train_pairs: list[Pair],
                 test: list[Pair], seeds: int) -> dict[str, Any]:
    runs = []
    for seed in range(seeds):
        picked = per_class(train_pairs, SHOTS, seed)
        say(f"b. {SHOTS} per intent, seed {seed}: {len(picked)} texts")
        clf = new_classifier(ws, f"intents_{SHOTS}_seed{seed}", intents)
        trained = train(clf, picked)
        report = evaluate(clf, test)
        runs.append({"seed": seed, "train": trained, "accuracy": report["student"]["accuracy"],
                     "macro_f1": report["student"]["macro_f1"],
                     "threshold_for_0.9": clf.student().threshold_for(0.9)})
        say(f"  accuracy {runs[-1]['accuracy']:.4f}, macro-F1 {runs[-1]['macro_f1']:.4f}")
    return {"per_class": SHOTS, "runs": runs,
            "median_accuracy": statistics.median(r["accuracy"] for r in runs),
            "median_macro_f1": statistics.median(r["macro_f1"] for r in runs),
            "median_train_seconds": statistics.median(r["train"]["wall_seconds"]
                                                      for r in runs)}


# c. The teacher on 77 intents


def teacher_intents(ws: Workspace, test: list[Pair], warm_text: str, sample_size: int,
                    student_speed: float) -> dict[str, Any]:
    """Zero-shot and few-shot, each with the cascade of the seed-0 8-per-intent student
    (whose stored examples the few-shot prompts draw on)."""
    clf = ws.classifier(f"intents_{SHOTS}_seed0")
    out: dict[str, Any] = {"sample": sample_size}
    for name, shots in (("zero_shot", 0), ("few_shot", SHOTS)):
        teacher = clf.teacher(shots=shots)
        say(f"c. teacher {teacher.name}, 77 intents, {shots} shots, {sample_size} texts")
        warm_teacher(teacher, warm_text)
        report = evaluate(clf, test, teacher, sample_size)
        speed = report["teacher"]["throughput_per_s"]
        report["student_to_teacher_speed"] = student_speed / speed if speed else None
        out[name] = report
        say(f"  teacher accuracy {report['teacher']['accuracy']:.4f}, {speed:.2f} texts/s; "
            f"cascade matching it: {report['matching_teacher']}")
    return out


# d. Departments


def departments(ws: Workspace, train_pairs: list[Pair], test: list[Pair], sample_size: int,
                distill_size: int) -> dict[str, Any]:
    from feldspar.classify.teacher import Teacher
    from feldspar.errors import UserError
    from feldspar.evaluate.classifying import class_report

    labels = list(DEPARTMENTS)
    test_d = to_departments(test)
    distill_pairs = to_departments(sample(train_pairs, distill_size, SAMPLE_SEED))
    chosen = set(texts_of(distill_pairs))
    unused = next(text for text, _ in train_pairs if text not in chosen)
    clf = new_classifier(ws, "departments", labels, DESCRIPTIONS)
    teacher = clf.teacher(shots=0)
    warm_teacher(teacher, unused)
    out: dict[str, Any] = {"labels": labels, "descriptions": DESCRIPTIONS,
                           "distill_texts": len(distill_pairs), "sample": sample_size}

    say(f"d. distilling: {teacher.name} labels {len(distill_pairs)} train texts "
        "into 6 departments")
    before = (teacher.cost.texts, teacher.cost.seconds)
    began = time.perf_counter()
    try:
        done = clf.distill(texts_of(distill_pairs), teacher, review_below=0.0,
                           on_label=counter("teacher labels", len(distill_pairs)))
    except UserError as exc:  # e.g. the teacher gave every text one department
        say(f"  distillation failed: {exc}")
        out["error"] = str(exc)
        return out
    labelled = teacher.cost.texts - before[0]
    labels_by_teacher = [p.label for p in done.predictions]
    agreement = class_report(gold_of(distill_pairs), labels_by_teacher, labels)
    default_below = ws.settings.classify_review_below
    out["distill"] = {
        "wall_seconds": time.perf_counter() - began,
        "teacher_texts_per_s": labelled / (teacher.cost.seconds - before[1]),
        "teacher_accuracy_on_distill_texts": agreement.accuracy,
        "teacher_macro_f1_on_distill_texts": agreement.macro_f1,
        "teacher_label_counts": {label: labels_by_teacher.count(label) for label in labels},
        "default_review_below": default_below,
        "below_default_review": sum(p.confidence < default_below for p in done.predictions),
        "train": {key: done.student.info[key] for key in
                  ("examples", "sources", "train_seconds", "cv_accuracy")}}
    say(f"  teacher agrees with the hidden gold on {agreement.accuracy:.3f}; scoring the "
        f"distilled student and the teacher on {sample_size} test texts")
    report = evaluate(clf, test_d, teacher, sample_size, per_class_rows=True)
    out["distilled_all"] = report
    generating = Teacher(teacher.model, labels, DESCRIPTIONS, mode="generate")
    say(f"  the same teacher in generate mode on the {sample_size} test texts")
    out["teacher_generate"] = evaluate(clf, test_d, generating, sample_size)["teacher"]
    teacher_accuracy = report["teacher"]["accuracy"]
    student_accuracy = report["student"]["accuracy"]
    out["student_over_teacher"] = {
        "full_test_vs_sample": student_accuracy / teacher_accuracy if teacher_accuracy
        else None,
        "same_sample": report["cascade"]["student_accuracy_on_sample"] / teacher_accuracy
        if teacher_accuracy else None,
        "vs_teacher_on_distill_texts": student_accuracy / agreement.accuracy
        if agreement.accuracy else None,
        "target": 0.95}
    say(f"  distilled student {student_accuracy:.4f}, teacher {teacher_accuracy:.4f}; "
        f"the student trained on confident labels only (>= {default_below})")
    try:
        confident = train(clf)  # the default review_below: the confident labels only
        out["distilled_confident"] = {"train": confident, "review_below": default_below,
                                      **evaluate(clf, test_d, per_class_rows=True)}
    except UserError as exc:
        out["distilled_confident"] = {"error": str(exc), "review_below": default_below}

    say(f"  reference: a student on the gold departments of the same {len(distill_pairs)} "
        "texts")
    gold = new_classifier(ws, "departments_gold", labels, DESCRIPTIONS)
    out["gold_labels"] = {"train": train(gold, distill_pairs),
                          **evaluate(gold, test_d, per_class_rows=True)}
    return out


def summary(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The table's rows: what, texts, accuracy, macro-F1, texts/s."""
    rows: list[tuple[str, str, str, str, str]] = []

    def row(what: str, part: dict[str, Any] | None, speed: float | None = None) -> None:
        if part is None:
            return
        rate = part.get("throughput_per_s") if speed is None else speed
        rows.append((what, str(part.get("texts", "")), f"{part['accuracy']:.4f}",
                     f"{part['macro_f1']:.4f}" if "macro_f1" in part else "",
                     f"{rate:.1f}" if rate else ""))

    full = result.get("full_data")
    if full:
        row("student, all train (77)", full["report"]["student"], full["speed"]["texts_per_s"])
        row("sklearn LR C=10, same embeddings", full["peer"]["sklearn"])
    few = result.get("few_examples")
    if few:
        rows.append((f"student, {SHOTS}/intent (median of {len(few['runs'])})",
                     str(result["test_texts"]), f"{few['median_accuracy']:.4f}",
                     f"{few['median_macro_f1']:.4f}", ""))
    for name in ("zero_shot", "few_shot"):
        part = (result.get("teacher_intents") or {}).get(name)
        if part:
            row(f"teacher {name} (77)", part["teacher"])
            match = part["matching_teacher"]
            rows.append((f"  cascade matching it, {SHOTS}/intent student", "",
                         f"{match['accuracy']:.4f}" if match else "-", "",
                         f"escalates {match['escalation_rate']:.1%}" if match else
                         "never reaches it"))
    dept = result.get("departments") or {}
    if "distilled_all" in dept:
        report = dept["distilled_all"]
        row("teacher zero-shot (6), score", report["teacher"])
        row("teacher zero-shot (6), generate", dept.get("teacher_generate"))
        row("distilled student, all labels (6)", report["student"])
        confident = dept["distilled_confident"]
        if "student" in confident:
            row(f"distilled student, conf >= {confident['review_below']}",
                confident["student"])
        row("student on gold labels, same texts", dept["gold_labels"]["student"])
        match = report["matching_teacher"]
        rows.append(("  cascade matching it, distilled student", "",
                     f"{match['accuracy']:.4f}" if match else "-", "",
                     f"escalates {match['escalation_rate']:.1%}" if match else
                     "never reaches it"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--teacher-sample", type=int, default=200,
                        help="test texts the teacher labels (parts c and d)")
    parser.add_argument("--distill-texts", type=int, default=600,
                        help="train texts the teacher labels for distillation (part d)")
    parser.add_argument("--seeds", type=int, default=3, help="samples of 8 per intent")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 12 train and 4 test texts per intent, 10 texts "
                             "for the teacher, 60 to distil, 2 seeds")
    args = parser.parse_args()
    intents = categories(args.data)
    train_pairs, test = load("train", args.data), load("test", args.data)
    if args.quick:
        train_pairs, test = per_class(train_pairs, 12, 1), per_class(test, 4, 1)
        args.teacher_sample, args.distill_texts, args.seeds = 10, 60, 2
    name = "classify_quick" if args.quick else "classify"
    result: dict[str, Any] = {
        "data": "BANKING77 (PolyAI), train.csv / test.csv", "quick": args.quick,
        "train_texts": len(train_pairs), "test_texts": len(test), "intents": len(intents),
        "teacher_sample": args.teacher_sample, "distill_texts": args.distill_texts,
        "seeds": args.seeds, "sample_seed": SAMPLE_SEED, "complete": False,
        "load_average_at_start": os.getloadavg()}  # llama.cpp slows badly on a busy CPU
    with tempfile.TemporaryDirectory() as home:
        os.environ["FELDSPAR_HOME"] = home  # read by the Workspace's settings
        from feldspar import Workspace

        with Workspace() as ws:
            result["settings"] = {
                "embed_model": ws.settings.embed_model,
                "teacher": ws.settings.classify_teacher or ws.settings.chat_model,
                "target_accuracy": ws.settings.classify_target_accuracy,
                "review_below": ws.settings.classify_review_below,
                "teacher_mode": ws.settings.classify_teacher_mode}
            full = result["full_data"] = full_data(ws, intents, train_pairs, test)
            save(name, result)
            result["few_examples"] = few_examples(ws, intents, train_pairs, test, args.seeds)
            save(name, result)
            warm_text = next(text for text, _ in train_pairs)
            result["teacher_intents"] = teacher_intents(
                ws, test, warm_text, args.teacher_sample, full["speed"]["texts_per_s"])
            save(name, result)
            result["departments"] = departments(ws, train_pairs, test, args.teacher_sample,
                                                args.distill_texts)
    result["total_seconds"] = time.perf_counter() - STARTED
    result["load_average_at_end"] = os.getloadavg()
    result["complete"] = True
    path = save(name, result)

    rows = [("what", "texts", "accuracy", "macro-F1", "texts/s"), *summary(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(r, widths, strict=True))))
    full = result["full_data"]
    print(f"student training on {full['train']['examples']} texts: "
          f"{full['train']['wall_seconds']:.1f} s (cross-validated accuracy "
          f"{full['train']['cv_accuracy']:.4f}); sklearn fit "
          f"{full['peer']['sklearn']['fit_seconds']:.1f} s on embeddings made in "
          f"{full['peer']['embed_train_seconds']:.1f} s; student latency p50 "
          f"{full['speed']['latency_p50_ms']:.1f} ms")
    for shots in ("zero_shot", "few_shot"):
        ratio = result["teacher_intents"][shots]["student_to_teacher_speed"]
        if ratio:
            print(f"student / teacher {shots} throughput: {ratio:.0f}x")
    ratios = result["departments"].get("student_over_teacher")
    if ratios:
        print(f"distilled student / teacher accuracy: {ratios['full_test_vs_sample']:.3f} "
              f"(same sample {ratios['same_sample']:.3f}; target >= {ratios['target']})")
    print(f"total {result['total_seconds'] / 60:.1f} min; saved {path}")


if __name__ == "__main__":
    main()
