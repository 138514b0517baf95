"""Classification: data files, label sets, the student (real MiniLM embeddings, real
training), the teacher (the real packaged SmolLM2 with its grammar), distillation, review,
the cascade and the commands. A scripted chat model stands in for a teacher only where the
test is about what surrounds it (the cascade's routing, distillation's bookkeeping, the
confidence arithmetic)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from feldspar.classify import labelsets
from feldspar.classify.cascade import cascade
from feldspar.classify.data import Columns, read_rows
from feldspar.classify.student import Student, accuracy_curve
from feldspar.classify.teacher import Teacher, label_confidence
from feldspar.cli import cli
from feldspar.cli.output import csv_uncell
from feldspar.config import Settings
from feldspar.datatypes import Completion, Delta, Message, Timings, TokenLogprob, Usage
from feldspar.errors import UserError
from feldspar.models.base import ChatModel, GenerationOptions
from feldspar.models.testing import _spec
from feldspar.store.records import Example
from feldspar.workspace import Workspace
from tests.classify_fixture import LABELS, TICKETS, split, write_csv, write_jsonl

KEYWORDS = {"charged": "billing", "invoice": "billing", "refund": "billing",
            "crash": "bug", "error": "bug", "password": "account", "account": "account",
            "parcel": "shipping", "delivery": "shipping", "order": "shipping"}


class ScriptedTeacher(ChatModel):
    """Knows the label whose keyword the text holds, with probability `sure`. Asked to
    generate, it answers that label (else the first choice, at 0.4) in two tokens; forced
    to one label (scoring), it gives that label's log-probability (uniform without a
    keyword)."""

    def __init__(self, sure: float = 0.9) -> None:
        super().__init__(_spec("scripted-teacher", "chat"), Settings())
        self.sure = sure
        self.asked: list[str] = []

    def _load(self) -> None:
        pass

    def generate(self, messages: list[Message], options: GenerationOptions) -> Iterator[Delta]:
        text = messages[-1]["content"]
        self.asked.append(text.removeprefix("Text: "))
        assert options.choices is not None
        assert options.temperature == 0.0
        known = next((v for k, v in KEYWORDS.items() if k in text.lower()), None)
        yield Delta(prompt_tokens=10)
        if len(options.choices) == 1:  # scoring one label
            (label,) = options.choices
            p = 0.25 if known is None else self.sure if label == known else (1 - self.sure) / 3
            yield Delta(text=label, tokens=1, logprobs=(TokenLogprob(label, math.log(p)),))
            yield Delta(finish_reason="stop")
            return
        label = known or options.choices[0]
        sure = self.sure if known else 0.4
        other = next(c for c in options.choices if c[:3] != label[:3])
        head, tail = label[:3], label[3:]
        yield Delta(text=head, tokens=1, logprobs=(TokenLogprob(head, math.log(sure), (
            (head, math.log(sure)), (other[:3], math.log(1 - sure)))),))
        yield Delta(text=tail, tokens=1, logprobs=(TokenLogprob(tail, 0.0, ((tail, 0.0),)),))
        yield Delta(finish_reason="stop")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(home: Path) -> tuple[object, ...]:
    """What the workspace holds for classification, to check that nothing changed."""
    with Workspace(Settings(home=home)) as ws:
        sets = ws.store.labelsets()
        return (sets, [ws.store.examples(s.name) for s in sets],
                [ws.store.student(s.name) for s in sets])


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    train, test = split()
    return {"train": write_csv(tmp_path / "train.csv", train),
            "test": write_csv(tmp_path / "test.csv", test),
            "unlabelled": write_csv(tmp_path / "unlabelled.csv", [(t,) for t, _ in train],
                                    header=("text",))}


@pytest.fixture
def trained(data: dict[str, Path]) -> dict[str, Path]:
    assert run("classify", "create", "tickets", "--labels", ",".join(LABELS))[0] == 0
    code, _out, err = run("classify", "train", "tickets", "--data", str(data["train"]))
    assert code == 0, err
    return data


# Data files


def test_rows_come_from_csv_or_jsonl_with_any_column_names(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_bytes("\ufefftext,label\n\"Hi, there\",greet\n\n".encode())
    assert [(r.text, r.label) for r in read_rows(csv_file, labelled=True)] == [
        ("Hi, there", "greet")]
    jsonl = write_jsonl(tmp_path / "a.jsonl", [{"body": "Hello", "intent": "greet"},
                                               {"body": "Bye", "intent": 7}])
    rows = read_rows(jsonl, labelled=True, columns=Columns("body", "intent"))
    assert [(r.text, r.label, r.where) for r in rows] == [
        ("Hello", "greet", f"{jsonl}, line 1"), ("Bye", "7", f"{jsonl}, line 2")]
    unlabelled = read_rows(write_csv(tmp_path / "u.csv", [("x",)], header=("text",)),
                           labelled=False)
    assert unlabelled[0].label is None


@pytest.mark.parametrize(("content", "labelled", "message"), [
    (b"body,label\nhi,a\n", True, r"has no 'text' column \(columns: body, label\); rename it "
     r"or name the column with --text-column"),
    (b"text,category\nhi,a\n", True, "has no 'label' column .* --label-column"),
    (b"text,label\n\xff\xfehi,a\n", True, r"is not UTF-8 text \(byte 0xff on line 2\)"),
    (b"", True, "holds no rows"),
    (b"text,label\n", True, "holds no rows"),
    (b"text,label\n  ,a\n", True, "line 2: the text is empty"),
    (b"text,label\nhi,\n", True, "line 2: the label is empty"),
    (b"text,label\nhi,a,b\n", True, "line 2: more cells than the header"),
    (b"text,text\nhi,a\n", False, "names a column twice"),
])
def test_bad_data_files_get_one_clear_line(tmp_path: Path, content: bytes, labelled: bool,
                                          message: str) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_rows(path, labelled=labelled)


def test_bad_jsonl_lines_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n{oops\n')
    with pytest.raises(UserError, match=r"line 2: not valid JSON"):
        read_rows(tmp_path / "a.jsonl", labelled=False)
    (tmp_path / "b.jsonl").write_text("[" * 100_000 + "\n")
    with pytest.raises(UserError, match="line 1: not valid JSON"):
        read_rows(tmp_path / "b.jsonl", labelled=False)
    (tmp_path / "c.jsonl").write_text('{"text": ["a list"]}\n')
    with pytest.raises(UserError, match="'text' must be text, not list"):
        read_rows(tmp_path / "c.jsonl", labelled=False)
    with pytest.raises(UserError, match="No such file"):
        read_rows(tmp_path / "missing.csv", labelled=False)
    with pytest.raises(UserError, match="is a folder"):
        read_rows(tmp_path, labelled=False)


# Label sets


def test_label_sets_are_checked_created_and_changed(tmp_path: Path) -> None:
    with Workspace(Settings(home=tmp_path)) as ws:
        made = labelsets.create(ws.store, "tickets", ["billing", " bug "],
                                {"billing": "money matters"})
        assert made.labels == ("billing", "bug")
        for labels, message in [(["a"], "at least two labels"), (["a", "a"], "given twice"),
                                (["a", ""], "must not be empty"),
                                (["a", "b\x07"], "control character")]:
            with pytest.raises(UserError, match=message):
                labelsets.create(ws.store, "other", labels)
        with pytest.raises(UserError, match="exists; change it with"):
            labelsets.create(ws.store, "tickets", ["x", "y"])
        with pytest.raises(UserError, match="'nope', which is not a label"):
            labelsets.create(ws.store, "other", ["a", "b"], {"nope": "x"})
        changed = labelsets.update(ws.store, "tickets", add=["account"], remove=["bug"])
        assert changed.labels == ("billing", "account")
        assert changed.descriptions == {"billing": "money matters"}
        with pytest.raises(UserError, match="'bug' is not a label"):
            labelsets.update(ws.store, "tickets", remove=["bug"])
        with pytest.raises(UserError, match="No label set named 'nope'"):
            labelsets.update(ws.store, "nope", add=["x"])


def test_descriptions_come_from_json_or_csv(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('{"billing": "money", "bug": "broken things"}')
    assert labelsets.read_descriptions(tmp_path / "d.json")["bug"] == "broken things"
    write_csv(tmp_path / "d.csv", [("billing", "money")], header=("label", "description"))
    assert labelsets.read_descriptions(tmp_path / "d.csv") == {"billing": "money"}
    (tmp_path / "bad.json").write_text('["billing"]')
    with pytest.raises(UserError, match="expected one object"):
        labelsets.read_descriptions(tmp_path / "bad.json")


# The student, on real embeddings


@pytest.mark.integration
@pytest.mark.parametrize("method", ["logistic", "mlp"])
def test_the_student_learns_the_tickets_and_round_trips_without_pickle(
        tmp_path: Path, method: str) -> None:
    train, test = split()
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "tickets", list(LABELS))
        clf = ws.classifier("tickets")
        student = clf.train([Example(t, label) for t, label in train],
                            method=method)  # type: ignore[arg-type]
        texts = [t for t, _ in test]
        probabilities = student.predict(texts, ws.embedder)
        assert probabilities.shape == (len(test), 4)
        assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
        picked = [LABELS[i] for i in probabilities.argmax(1)]
        accuracy = np.mean([p == label for p, (_, label) in zip(picked, test, strict=True)])
        assert accuracy >= 0.8, picked
        assert student.info["cv_accuracy"] >= 0.7
        assert 0.05 < student.temperature < 20
        # Stored as an .npz of numbers and JSON; read back, it predicts the same.
        kept = ws.store.student("tickets")
        assert kept is not None
        assert kept.weights[:2] == b"PK"
        with np.load(io.BytesIO(kept.weights), allow_pickle=False) as arrays:
            assert all(arrays[k].dtype.kind == "f" for k in arrays.files)
        again = Student.from_stored(kept)
        assert np.allclose(again.predict(texts, ws.embedder), probabilities, atol=1e-6)
        assert again.labels == LABELS
        assert again.method == method


def test_the_accuracy_curve_and_threshold_follow_the_out_of_fold_predictions() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.25, 1.0, 500)
    correct = rng.uniform(0, 1, 500) < confidence  # calibrated: right as often as sure
    curve = accuracy_curve(confidence, correct)
    assert curve[-1].coverage == 1.0
    assert curve[-1].threshold == 0.0
    assert all(a.coverage < b.coverage for a, b in itertools.pairwise(curve))
    student = Student(("a", "b"), "m", "logistic", {}, curve=curve)
    threshold = student.threshold_for(0.9)
    assert threshold is not None
    kept = confidence >= threshold
    assert correct[kept].mean() >= 0.9
    assert student.threshold_for(1.01) is None
    with pytest.raises(UserError, match="too few examples"):
        Student(("a", "b"), "m", "logistic", {}).threshold_for(0.9)


# The teacher


def test_label_confidence_reads_only_the_label_inside_json() -> None:
    """An OpenAI-compatible server returns {"choice": "..."}: only the label's tokens
    count, renormalised over the alternatives that continue some label."""
    pieces = [('{"', 0.0, ()), ("choice", 0.0, ()), ('":', 0.0, ()), (' "', 0.0, ()),
              ("bill", math.log(0.3), (("bill", math.log(0.3)), ("bug", math.log(0.1)),
                                       ("{", math.log(0.6)))),
              ("ing", 0.0, ()), ('"}', 0.0, ())]
    logprobs = tuple(TokenLogprob(t, lp, top) for t, lp, top in pieces)
    done = Completion('{"choice": "billing"}', "m", "", "stop", Usage(1, 7),
                      Timings(None, 0.0), logprobs)
    assert label_confidence(done, "billing", ["billing", "bug"]) == pytest.approx(0.75)
    # A token that would run past the label's end ("accounter") is not an alternative.
    past = (TokenLogprob("accoun", math.log(0.5), (("accoun", math.log(0.5)),
                                                   ("bug", math.log(0.5)))),
            TokenLogprob("t", math.log(0.01), (("ter", math.log(0.5)), ("t", math.log(0.01)))))
    done = Completion("account", "m", "", "stop", Usage(1, 2), Timings(None, 0.0), past)
    assert label_confidence(done, "account", ["account", "bug"]) == pytest.approx(0.5)
    plain = Completion("bug", "m", "", "stop", Usage(1, 1), Timings(None, 0.0), ())
    assert label_confidence(plain, "bug", ["billing", "bug"]) == 1.0  # no log-probabilities


@pytest.mark.integration
def test_the_packaged_model_answers_only_labels_with_a_probability(tmp_path: Path) -> None:
    """The real grammar and the real log-probabilities, in both modes (SmolLM2-135M is no
    judge of tickets: only the form of its answers is checked)."""
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "tickets", list(LABELS),
                         {"shipping": "deliveries, parcels, couriers and returns"})
        teacher = ws.classifier("tickets").teacher()
        assert teacher.name == "smollm2-135m-instruct"
        assert teacher.scoring  # four labels: scored whole
        assert "deliveries, parcels" in teacher.system
        texts = ["My parcel never arrived.", "The app crashes on start.", "x" * 50_000]
        for mode in ("score", "generate"):
            teacher = Teacher(teacher.model, LABELS, mode=mode)  # type: ignore[arg-type]
            predictions = teacher.classify(texts)
            assert [p.label in LABELS for p in predictions] == [True] * 3
            assert all(0.0 < p.confidence <= 1.0 for p in predictions)
            assert all(p.source == "teacher" for p in predictions)
            assert teacher.cost.texts == 3
            calls = 4 if mode == "score" else 1
            assert teacher.cost.completion_tokens >= 3 * calls


def test_few_shot_prompts_show_the_most_similar_examples_last(tmp_path: Path) -> None:
    from feldspar.models.testing import HashEmbedder

    examples = [Example("where is my parcel", "shipping"), Example("app crash", "bug"),
                Example("refund please", "billing")]
    model = ScriptedTeacher()
    teacher = Teacher(model, LABELS, examples=examples, shots=2, embedder=HashEmbedder())
    teacher.classify(["app crash"])
    with pytest.raises(UserError, match="need labelled examples"):
        Teacher(model, LABELS, shots=2, embedder=HashEmbedder())
    vector = HashEmbedder().embed(["app crash"])[0]
    messages = teacher.messages("app crash", vector)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user",
                                             "assistant", "user"]
    assert messages[-3]["content"] == "Text: app crash"
    assert messages[-2]["content"] == "bug"


def test_scoring_reads_each_labels_own_probability() -> None:
    model = ScriptedTeacher(0.7)
    teacher = Teacher(model, LABELS)  # four labels: scored whole
    assert teacher.scoring
    (parcel,) = teacher.classify(["my parcel is late"])
    assert parcel.label == "shipping"
    assert parcel.confidence == pytest.approx(0.7)  # 0.7 against 3 x 0.1
    assert len(model.asked) == 4  # one forced decoding per label
    (vague,) = teacher.classify(["hello there"])
    assert vague.confidence == pytest.approx(0.25)
    assert teacher.cost.texts == 2
    assert teacher.cost.prompt_tokens == 80
    assert not Teacher(model, [f"label{i}" for i in range(13)]).scoring
    assert not Teacher(model, LABELS, mode="generate").scoring
    with pytest.raises(UserError, match="Unknown teacher mode 'fast'"):
        Teacher(model, LABELS, mode="fast")  # type: ignore[arg-type]


# The cascade and distillation (a scripted teacher: the routing is under test)


def test_the_cascade_sends_only_unsure_texts_and_loads_the_teacher_only_then() -> None:
    model = ScriptedTeacher()
    probabilities = np.array([[0.9, 0.1, 0, 0], [0.4, 0.3, 0.2, 0.1], [0.1, 0.8, 0.1, 0]])
    texts = ["sure billing", "my parcel is late", "sure bug"]
    loads = []

    def load() -> Teacher:
        loads.append(1)
        return Teacher(model, LABELS, mode="generate")

    result = cascade(texts, probabilities, LABELS, 0.7, teacher=load)
    assert [(p.label, p.source, p.escalated) for p in result.predictions] == [
        ("billing", "student", False), ("shipping", "teacher", True), ("bug", "student", False)]
    assert model.asked == ["my parcel is late"]
    assert loads == [1]
    assert result.summary()["escalated"] == 1
    assert result.teacher is not None
    assert result.teacher.texts == 1
    assert result.teacher.prompt_tokens == 10
    none = cascade(texts, probabilities, LABELS, 0.3, teacher=load)
    assert none.escalated == 0
    assert loads == [1]
    alone = cascade(texts, probabilities, LABELS, 0.7)
    assert alone.predictions[1].escalated
    assert alone.predictions[1].source == "student"
    assert cascade(texts, probabilities, LABELS, float("inf")).summary()["threshold"] is None


@pytest.mark.integration
def test_distillation_keeps_the_teachers_labels_and_reviews_the_unsure(tmp_path: Path) -> None:
    train, _ = split()
    texts = [t for t, _ in train]
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "tickets", list(LABELS))
        clf = ws.classifier("tickets")
        teacher = Teacher(ScriptedTeacher(0.9), LABELS)
        done = clf.distill(texts, teacher, review_below=0.5)
        taught = ws.store.examples("tickets", "teacher")
        assert len(taught) == len(texts)
        assert len(done.predictions) == len(texts)
        unsure = {t for t, p in done.review}
        assert unsure
        assert all(p.confidence < 0.5 for _, p in done.review)
        assert done.student.info["sources"] == {"human": 0,
                                                "teacher": len(texts) - len(unsure)}
        assert done.student.info["teacher"] == "scripted-teacher"
        # A person labels two of the unsure texts: they replace the teacher's labels.
        first, second = sorted(unsure)[:2]
        assert clf.review([Example(first, "bug"), Example(second, "account")]) == 2
        human = ws.store.examples("tickets", "human")
        assert [(e.text, e.label) for e in human] == [(first, "bug"), (second, "account")]
        assert len(ws.store.examples("tickets", "teacher")) == len(texts) - 2
        assert clf.train().info["sources"]["human"] == 2


@pytest.mark.integration
def test_a_teacher_that_knows_one_label_trains_nothing_but_keeps_its_labels(
        tmp_path: Path) -> None:
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "tickets", list(LABELS))
        clf = ws.classifier("tickets")
        with pytest.raises(UserError, match="sure of fewer than two labels"):
            clf.distill(["refund it", "refund now", "an invoice"],
                        Teacher(ScriptedTeacher(0.9), LABELS))
        assert len(ws.store.examples("tickets", "teacher")) == 3
        assert ws.store.student("tickets") is None


# Commands


@pytest.mark.integration
def test_train_predict_show_and_list_from_the_command_line(trained: dict[str, Path]) -> None:
    code, out, err = run("classify", "predict", "tickets", "--data", str(trained["test"]),
                         "--no-teacher", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["predictions"]) == 16
    assert set(data["predictions"][0]) == {"text", "label", "confidence", "source",
                                           "escalated"}
    right = sum(p["label"] == row["label"] for p, row in zip(
        data["predictions"], csv.DictReader(trained["test"].open()), strict=True))
    assert right >= 13
    assert data["summary"]["texts"] == 16
    assert data["summary"]["teacher"] is None
    code, out, _ = run("classify", "show", "tickets", "--json")
    shown = json.loads(out)
    assert shown["examples"]["human"] == {label: 12 for label in LABELS}
    assert shown["student"]["method"] == "logistic"
    assert shown["student"]["examples"] == 48
    code, out, _ = run("classify", "list")
    assert code == 0
    assert "tickets" in out
    assert "48" in out


@pytest.mark.integration
@pytest.mark.parametrize(("labelset", "rows", "message"), [
    ("tickets", [("I was charged twice", "billing"), ("Hi", "greeting")],
     r"line 3: label 'greeting' is not in label set 'tickets' .* --add greeting"),
    ("fresh", [("I was charged twice", "billing"), ("Refund me", "billing")],
     "at least two labels; the data has only 'billing'"),
])
def test_bad_training_data_changes_nothing_stored(trained: dict[str, Path], tmp_path: Path,
                                                  labelset: str, rows: list[tuple[str, str]],
                                                  message: str) -> None:
    """A label the set lacks; one label only, with nothing stored to add it to (a few
    examples of one label can join the examples of a trained set)."""
    run("classify", "create", "fresh", "--labels", ",".join(LABELS))
    home = tmp_path / "home"
    before = stored(home)
    code, _, err = run("classify", "train", labelset, "--data",
                       str(write_csv(tmp_path / "bad.csv", rows)))
    assert code == 1
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert re.search(message, err), err
    assert stored(home) == before


@pytest.mark.integration
def test_wrong_columns_and_encoding_from_the_command_line(trained: dict[str, Path],
                                                          tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = stored(home)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\nCaf\xe9 bill,billing\n".encode("latin-1"))
    for path, message in [(write_csv(tmp_path / "cols.csv", [("x", "billing")],
                                     header=("message", "label")), "no 'text' column"),
                          (latin, "not UTF-8 text")]:
        code, _, err = run("classify", "train", "tickets", "--data", str(path))
        assert code == 1
        assert message in err
        assert err.count("\n") == 1
    assert stored(home) == before


@pytest.mark.integration
def test_changing_the_labels_asks_for_retraining(trained: dict[str, Path]) -> None:
    code, out, _ = run("classify", "update", "tickets", "--add", "sales")
    assert code == 0
    assert "must be trained again" in out
    code, _, err = run("classify", "predict", "tickets", "--data", str(trained["test"]),
                       "--no-teacher")
    assert code == 1
    assert "labels of 'tickets' changed since its student was trained; train it again" in err
    code, out, err = run("classify", "train", "tickets")  # on the stored examples
    assert code == 0, err
    assert run("classify", "predict", "tickets", "--data", str(trained["test"]),
               "--no-teacher")[0] == 0


@pytest.mark.integration
def test_predict_without_a_student_or_label_set_says_what_to_do(data: dict[str, Path]) -> None:
    code, _, err = run("classify", "predict", "nope", "--data", str(data["test"]))
    assert code == 1
    assert "create it with 'feldspar classify create nope" in err
    run("classify", "create", "tickets", "--labels", ",".join(LABELS))
    code, _, err = run("classify", "predict", "tickets", "--data", str(data["test"]))
    assert code == 1
    assert "has no student yet; train one" in err


@pytest.mark.integration
def test_distill_review_and_predict_with_the_packaged_teacher(trained: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """From unlabelled texts to a cascade, with the real SmolLM2 as the teacher (beside
    the human examples that `trained` stored, so that the student always has labels)."""
    unlabelled = write_csv(tmp_path / "few.csv",
                           [(t,) for label in LABELS for t in TICKETS[label][:3]] +
                           [("=HYPERLINK(\"http://x\") refund my invoice",)], header=("text",))
    review = tmp_path / "review.csv"
    code, out, err = run("classify", "distill", "tickets", "--data", str(unlabelled),
                         "--review-below", "0.999", "--review-file", str(review))
    assert code == 0, err
    assert "The teacher labelled 13 texts" in out
    rows = list(csv.DictReader(review.open(encoding="utf-8")))
    assert rows
    assert set(rows[0]) == {"text", "label", "suggestion", "confidence"}
    assert all(r["label"] == "" and r["suggestion"] in LABELS for r in rows)
    assert not any(r["text"].startswith("=") for r in rows)  # no live formula
    for r in rows:  # a person fills in every label
        r["label"] = next((v for k, v in KEYWORDS.items() if k in r["text"].lower()), "bug")
    write_csv(review, [(r["text"], r["label"]) for r in rows])
    code, out, err = run("classify", "review", "tickets", str(review))
    assert code == 0, err
    assert f"Stored {len(rows)} reviewed labels" in out
    with Workspace(Settings(home=tmp_path / "home")) as ws:
        human = {e.text for e in ws.store.examples("tickets", "human")}
    assert {csv_uncell(r["text"]) for r in rows} <= human  # stored as they were written
    code, out, err = run("classify", "predict", "tickets", "--data", str(trained["test"]),
                         "--threshold", "1.0", "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    escalated = summary["escalated"]
    assert escalated >= 1
    assert summary["teacher"]["texts"] == escalated
    assert escalated == sum(p["source"] == "teacher" for p in json.loads(out)["predictions"])


@pytest.mark.integration
def test_eval_classify_reports_student_teacher_cascade_and_saves_the_matrix(
        trained: dict[str, Path], tmp_path: Path) -> None:
    picture = tmp_path / "confusion.png"
    code, out, err = run("eval", "classify", "tickets", "--data", str(trained["test"]),
                         "--teacher-limit", "4", "--confusion", str(picture), "--json")
    assert code == 0, err
    report = json.loads(out)
    for who in ("student", "teacher", "cascade"):
        assert {"accuracy", "macro_f1", "throughput_per_s"} <= set(report[who])
    assert report["student"]["texts"] == 16
    assert report["teacher"]["texts"] == 4
    assert report["student"]["accuracy"] >= 0.8
    assert report["student"]["throughput_per_s"] > report["teacher"]["throughput_per_s"]
    assert len(report["student"]["per_class"]) == 4
    assert report["cascade_curve"][0]["escalation_rate"] == 0.0
    assert report["cascade_curve"][-1]["escalation_rate"] == 1.0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(report["confusion_png"]) == picture
    code, out, _ = run("eval", "classify", "tickets", "--data", str(trained["test"]),
                       "--no-teacher")
    assert code == 0
    assert "student" in out
    assert "teacher" not in out.split("\n")[2]


@pytest.mark.integration
def test_a_damaged_or_foreign_student_is_refused_with_the_fix(trained: dict[str, Path],
                                                              tmp_path: Path) -> None:
    from dataclasses import replace

    with Workspace(Settings(home=tmp_path / "home")) as ws:
        good = ws.store.student("tickets")
        assert good is not None
        ws.store.put_student(replace(good, weights=b"not an npz"))
        with pytest.raises(UserError, match=r"is damaged .* train it again"):
            ws.classifier("tickets").student()
        ws.store.put_student(replace(good, info={**good.info, "format": 99}))
        with pytest.raises(UserError, match="stored by another version"):
            ws.classifier("tickets").student()
        with pytest.raises(UserError, match="'greeting' is not a label of 'tickets'"):
            ws.classifier("tickets").train([Example("hi", "greeting"),
                                            Example("bill", "billing")])


# What a person did is never lost; what was asked for is checked first


@pytest.mark.integration
def test_labels_accumulate_across_distillations_trainings_and_reviews(tmp_path: Path) -> None:
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "tickets", list(LABELS))
        clf = ws.classifier("tickets")
        teacher = Teacher(ScriptedTeacher(0.9), LABELS, mode="generate")
        clf.distill(["my parcel is late", "the app crashed", "refund please"], teacher,
                    review_below=0.5)
        clf.review([Example("my parcel is late", "shipping")])
        clf.distill(["a new invoice", "password reset"], teacher, review_below=0.8)
        taught = {e.text for e in ws.store.examples("tickets", "teacher")}
        assert taught == {"the app crashed", "refund please", "a new invoice",
                          "password reset"}  # the first batch is still there
        clf.train([Example("where is my order", "shipping"),
                   Example("the app crashed", "bug")])
        human = {e.text: e.label for e in ws.store.examples("tickets", "human")}
        assert human == {"my parcel is late": "shipping", "where is my order": "shipping",
                         "the app crashed": "bug"}  # the review is kept beside the file
        student = clf.train()  # retrained: it remembers how it was distilled
        assert student.info["review_below"] == 0.8
        assert student.info["teacher"] == "scripted-teacher"
        with pytest.raises(UserError, match="No examples given"):
            clf.train([])


def test_the_cost_of_each_cascade_is_its_own() -> None:
    teacher = Teacher(ScriptedTeacher(), LABELS, mode="generate")
    unsure = np.array([[0.4, 0.3, 0.2, 0.1]])
    first = cascade(["a parcel"], unsure, LABELS, 0.9, teacher=teacher)
    second = cascade(["a parcel"], unsure, LABELS, 0.9, teacher=teacher)
    assert first.teacher is not None
    assert second.teacher is not None
    assert first.teacher.texts == second.teacher.texts == 1
    assert teacher.cost.texts == 2


@pytest.mark.integration
def test_an_existing_review_file_is_refused_before_any_labelling(trained: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    review = tmp_path / "review.csv"
    review.write_text("text,label\nmy corrections,billing\n")
    code, _, err = run("classify", "distill", "tickets", "--data", str(trained["unlabelled"]),
                       "--review-file", str(review))
    assert code == 1
    assert f"{review} exists and may hold a person's labels" in err
    assert review.read_text() == "text,label\nmy corrections,billing\n"


def test_texts_that_storage_or_models_cannot_take_are_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "bad \\u0000 byte"}\n')
    with pytest.raises(UserError, match="line 2: the text holds a NUL character"):
        read_rows(path, labelled=False)
    path.write_text('{"text": "half \\ud800 a pair"}\n')
    with pytest.raises(UserError, match="line 1: the text holds an invalid character"):
        read_rows(path, labelled=False)
    path.write_text(json.dumps({"text": "one\u2028line"}, ensure_ascii=False) + "\n")
    assert read_rows(path, labelled=False)[0].text == "one\u2028line"
    long = write_csv(tmp_path / "long.csv", [("word " * 40_000, "billing")])
    assert len(read_rows(long, labelled=True)[0].text) == 200_000
    with Workspace(Settings(home=tmp_path / "home")) as ws, \
            pytest.raises(UserError, match="Invalid label set name"):
        labelsets.create(ws.store, "../escape", ["a", "b"])


@pytest.mark.integration
def test_threshold_choices_are_checked_before_any_work(trained: dict[str, Path]) -> None:
    for args, message in [(("--threshold", "0.5", "--target-accuracy", "0.9"), "not both"),
                          (("--target-accuracy", "nan"), "must be in (0, 1]"),
                          (("--threshold", "nan"), "must be between 0 and 1")]:
        code, _, err = run("classify", "predict", "tickets", "--data", str(trained["test"]),
                           "--no-teacher", *args)
        assert code == 1, args
        assert message in err


@pytest.mark.integration
def test_a_student_without_out_of_fold_errors_keeps_its_scores(tmp_path: Path) -> None:
    """Nothing to calibrate on: the temperature stays 1 instead of collapsing to its bound
    (which would make every confidence 1.0)."""
    easy = [(f"invoice number {i} is wrong", "billing") for i in range(8)] + \
        [(f"the parcel number {i} is late", "shipping") for i in range(8)]
    with Workspace(Settings(home=tmp_path)) as ws:
        labelsets.create(ws.store, "easy", ["billing", "shipping"])
        student = ws.classifier("easy").train([Example(t, label) for t, label in easy])
        assert student.info["cv_accuracy"] == 1.0
        assert student.temperature == 1.0
        (p,) = student.predict(["what is the weather like"], ws.embedder)
        assert max(p) < 0.99
