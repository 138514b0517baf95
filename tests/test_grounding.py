"""The groundedness detector: sentence spans, the packaged weights, the detector with the
real default embedder, and `feldspar check-grounding`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from feldspar.cli.grounding import check_grounding
from feldspar.errors import ModelError, UserError
from feldspar.grounding import GroundednessDetector, split_sentences
from feldspar.grounding.features import FEATURES, analyse
from feldspar.grounding.model import WEIGHTS, GroundingModel


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


# --- sentences ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("Paris is big [1]. It rains [2][3].", ["Paris is big [1].", "It rains [2][3]."]),
    ("Paris is big. [1] It rains.", ["Paris is big. [1]", "It rains."]),
    ("Dr. Smith met Mr. Jones, e.g. at 3.5 km. Then they left.",
     ["Dr. Smith met Mr. Jones, e.g. at 3.5 km.", "Then they left."]),
    ("The U.S. economy grew, i.e. a lot. Prices rose.",
     ["The U.S. economy grew, i.e. a lot.", "Prices rose."]),
    ("Wait... what? Yes! He said \"Stop.\" Then (really.) Done.",
     ["Wait... what?", "Yes!", "He said \"Stop.\"", "Then (really.)", "Done."]),
    ("M. Dupont est arrivé. Il a dit « Non. » Puis il est parti !",
     ["M. Dupont est arrivé.", "Il a dit « Non. »", "Puis il est parti !"]),
    ("Steps:\n- open the box\n2. Take it out\n\nNew paragraph",
     ["Steps:", "open the box", "Take it out", "New paragraph"]),
    ("A line that is\nwrapped here. Next one.", ["A line that is\nwrapped here.", "Next one."]),
    ("We sell apples, pears, etc. Oranges too.", ["We sell apples, pears, etc.",
                                                  "Oranges too."]),
    ("  \n ", []),
])
def test_sentence_spans(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_spans_exclude_whitespace() -> None:
    text = "  One.   Two!  \n"
    spans = split_sentences(text)
    assert spans == [(2, 6), (9, 13)]


def test_checkable_sentences() -> None:
    assert not analyse("Sure!").checkable
    assert not analyse("[3]").checkable
    assert analyse("It costs 25 euros.").checkable
    assert analyse("Le loyer est de 900 euros.").checkable


# --- weights -----------------------------------------------------------------------------

def test_packaged_weights_are_plain_numbers() -> None:
    data = json.loads(WEIGHTS.read_text(encoding="utf-8"))

    def kinds(value: Any) -> set[type]:
        if isinstance(value, dict):
            return {dict}.union(*(kinds(v) for v in value.values()))
        if isinstance(value, list):
            return {list}.union(*(kinds(v) for v in value))
        return {type(value)}

    assert kinds(data) <= {dict, list, str, int, float, bool}
    assert data["features"] == list(FEATURES)
    model = GroundingModel.load()
    assert 0 < model.threshold < 1
    scores = model.predict(np.zeros((2, len(FEATURES))))
    assert scores.shape == (2,)
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("change", [
    {"format": "pickle"},
    {"features": ["x"]},
    {"model": {"kind": "eval", "code": "__import__('os')"}},
    {"threshold": "0.5"},
])
def test_bad_weights_are_refused(change: dict[str, Any]) -> None:
    data = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    with pytest.raises(ModelError, match="Invalid groundedness weights"):
        GroundingModel.from_dict({**data, **change})


# --- the detector, with the real default embedder -----------------------------------------

CONTEXT = [
    "Employees get 25 days of paid annual leave per year. Unused days can be carried over "
    "until the end of March of the following year.",
    "The office in Lyon opens at 8 am and closes at 6 pm. Visitors must sign in at the "
    "front desk and wear a badge.",
]


@pytest.fixture
def detector() -> GroundednessDetector:
    return GroundednessDetector()


@pytest.mark.integration
def test_supported_sentence_scores_higher(detector: GroundednessDetector) -> None:
    supported = detector.check(CONTEXT, "Employees get 25 days of paid annual leave per year.")
    contradicted = detector.check(CONTEXT, "Employees get 40 days of paid leave per year.")
    unrelated = detector.check(CONTEXT, "The company was founded in Geneva in 1987 by two "
                                        "chemists.")
    assert supported.score > contradicted.score + 0.1
    assert supported.score > unrelated.score + 0.4
    assert supported.grounded
    assert not unrelated.grounded


@pytest.mark.integration
@pytest.mark.xfail(reason="known limit: a changed number alone seldom flips the verdict "
                          "(few such cases in the training data); see docs/grounding.md")
def test_a_changed_number_is_not_grounded(detector: GroundednessDetector) -> None:
    assert not detector.check(CONTEXT, "Employees get 40 days of paid leave per year.").grounded


@pytest.mark.integration
def test_sentences_get_spans_scores_and_passages(detector: GroundednessDetector) -> None:
    response = ("The Lyon office opens at 8 am [2]. Unused leave days can be carried over "
                "until March [1]. Parking is free for all staff.")
    report = detector.check(CONTEXT, response)
    assert [response[s.start:s.end] for s in report.sentences] == [s.text for s in
                                                                    report.sentences]
    assert [s.passage for s in report.sentences[:2]] == [1, 0]
    first, second, third = (s.score for s in report.sentences)
    assert min(first, second) > third + 0.3
    assert report.score <= third + 1e-9  # as grounded as its weakest sentence, at most
    data = report.to_dict()
    assert set(data) == {"score", "grounded", "threshold", "sentences"}
    assert set(data["sentences"][0]) == {"text", "start", "end", "score", "passage", "checked"}


@pytest.mark.integration
def test_chit_chat_does_not_drag_the_score_down(detector: GroundednessDetector) -> None:
    plain = detector.check(CONTEXT, "Employees get 25 days of paid annual leave per year.")
    chatty = detector.check(CONTEXT, "Sure! Employees get 25 days of paid annual leave per "
                                     "year.")
    assert not chatty.sentences[0].checked
    assert chatty.score == pytest.approx(plain.score, abs=0.02)


@pytest.mark.integration
def test_support_matrix(detector: GroundednessDetector) -> None:
    claims = ["Visitors must wear a badge.", "Employees get 25 days of paid leave.",
              "The cafeteria serves vegan food."]
    matrix = detector.support(claims, CONTEXT)
    assert matrix.shape == (3, 2)
    assert ((matrix >= 0) & (matrix <= 1)).all()
    assert matrix[0, 1] > matrix[0, 0] + 0.3
    assert matrix[1, 0] > matrix[1, 1] + 0.3
    assert matrix[2].max() < min(matrix[0, 1], matrix[1, 0])
    assert detector.support([], CONTEXT).shape == (0, 2)


@pytest.mark.integration
def test_empty_inputs_are_user_errors(detector: GroundednessDetector) -> None:
    with pytest.raises(UserError, match="response is empty"):
        detector.check(CONTEXT, "  \n")
    with pytest.raises(UserError, match="context is empty"):
        detector.check(["", "  "], "Employees get 25 days of leave.")
    with pytest.raises(UserError, match="context is empty"):
        detector.check("", "Employees get 25 days of leave.")


# --- the command -------------------------------------------------------------------------

@pytest.fixture
def passages(tmp_path: Path) -> list[Path]:
    paths = []
    for n, text in enumerate(CONTEXT):
        path = tmp_path / f"p{n}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


@pytest.mark.integration
def test_command_prints_json(passages: list[Path]) -> None:
    result = CliRunner().invoke(check_grounding, [
        "--context", str(passages[0]), "--context", str(passages[1]), "--response", "-",
        "--json"], input="Visitors must wear a badge. Sure!")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data["grounded"], bool)
    assert [(s["text"], s["passage"], s["checked"]) for s in data["sentences"]] == [
        ("Visitors must wear a badge.", 2, True), ("Sure!", data["sentences"][1]["passage"],
                                                   False)]


@pytest.mark.integration
def test_command_prints_a_line_per_sentence(passages: list[Path]) -> None:
    result = CliRunner().invoke(check_grounding, [
        "--context", str(passages[1]), "--response", "Visitors must wear a badge. Thanks!"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("Visitors must wear a badge.  [passage 1]")
    assert lines[1] == "  -   Thanks!  [nothing to check]"
    assert lines[2].startswith("Overall: ")


@pytest.mark.parametrize(("content", "message"), [
    (None, "Context file not found"),
    (b"\xff\xfe caf\xe9", "not UTF-8 text"),
    (b"a" * 1_000_001, "larger than 1 MB"),
])
def test_command_refuses_bad_files(tmp_path: Path, content: bytes | None, message: str
                                   ) -> None:
    path = tmp_path / "context.txt"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(check_grounding, ["--context", str(path), "--response", "Hi."])
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)


def test_command_reads_stdin_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(check_grounding, ["--context", "-", "--response", "-"],
                                input="text")
    assert isinstance(result.exception, UserError)


def test_command_refuses_too_many_context_files(tmp_path: Path) -> None:
    from feldspar.cli.app import FeldsparGroup

    path = tmp_path / "p.txt"
    path.write_text("Visitors must wear a badge.", encoding="utf-8")
    group = FeldsparGroup(commands={"check-grounding": check_grounding})
    args = [a for _ in range(101) for a in ("--context", str(path))]
    result = CliRunner().invoke(group, ["check-grounding", *args, "--response", "Hi there."])
    assert result.exit_code == 1
    assert result.stderr == ("Error: 101 context files, over the limit of 100; join related "
                             "passages into fewer files\n")
