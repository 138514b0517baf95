"""`feldspar classify ...`: label sets, students, distillation, review and the cascade."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.app import CONTEXT
from feldspar.cli.ingest import open_workspace
from feldspar.cli.output import csv_cell, csv_uncell, print_json, print_table
from feldspar.errors import UserError

if TYPE_CHECKING:
    from feldspar.classify.cascade import CascadeResult
    from feldspar.classify.data import Row
    from feldspar.classify.student import Student
    from feldspar.classify.teacher import Teacher


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


@contextmanager
def progress(desc: str, unit: str, total: int | None = None
             ) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal); yields its update."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None,
              leave=False) as bar:
        yield bar.update


def data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--text-column and --label-column."""
    function = click.option("--label-column", default="label", show_default=True,
                            help="The column that holds the labels.")(function)
    return click.option("--text-column", default="text", show_default=True,
                        help="The column that holds the texts.")(function)


def teacher_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--teacher and --shots."""
    function = click.option("--shots", type=click.IntRange(0, 32), default=None,
                            help="Show the teacher this many similar labelled examples "
                                 "(default: as when distilled, else classify_shots; 0: "
                                 "zero-shot)."
                            )(function)
    return click.option("--teacher", metavar="MODEL",
                        help="The LLM teacher (default: the one that distilled the "
                             "student, else classify_teacher, else chat_model).")(function)


def check_no_teacher(no_teacher: bool, teacher: str | None, shots: int | None) -> None:
    if no_teacher and (teacher or shots is not None):
        raise click.UsageError("--no-teacher cannot go with --teacher or --shots")


def read(path: Path, *, labelled: bool, text_column: str, label_column: str) -> list[Row]:
    from feldspar.classify.data import Columns, read_rows

    return read_rows(path, labelled=labelled, columns=Columns(text_column, label_column))


@click.group(context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar classify create tickets --labels billing,bug,account,other
  feldspar classify train tickets --data labelled.csv
  feldspar classify distill tickets --data unlabelled.csv --teacher granite-3.3-2b-instruct
  feldspar classify review tickets tickets-review.csv
  feldspar classify predict tickets --data new.csv --json
  feldspar eval classify tickets --data test.csv

\b
From no labels to a cascade: create a label set; have the LLM teacher label your texts
(distill), which trains a student on the labels it is sure of and writes the rest to a
review file; correct that file and import it (review); then predict: the student answers
what it is sure of and sends the rest to the teacher. See docs/classify.md.
""")
def classify() -> None:
    """Classify texts: label sets, a cheap student, an LLM teacher, and the cascade."""


@classify.command("create", epilog="""\b
Examples:
  feldspar classify create tickets --labels billing,bug,account,other
  feldspar classify create intents --labels-file labels.txt --descriptions labels.json

\b
--descriptions is a JSON object {"billing": "invoices, charges and refunds", ...} or a
CSV with label and description columns; the teacher reads them.
""")
@click.argument("name")
@click.option("--labels", "labels", multiple=True, metavar="A,B,C",
              help="The labels, comma-separated (repeatable).")
@click.option("--labels-file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file with one label a line.")
@click.option("--descriptions", type=click.Path(path_type=Path, dir_okay=False),
              help="What each label means (JSON object or CSV).")
def create_labelset(name: str, labels: tuple[str, ...], labels_file: Path | None,
                    descriptions: Path | None) -> None:
    """Create the label set NAME."""
    from feldspar.classify import labelsets

    given = labelsets.split_labels(labels) + _label_lines(labels_file)
    if not given:
        raise click.UsageError("Give the labels: --labels a,b,c or --labels-file FILE")
    described = labelsets.read_descriptions(descriptions) if descriptions else None
    with open_workspace() as ws:
        made = labelsets.create(ws.store, name, given, described)
    click.echo(f"Created label set '{made.name}' with {len(made.labels)} labels.")


def _label_lines(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise UserError(f"Cannot read {path}: {reason}") from None
    return [line.strip() for line in lines if line.strip()]


@classify.command("update", epilog="""\b
Examples:
  feldspar classify update tickets --add security
  feldspar classify update tickets --remove other --descriptions labels.json

\b
A student trained before a change of labels must be trained again (feldspar classify
train NAME, on the stored examples); examples of a removed label are kept, unused.
""")
@click.argument("name")
@click.option("--add", multiple=True, metavar="A,B", help="Labels to add.")
@click.option("--remove", multiple=True, metavar="A,B", help="Labels to remove.")
@click.option("--descriptions", type=click.Path(path_type=Path, dir_okay=False),
              help="Descriptions to set (JSON object or CSV).")
def update_labelset(name: str, add: tuple[str, ...], remove: tuple[str, ...],
                    descriptions: Path | None) -> None:
    """Add or remove labels of NAME, or change their descriptions."""
    from feldspar.classify import labelsets

    if not (add or remove or descriptions):
        raise click.UsageError("Give --add, --remove or --descriptions")
    described = labelsets.read_descriptions(descriptions) if descriptions else None
    with open_workspace() as ws:
        had_student = ws.store.student(name) is not None
        changed = labelsets.update(ws.store, name, add=labelsets.split_labels(add),
                                   remove=labelsets.split_labels(remove),
                                   descriptions=described)
    click.echo(f"Label set '{name}' has {len(changed.labels)} labels.")
    if had_student and (add or remove):
        click.echo(f"Its student must be trained again: feldspar classify train {name}")


@classify.command("list", epilog="""\b
Examples:
  feldspar classify list
  feldspar classify list --json
""")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_labelsets(as_json: bool) -> None:
    """Every label set, with its examples and student."""
    with open_workspace() as ws:
        found = [(s, ws.store.student(s.name)) for s in ws.store.labelsets()]
    if as_json:
        print_json([{**asdict(s), "labels": list(s.labels), "student": dict(st.info)
                     if st else None} for s, st in found])
        return
    if not found:
        click.echo("No label sets yet; create one: feldspar classify create NAME --labels a,b")
        return
    print_table(["NAME", "LABELS", "EXAMPLES", "STUDENT", "UPDATED"],
                [(s.name, len(s.labels), s.examples,
                  _when(st.created) if st else "-", _when(s.updated)) for s, st in found])


@classify.command("show", epilog="""\b
Examples:
  feldspar classify show tickets
  feldspar classify show tickets --json
""")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show_labelset(name: str, as_json: bool) -> None:
    """A label set's labels, examples per label and its student."""
    from collections import Counter

    with open_workspace() as ws:
        clf = ws.classifier(name)
        examples = ws.store.examples(name)
        stored = ws.store.student(name)
    counts = {source: Counter(e.label for e in examples if e.source == source)
              for source in ("human", "teacher")}
    info = dict(stored.info) if stored else None
    if as_json:
        print_json({"name": name, "labels": list(clf.labels),
                    "descriptions": dict(clf.labelset.descriptions),
                    "examples": {k: dict(v) for k, v in counts.items()}, "student": info})
        return
    print_table(["LABEL", "HUMAN", "TEACHER", "DESCRIPTION"],
                [(label, counts["human"][label], counts["teacher"][label],
                  clf.labelset.descriptions.get(label, "")) for label in clf.labels])
    if info is None:
        click.echo(f"\nNo student yet: feldspar classify train {name} --data labelled.csv")
        return
    stale = "" if tuple(info.get("labels", ())) == clf.labels else \
        " (trained on other labels: train it again)"
    cv = info.get("cv_accuracy")
    click.echo(f"\nStudent: {info.get('method')} on {info.get('embed_model')}, "
               f"{info.get('examples')} examples, trained {_when(stored.created) if stored else ''}"
               + (f", cross-validated accuracy {cv:.3f}" if cv is not None else "") + stale)


@classify.command("delete", epilog="""\b
Examples:
  feldspar classify delete tickets --yes
""")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_labelset(name: str, yes: bool) -> None:
    """Delete a label set with its examples and student."""
    from feldspar.store.records import no_labelset

    with open_workspace() as ws:
        if ws.store.labelset(name) is None:
            raise no_labelset(name)
        if not yes:
            click.confirm(f"Delete label set '{name}', its examples and its student?",
                          abort=True)
        ws.store.delete_labelset(name)
    click.echo(f"Deleted label set '{name}'.")


@classify.command("train", epilog="""\b
Examples:
  feldspar classify train tickets --data labelled.csv
  feldspar classify train intents --data train.csv --label-column category --method mlp
  feldspar classify train tickets            # again, on the stored examples

\b
The data is CSV or JSONL with a text and a label column; its rows join the label set's
stored human examples (a row replaces an earlier label of the same text). The student
learns from those and from the teacher's stored labels that it was sure of (see
distill).
""")
@click.argument("name")
@click.option("--data", type=click.Path(path_type=Path, dir_okay=False),
              help="Labelled CSV or JSONL (default: the stored examples).")
@click.option("--method", type=click.Choice(["logistic", "mlp"]), default="logistic",
              show_default=True, help="The student: logistic regression or a small MLP.")
@data_options
def train_student(name: str, data: Path | None, method: str, text_column: str,
                  label_column: str) -> None:
    """Train the student of label set NAME on labelled texts."""
    from feldspar.classify.data import check_row_labels
    from feldspar.store.records import Example

    rows = read(data, labelled=True, text_column=text_column,
                label_column=label_column) if data else None
    with open_workspace() as ws:
        clf = ws.classifier(name)
        examples = None
        if rows is not None:
            check_row_labels(rows, clf.labels, name)
            examples = [Example(r.text, r.label or "") for r in rows]
        total = len(examples) if examples is not None else None
        with progress("Embedding", "text", total) as update:
            student = clf.train(examples, method=method,  # type: ignore[arg-type]
                                on_progress=update)
    _trained(name, student)


WHO = {"human": "labelled by people", "teacher": "by the teacher"}


def _trained(name: str, student: Student) -> None:
    info = student.info
    sources = info.get("sources", {})
    learned = ", ".join(f"{n} {WHO[s]}" for s, n in sources.items() if n)
    cv = info.get("cv_accuracy")
    click.echo(f"Trained the student of '{name}' on {info['examples']} examples ({learned}) "
               f"in {info['train_seconds']:.1f} s"
               + (f"; cross-validated accuracy {cv:.3f}." if cv is not None else "."))
    if info.get("skipped"):
        click.echo(f"Skipped {info['skipped']} stored examples of labels no longer in the set.")


@classify.command("distill", epilog="""\b
Examples:
  feldspar classify distill tickets --data unlabelled.csv
  feldspar classify distill tickets --data emails.jsonl --teacher granite-3.3-2b-instruct \\
      --review-below 0.8 --review-file review.csv

\b
The teacher labels every text; its labels are stored. The student trains on those it was
at least --review-below sure of; the others go to the review file (columns text, label,
suggestion, confidence; label left empty). Fill in the labels you are sure of and import
it with 'feldspar classify review NAME FILE'.
""")
@click.argument("name")
@click.option("--data", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="CSV or JSONL with a text column.")
@teacher_options
@click.option("--review-below", type=click.FloatRange(0, 1), default=None,
              help="Confidence under which a label goes to review (default: the "
                   "classify_review_below setting).")
@click.option("--review-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the texts to review (default: NAME-review.csv).")
@click.option("--method", type=click.Choice(["logistic", "mlp"]), default="logistic",
              show_default=True, help="The student: logistic regression or a small MLP.")
@data_options
def distill(name: str, data: Path, teacher: str | None, shots: int | None,
            review_below: float | None, review_file: Path | None, method: str,
            text_column: str, label_column: str) -> None:
    """Label unlabelled texts with the LLM teacher and train the student on its labels."""
    from feldspar.classify.classifier import check_share

    if review_below is not None:
        check_share("--review-below", review_below)  # NaN passes click's range
    review_path = review_file or Path(f"{name}-review.csv")
    if review_path.exists():  # a person's corrections may be in it
        raise UserError(f"{review_path} exists and may hold a person's labels: import it "
                        f"(feldspar classify review {name} {review_path}) and remove it, or "
                        "give another --review-file")
    rows = read(data, labelled=False, text_column=text_column, label_column=label_column)
    texts = [r.text for r in rows]
    with open_workspace() as ws:
        clf = ws.classifier(name)
        below = ws.settings.classify_review_below if review_below is None else review_below
        tutor = clf.teacher(teacher, shots=shots)
        with progress(f"Labelling with {tutor.name}", "text", len(texts)) as on_label:
            predictions = clf.label(texts, tutor, on_label=on_label)
        cost = tutor.cost
        unsure = [(text, p) for text, p in zip(texts, predictions, strict=True)
                  if p.confidence < below]
        click.echo(f"The teacher labelled {cost.texts} texts in {cost.seconds:.1f} s "
                   f"({cost.texts / max(cost.seconds, 1e-9):.2f} texts/s); {len(unsure)} "
                   f"were below {below:.2f} confidence.")
        if unsure:  # before training, which may fail: the labels and the file are kept
            _write_review(review_path, unsure)
            click.echo(f"Review them in {review_path}, then: feldspar classify review "
                       f"{name} {review_path}")
        with progress("Training", "text", None) as on_train:
            student = clf.train_on_teacher(predictions, tutor, below,
                                           method=method,  # type: ignore[arg-type]
                                           on_train=on_train)
    _trained(name, student)


def _write_review(path: Path, items: list[tuple[str, Any]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "label", "suggestion", "confidence"])
            for text, prediction in sorted(items, key=lambda item: item[1].confidence):
                writer.writerow([csv_cell(text), "", prediction.label,
                                 f"{prediction.confidence:.3f}"])
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror or exc}; give another "
                        "--review-file (the teacher's labels are stored)") from None


@classify.command("review", epilog="""\b
Examples:
  feldspar classify review tickets tickets-review.csv
  feldspar classify review tickets corrections.jsonl --no-train

\b
FILE has a text and a label column (the review file of distill, or any labelled file);
rows with an empty label are skipped. Each label becomes a person's example, replacing
the teacher's label of that text; the student is then trained again.
""")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--no-train", is_flag=True, help="Store the labels without retraining.")
@data_options
def review(name: str, file: Path, no_train: bool, text_column: str,
           label_column: str) -> None:
    """Import a person's labels (a corrected review file) and retrain the student."""
    from feldspar.classify.data import check_row_labels
    from feldspar.store.records import Example

    rows = [r for r in read(file, labelled=False, text_column=text_column,
                            label_column=label_column) if r.label]
    if not rows:
        raise UserError(f"{file} has no labelled rows; fill in the '{label_column}' column "
                        "of the texts you are sure of")
    with open_workspace() as ws:
        clf = ws.classifier(name)
        check_row_labels(rows, clf.labels, name)
        # The review file's texts went through csv_cell: the stored texts are the originals.
        count = clf.review([Example(csv_uncell(r.text), r.label or "") for r in rows])
        click.echo(f"Stored {count} reviewed labels for '{name}'.")
        if not no_train:
            with progress("Training", "text", None) as update:
                student = clf.train(on_progress=update)
            _trained(name, student)


@classify.command("predict", epilog="""\b
Examples:
  feldspar classify predict tickets --data new.csv
  feldspar classify predict tickets --data new.csv --target-accuracy 0.95 --json
  feldspar classify predict tickets --data new.csv --threshold 0.7 --teacher granite-3.3-2b-instruct
  feldspar classify predict tickets --data new.csv --no-teacher

\b
The student labels every text; those it is less sure of than the threshold go to the
teacher. The threshold is the lowest at which the student's estimated accuracy on the
texts it keeps reaches --target-accuracy (the classify_target_accuracy setting), or
--threshold. With --no-teacher those texts keep the student's label, marked escalated.
""")
@click.argument("name")
@click.option("--data", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="CSV or JSONL with a text column.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Escalate texts the student is less sure of than this.")
@click.option("--target-accuracy", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Choose the threshold for this accuracy of the student's answers.")
@teacher_options
@click.option("--no-teacher", is_flag=True, help="Never ask the teacher.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: the predictions and the summary.")
@data_options
def predict(name: str, data: Path, threshold: float | None, target_accuracy: float | None,
            teacher: str | None, shots: int | None, no_teacher: bool, as_json: bool,
            text_column: str, label_column: str) -> None:
    """Label texts with the student, and the teacher for the hard ones."""
    check_no_teacher(no_teacher, teacher, shots)
    rows = read(data, labelled=False, text_column=text_column, label_column=label_column)
    texts = [r.text for r in rows]
    with open_workspace() as ws:
        clf = ws.classifier(name)

        def loader() -> Teacher:  # loaded only if some text needs it
            return clf.teacher(teacher, shots=shots)

        with progress("Student", "text", len(texts)) as on_student, \
                progress("Teacher", "text", None) as on_teacher:
            result = clf.predict(texts, teacher=None if no_teacher else loader,
                                 threshold=threshold,
                                 target_accuracy=target_accuracy, on_progress=on_student,
                                 on_teacher=on_teacher)
    if as_json:
        print_json({"predictions": [{"text": text, **asdict(p)} for text, p in
                                    zip(texts, result.predictions, strict=True)],
                    "summary": result.summary()})
        return
    print_table(["TEXT", "LABEL", "CONFIDENCE", "BY"],
                [(_short(text), p.label, f"{p.confidence:.3f}",
                  p.source + (" (escalated)" if p.escalated and p.source == "student" else ""))
                 for text, p in zip(texts, result.predictions, strict=True)])
    click.echo(_summary_line(result), err=True)


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _summary_line(result: CascadeResult) -> str:
    n = len(result.predictions)
    target = f" (target accuracy {result.target_accuracy})" if result.target_accuracy else ""
    below = (f"below the threshold {result.threshold:.3f}{target}" if result.threshold <= 1
             else f"escalated: the student reaches the target accuracy "
                  f"{result.target_accuracy} on no share of its training texts")
    line = (f"{n} texts: {n - result.escalated} by the student, {result.escalated} "
            f"({result.escalation_rate:.1%}) {below}")
    if result.teacher is not None and result.teacher.texts:
        t = result.teacher
        line += (f", answered by the teacher in {t.seconds:.1f} s ({t.prompt_tokens} prompt "
                 f"+ {t.completion_tokens} completion tokens)")
    elif result.escalated:
        line += ", kept by the student (no teacher)"
    return line + f"; the student took {result.student_seconds:.2f} s."

