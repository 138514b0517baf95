"""`feldspar eval rag`: ask questions with known answers, score the replies, save a report."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.app import CONTEXT
from feldspar.cli.classify import check_no_teacher, data_options, teacher_options
from feldspar.cli.ingest import open_workspace
from feldspar.cli.output import print_json
from feldspar.errors import UserError

if TYPE_CHECKING:
    from feldspar.evaluate import CaseResult, RagCase
    from feldspar.evaluate.guarding import GuardReport
    from feldspar.guard import Direction, Guard
    from feldspar.rag.answer import Answer
    from feldspar.workspace import Workspace

# Exit status of a run that scored what it could but where some cases failed.
EXIT_ERRORS = 3


@click.group("eval", context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar eval rag --dataset questions.jsonl --collection handbook
  feldspar eval rag --dataset ./squad_v1_dev_subset_xquad_en --limit 150
  feldspar eval guard --dataset labelled.jsonl --target-fpr 0.05
  feldspar eval classify tickets --data test.csv
""")
def eval_group() -> None:
    """Measure answer quality on known questions, the guard and classifiers on labelled
    texts."""


@eval_group.command("rag", epilog=f"""\b
Examples:
  feldspar eval rag --dataset questions.jsonl --collection handbook
  feldspar eval rag --dataset ./squad_v1_dev_subset_xquad_en --limit 150 -m granite-3.3-2b-instruct
  feldspar eval rag --dataset ./piaf_fr --limit 100 --json --output piaf.json

\b
DATASET is a JSONL file of cases, one object a line:
  {{"id": "q1", "question": "...", "gold_sources": ["leave.md"], "answers": ["20 days"]}}
asked of a collection you ingested, or a SQuAD-style folder (passages.jsonl and
questions.jsonl): its passages are written to FELDSPAR_HOME/eval/COLLECTION/corpus and
ingested first, except those of a fifth of the questions' articles, whose questions
become unanswerable cases. Metrics: docs/evaluation.md.

\b
Exit status: 0 when every case was scored, {EXIT_ERRORS} when some failed (the report
has their errors), 1 on an error that stopped the run.
""")
@click.option("--dataset", required=True, type=click.Path(path_type=Path),
              metavar="FILE|FOLDER",
              help="A JSONL file of cases, or a SQuAD-style folder.")
@click.option("-c", "--collection",
              help="Collection to ask (default: the 'collection' setting for a file, "
                   "eval-FOLDERNAME for a folder).")
@click.option("-m", "--model", help="Chat model (default: the chat_model setting).")
@click.option("--limit", type=click.IntRange(min=1),
              help="Ask a seeded sample of N cases, keeping the share of unanswerable ones.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to save the JSON report (default: "
                   "FELDSPAR_HOME/reports/eval-rag-UTCTIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def rag(dataset: Path, collection: str | None, model: str | None, limit: int | None,
        output: Path | None, as_json: bool) -> None:
    """Score answers on a set of known questions.

    Asks every case of DATASET, scores retrieval, the answer, its citations and
    abstention, prints the summary and saves the full report.
    """
    from tqdm import tqdm

    from feldspar.evaluate import load_cases, run_rag, sample_cases, squad_folder

    started = datetime.now(UTC)
    with open_workspace() as ws:
        if dataset.is_dir():
            name = collection or f"eval-{dataset.resolve().name}"
            out = _eval_folder(ws, name)
            corpus, cases = squad_folder(dataset, out, limit=limit)
            _ingest(ws, corpus, name)
        else:
            cases = load_cases(dataset)
            cases = sample_cases(cases, limit) if limit else cases
            name = ws.collection(collection).name  # no such collection: say so before asking

        def ask(case: RagCase) -> Answer:
            return ws.ask(case.question, collection=name, model=model)

        with tqdm(total=len(cases), unit="question", desc="Asking", file=sys.stderr,
                  disable=None, leave=False) as bar:
            def step(result: CaseResult) -> None:
                bar.update(1)

            report = run_rag(cases, ask, on_case=step)
        data = {"run": {"dataset": str(dataset.resolve()), "collection": name,
                        "model": model or ws.settings.chat_model, "limit": limit,
                        "started": started.isoformat(timespec="seconds")},
                **report.to_dict()}

    if output is None:
        output = ws.settings.home / "reports" / f"eval-rag-{started:%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        print_json(data)
    else:
        click.echo(report.table())
    errors = report.groups()["errors"]
    for result in errors[:3]:
        click.echo(f"Case {result.case.id} failed: {result.error}", err=True)
    click.echo(f"Report saved to {output}", err=True)
    if errors:
        sys.exit(EXIT_ERRORS)


def _eval_folder(ws: Workspace, collection: str) -> Path:
    """Where the corpus of a dataset folder goes; refuses a collection name that is not a
    plain name, and a collection that holds documents of its own (the corpus replaces
    whatever the collection holds)."""
    from feldspar.errors import UserError

    if not collection or collection in (".", "..") or any(c in collection for c in "/\\"):
        raise UserError(f"'{collection}' cannot name an evaluation collection: use letters, "
                        "digits and dashes")
    out = ws.settings.home / "eval" / collection
    corpus = (out / "corpus").resolve()
    existing = ws.store.collection(collection) is not None
    if existing and any(Path(d.path).parent != corpus
                        for d in ws.store.documents(collection, None)):
        raise UserError(f"Collection '{collection}' holds other documents; give the "
                        "evaluation its own collection with --collection")
    return out


def _ingest(ws: Workspace, corpus: Path, collection: str) -> None:
    """Bring the collection up to date with the corpus folder (unchanged files are skipped,
    passages no longer in it are removed)."""
    from tqdm import tqdm

    with tqdm(unit="file", desc="Ingesting the corpus", file=sys.stderr, disable=None,
              leave=False) as bar:
        def total(n: int) -> None:
            bar.reset(total=n)

        def step(path: str, status: str) -> None:
            bar.update(1)

        report = ws.ingest([corpus], collection, prune=True, on_file=step, on_total=total)
    if report.skipped:
        click.echo(f"{len(report.skipped)} corpus files were not ingested, e.g. "
                   f"{report.skipped[0].path}: {report.skipped[0].reason}", err=True)


@eval_group.command("guard", epilog="""\b
Examples:
  feldspar eval guard --dataset labelled.jsonl
  feldspar eval guard --dataset labelled.jsonl --risk harm --risk jailbreak --target-fpr 0.05
  feldspar eval guard --dataset answers.jsonl --direction output --json

\b
DATASET is a JSONL file, one text a line, with the risks it carries ([] when benign):
  {"text": "How do I hotwire a car?", "risks": ["harm"]}
  {"text": "How do I kill a Python process?", "risks": [], "source": "xstest"}
Texts are screened as the policy for --direction says (its thresholds decide what is
flagged); nothing goes to the audit log. With --target-fpr, each risk also gets the
threshold that flags at most that share of the texts without it, and the policy lines
that set it. Metrics: docs/guard.md.
""")
@click.option("--dataset", required=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="A JSONL file of labelled texts.")
@click.option("--risk", "risks", multiple=True, metavar="NAME",
              help="Evaluate this risk (repeatable; default: the risks the labels name).")
@click.option("--direction", type=click.Choice(["input", "output", "document"]),
              default="input", show_default=True, help="Whose texts they are.")
@click.option("--target-fpr", type=click.FloatRange(0, 1), metavar="RATE",
              help="Tune each risk's threshold for this false-positive rate (e.g. 0.05).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to save the JSON report (default: "
                   "FELDSPAR_HOME/reports/eval-guard-UTCTIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def guard_eval(dataset: Path, risks: tuple[str, ...], direction: Direction,
               target_fpr: float | None, output: Path | None, as_json: bool) -> None:
    """Score the guard on labelled texts: precision, recall, F1 and AUPRC per risk, and
    the flag rate on benign texts."""
    from tqdm import tqdm

    from feldspar.evaluate.guarding import load_guard_cases, run_guard_eval

    started = datetime.now(UTC)
    cases = load_guard_cases(dataset)
    with open_workspace() as ws:
        screen = ws.guard
        with tqdm(total=len(cases), unit="text", desc="Screening", file=sys.stderr,
                  disable=None, leave=False) as bar:
            report = run_guard_eval(screen, cases, risks=list(risks) or None,
                                    direction=direction, target_fpr=target_fpr,
                                    on_batch=bar.update)
        home = ws.settings.home
    data = {"run": {"dataset": str(dataset.resolve()), "direction": direction,
                    "started": started.isoformat(timespec="seconds")}, **report.to_dict()}
    if output is None:
        output = home / "reports" / f"eval-guard-{started:%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        print_json(data)
    else:
        _guard_table(report, direction, screen)
    click.echo(f"Report saved to {output}", err=True)


def _guard_table(report: GuardReport, direction: Direction, guard: Guard) -> None:
    from feldspar.cli.output import print_table

    print_table(["risk", "pos", "neg", "threshold", "precision", "recall", "F1", "AUPRC",
                 "FPR"],
                [(r.risk, r.positives, r.negatives, f"{r.threshold:.2f}",
                  f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}", f"{r.auprc:.3f}",
                  f"{r.false_positive_rate:.3f}") for r in report.risks])
    click.echo(f"\nBenign texts flagged: {report.benign_flag_rate:.3f}" + "".join(
        f"; {source} {rate:.3f}" for source, rate in report.benign_flag_rate_by_source.items()))
    click.echo(f"{report.cases} texts in {report.seconds:.1f} s: {report.texts_per_s:.0f} "
               f"texts/s ({report.per_text_ms:.1f} ms each, batched); verdicts by detector: "
               + ", ".join(f"{k} {v}" for k, v in sorted(report.detectors.items())))
    tuned = [r for r in report.risks if r.tuned]
    unreachable = [r.risk for r in report.risks if report.target_fpr is not None
                   and r.tuned is None and r.positives and r.negatives]
    if unreachable:
        click.echo(f"\nNo threshold reaches the target for {', '.join(unreachable)} "
                   "(negatives score 1.0).")
    if tuned:
        click.echo(f"\nThresholds for a false-positive rate of at most {report.target_fpr}:")
        print_table(["risk", "threshold", "precision", "recall", "F1", "FPR"],
                    [(r.risk, f"{r.tuned['threshold']:.4f}", f"{r.tuned['precision']:.3f}",
                      f"{r.tuned['recall']:.3f}", f"{r.tuned['f1']:.3f}",
                      f"{r.tuned['false_positive_rate']:.3f}") for r in tuned if r.tuned])
        click.echo("\nIn feldspar.toml:")
        click.echo(f"[guard_policy.{direction}]")
        for r in tuned:
            assert r.tuned is not None
            action = guard.rule(direction, r.risk).action
            click.echo(f'{r.risk} = {{ action = "{action}", threshold = '
                       f'{r.tuned["threshold"]:.4f} }}')


@eval_group.command("classify", epilog="""\b
Examples:
  feldspar eval classify tickets --data test.csv
  feldspar eval classify intents --data test.csv --label-column category --no-teacher
  feldspar eval classify tickets --data test.csv --teacher-limit 0 --json

\b
The student classifies every text; the teacher (unless --no-teacher) a seeded sample of
--teacher-limit texts, on which the cascade is scored too: at the threshold chosen for
--target-accuracy (or --threshold), and at every threshold (the curve of accuracy against
the share of texts escalated), with the lowest escalation that matches the teacher's
accuracy. The confusion matrix of the student is saved as a PNG.
""")
@click.argument("name")
@click.option("--data", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Labelled CSV or JSONL.")
@teacher_options
@click.option("--no-teacher", is_flag=True, help="Score the student only.")
@click.option("--teacher-limit", type=click.IntRange(min=0), default=200, show_default=True,
              help="Texts the teacher and the cascade are scored on (0: all).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="The cascade's confidence threshold.")
@click.option("--target-accuracy", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Choose the cascade's threshold for this accuracy of the student.")
@click.option("--confusion", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to save the confusion matrix PNG (default: next to the report).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to save the JSON report (default: "
                   "FELDSPAR_HOME/reports/eval-classify-NAME-UTCTIME.json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@data_options
def classify_eval(name: str, data: Path, teacher: str | None, shots: int | None,
                  no_teacher: bool, teacher_limit: int, threshold: float | None,
                  target_accuracy: float | None, confusion: Path | None,
                  output: Path | None, as_json: bool, text_column: str,
                  label_column: str) -> None:
    """Score a label set's student, teacher and cascade on labelled texts: accuracy,
    macro-F1, per-label scores, latency and throughput."""
    from feldspar.classify.confusion import save_confusion_png
    from feldspar.classify.data import check_row_labels
    from feldspar.cli.classify import progress, read
    from feldspar.evaluate.classifying import evaluate_classifier
    from feldspar.extras import require

    check_no_teacher(no_teacher, teacher, shots)
    require("PIL", extra="classify", purpose="The confusion matrix PNG needs Pillow")
    started = datetime.now(UTC)
    rows = read(data, labelled=True, text_column=text_column, label_column=label_column)
    with open_workspace() as ws:
        clf = ws.classifier(name)
        check_row_labels(rows, clf.labels, name)
        tutor = None if no_teacher else clf.teacher(teacher, shots=shots)
        texts, gold = [r.text for r in rows], [r.label or "" for r in rows]
        sample = min(teacher_limit or len(texts), len(texts))
        with progress("Student", "text", len(texts)) as on_student, \
                progress("Teacher", "text", sample if tutor else 0) as on_teacher:
            report, student = evaluate_classifier(
                clf, texts, gold, teacher=tutor, teacher_limit=teacher_limit or None,
                threshold=threshold, target_accuracy=target_accuracy,
                on_student=on_student, on_teacher=on_teacher)
        home = ws.settings.home
    stem = f"eval-classify-{name}-{started:%Y%m%dT%H%M%SZ}"
    output = output or home / "reports" / f"{stem}.json"
    picture = confusion or output.with_suffix(".png")
    data_out = {"run": {"labelset": name, "data": str(data.resolve()),
                        "started": started.isoformat(timespec="seconds")},
                **report, "confusion": student.confusion.tolist(),
                "confusion_png": str(picture)}
    try:  # the report first: it holds everything, the picture is a view of it
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data_out, indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {output}: {exc.strerror or exc}; give another "
                        "--output") from None
    save_confusion_png(student.confusion, student.labels, picture,
                       title=f"{name}: student on {data.name}")
    if as_json:
        print_json(data_out)
    else:
        _classify_table(data_out)
    click.echo(f"Report saved to {output}; confusion matrix in {picture}", err=True)


def _classify_table(report: dict[str, Any]) -> None:
    from feldspar.cli.output import print_table

    def ms(part: dict[str, Any]) -> str:
        p50 = part["latency"]["p50_ms"]
        return "-" if p50 is None else f"{p50:.1f}"

    rows = []
    for who in ("student", "teacher", "cascade"):
        part = report.get(who)
        if part:
            rate = part["throughput_per_s"]
            rows.append((who, part["texts"], f"{part['accuracy']:.3f}",
                         f"{part['macro_f1']:.3f}", "-" if rate is None else f"{rate:.1f}",
                         ms(part)))
    print_table(["", "texts", "accuracy", "macro-F1", "texts/s", "p50 ms"], rows)
    cascade = report.get("cascade")
    if cascade:
        threshold = cascade["threshold"]
        click.echo(f"\nCascade: threshold {'-' if threshold is None else f'{threshold:.3f}'}"
                   f", {cascade['escalation_rate']:.1%} escalated; the student alone scores "
                   f"{cascade['student_accuracy_on_sample']:.3f} on the same texts.")
        match = report.get("matching_teacher")
        if match:
            click.echo(f"It matches the teacher's accuracy from threshold "
                       f"{match['threshold']:.3f}, escalating {match['escalation_rate']:.1%}.")
    worst = sorted(report["student"]["per_class"], key=lambda r: r["f1"])[:5]
    click.echo("\nStudent's weakest labels: " + ", ".join(
        f"{r['label']} (F1 {r['f1']:.2f})" for r in worst))
