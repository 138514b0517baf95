"""Evaluation: metrics, cases, the SQuAD-folder converter, the runner's bookkeeping and
`feldspar eval rag`'s handling of bad input."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from feldspar.cli.app import FeldsparGroup
from feldspar.cli.evaluate import eval_group
from feldspar.datatypes import Usage
from feldspar.errors import ModelError, UserError
from feldspar.evaluate import RagCase, load_cases, run_rag, sample_cases, squad_folder
from feldspar.evaluate import metrics as m
from feldspar.rag.answer import Answer, Citation, Source

# Metrics


@pytest.mark.parametrize(("text", "expected"), [
    ("The Eiffel Tower.", "eiffel tower"),
    ("an apple, a pear", "apple pear"),
    ("Les Misérables de Hugo", "misérables hugo"),
    ("l'homme d’État, une femme", "homme état femme"),
    ("1,000 «km»  —  du   nord", "1000 km nord"),
])
def test_normalize(text: str, expected: str) -> None:
    assert m.normalize(text) == expected


def test_exact_match_f1_and_contains_gold() -> None:
    assert m.exact_match("La tour Eiffel !", ["tour Eiffel"]) == 1.0
    assert m.exact_match("anything", []) == 0.0
    assert m.f1("the big red dog", ["red dog barks"]) == pytest.approx(2 / 3)  # P = R = 2/3
    assert m.f1("red dog", ["red dog barks"]) == pytest.approx(0.8)  # P = 1, R = 2/3
    assert m.f1("the", ["a"]) == 1.0  # both normalise to nothing
    assert m.f1("cat", ["dog"]) == 0.0
    assert m.contains_gold("It was founded in 1624 by monks.", ["1624", "1625"])
    assert not m.contains_gold("It was founded by monks.", ["1624"])
    assert not m.contains_gold("anything", ["the"])  # an empty gold matches nothing


def test_source_matching_and_ranks() -> None:
    assert m.source_matches("docs/leave.md", "docs/leave.md")
    assert m.source_matches("/srv/docs/leave.md", "docs/leave.md")
    assert m.source_matches(r"C:\docs\leave.md", "leave.md")
    assert not m.source_matches("/srv/docs/parental-leave.md", "leave.md")
    ranked = ["/c/x.txt", "/c/x.txt", "/c/y.txt", "/c/gold.txt"]
    assert [m.recall_at_k(ranked, ["gold.txt"], k) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]
    assert m.recall_at_k(ranked, ["gold.txt", "y.txt", "z.txt"], 3) == pytest.approx(2 / 3)
    assert m.reciprocal_rank(ranked, ["gold.txt"]) == pytest.approx(1 / 3)
    assert m.reciprocal_rank(ranked, ["y.txt", "gold.txt"]) == 0.5
    assert m.gold_citations(["/c/gold.txt", "/c/x.txt"], ["gold.txt"]) == 1


SOURCE = Source(marker=1, chunk_id=7, path="/c/gold.txt", span=(100, 133), lines=(3, 4),
                page=None, headings=(), text="Böhme fell ill in 1624 at Görlitz", score=0.9,
                relevance=0.8)
CITE = Citation(marker=1, chunk_id=7, source="/c/gold.txt", span=(106, 122),
                quote="fell ill in 1624", sentence=0, support=0.9, origin="model")


@pytest.mark.parametrize(("citation", "valid"), [
    (CITE, True),
    (replace(CITE, marker=2), False),            # no source [2]
    (replace(CITE, chunk_id=8), False),          # [1] is another chunk
    (replace(CITE, source="/c/x.txt"), False),   # [1] is another document
    (replace(CITE, span=(107, 123)), False),     # the quote is not at that span
    (replace(CITE, span=(120, 140)), False),     # the span runs past the chunk
    (replace(CITE, span=(90, 106), quote=""), False),  # starts before the chunk
])
def test_citation_validity(citation: Citation, valid: bool) -> None:
    assert m.citation_valid(citation, [SOURCE]) is valid


# Cases

CASE = {"id": "q1", "question": "When?", "gold_sources": ["a.txt"], "answers": ["1624"]}


def write_jsonl(path: Path, *rows: Any) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_load_cases(tmp_path: Path) -> None:
    unanswerable = {"id": 2, "question": "Who?", "gold_sources": [], "answers": [],
                    "answerable": False}
    path = write_jsonl(tmp_path / "cases.jsonl", CASE, "", unanswerable)
    assert load_cases(path) == [RagCase("q1", "When?", ("a.txt",), ("1624",)),
                                RagCase("2", "Who?", (), (), answerable=False)]


@pytest.mark.parametrize(("rows", "message"), [
    ([CASE, "{oops"], "line 2: not valid JSON"),
    ([["a list"]], "line 1: expected a JSON object"),
    ([{**CASE, "gold_sources": None}], "line 1: 'gold_sources' must be a list"),
    ([{k: v for k, v in CASE.items() if k != "answers"}], "line 1: missing 'answers'"),
    ([{**CASE, "gold": []}], "line 1: unknown field 'gold'"),
    ([{**CASE, "question": "  "}], "line 1: the question is empty"),
    ([{**CASE, "id": ""}], "line 1: 'id' must be a non-empty string"),
    ([{**CASE, "answers": [""]}], "line 1: 'answers' must be a list of non-empty strings"),
    ([{**CASE, "answerable": "yes"}], "line 1: 'answerable' must be true or false"),
    ([{**CASE, "answers": []}], "line 1: an answerable case needs at least one gold source"),
    ([{**CASE, "answerable": False}], "line 1: an unanswerable case has no gold sources"),
    ([CASE, CASE], "line 2: duplicate id 'q1'"),
    (["", "  "], "holds no cases"),
])
def test_load_cases_refuses_bad_input(tmp_path: Path, rows: list[Any], message: str) -> None:
    path = write_jsonl(tmp_path / "cases.jsonl", *rows)
    with pytest.raises(UserError, match=message) as info:
        load_cases(path)
    assert "\n" not in str(info.value)


def test_load_cases_refuses_missing_and_non_text_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"No such file: .*missing.jsonl; give a JSONL file"):
        load_cases(tmp_path / "missing.jsonl")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="is not UTF-8 text"):
        load_cases(tmp_path / "binary.jsonl")


def test_sample_cases_is_seeded_and_keeps_the_unanswerable_share() -> None:
    cases = [RagCase(str(i), "?", (), (), answerable=i % 5 != 0) for i in range(100)]
    picked = sample_cases(cases, 20)
    assert len(picked) == 20
    assert sum(not c.answerable for c in picked) == 4
    assert picked == sample_cases(cases, 20)
    assert picked != sample_cases(cases, 20, seed=1)
    assert [int(c.id) for c in picked] == sorted(int(c.id) for c in picked)
    assert sample_cases(cases, 500) == cases


# SQuAD-style folders


@pytest.fixture
def squad(tmp_path: Path) -> Path:
    """Ten articles of two paragraphs, two questions a paragraph."""
    folder = tmp_path / "tiny_squad"
    folder.mkdir()
    passages, questions = [], []
    for a in range(10):
        for p in range(2):
            pid = f"t-a{a:03d}-p{p:03d}"
            passages.append({"passage_id": pid, "title": f"Article {a}",
                             "text": f"The codeword zq{a}x{p} stands for {a * 10 + p}."})
            questions += [{"id": f"{pid}-q{q}", "passage_id": pid, "title": f"Article {a}",
                           "question": f"{asking} does codeword zq{a}x{p} stand for?",
                           "answers": [{"text": str(a * 10 + p), "answer_start": 0}]}
                          for q, asking in enumerate(("What", "Which number"))]
    write_jsonl(folder / "passages.jsonl", *passages)
    write_jsonl(folder / "questions.jsonl", *questions)
    return folder


def test_squad_folder_holds_out_whole_articles(squad: Path, tmp_path: Path) -> None:
    corpus, cases = squad_folder(squad, tmp_path / "out")
    assert corpus == tmp_path / "out" / "corpus"
    files = {p.name for p in corpus.iterdir()}
    unanswerable = [c for c in cases if not c.answerable]
    assert len(cases) == 40
    assert len(unanswerable) == 8  # 2 articles of 10: a fifth of the questions
    held_out = {c.id.split("-p")[0] for c in unanswerable}  # "t-aNNN"
    assert len(held_out) == 2
    assert not any(f.startswith(tuple(held_out)) for f in files)
    assert len(files) == 16
    for case in cases:
        if case.answerable:
            assert case.gold_sources == (f"{case.id.rsplit('-', 1)[0]}.txt",)
            assert case.gold_sources[0] in files
            text = (corpus / case.gold_sources[0]).read_text(encoding="utf-8")
            assert text.startswith("Article ")
            assert case.answers[0] in text
        else:
            assert case.gold_sources == case.answers == ()


def test_squad_folder_is_deterministic_and_removes_stale_files(squad: Path,
                                                               tmp_path: Path) -> None:
    (tmp_path / "out" / "corpus").mkdir(parents=True)
    (tmp_path / "out" / "corpus" / "stale.txt").write_text("old", encoding="utf-8")
    corpus, first = squad_folder(squad, tmp_path / "out")
    assert not (corpus / "stale.txt").exists()
    assert squad_folder(squad, tmp_path / "again")[1] == first
    _, none_held = squad_folder(squad, tmp_path / "all", unanswerable_share=0)
    assert all(c.answerable for c in none_held)
    _, sample = squad_folder(squad, tmp_path / "out", limit=10, seed=3)
    assert len(sample) == 10
    assert sum(not c.answerable for c in sample) == 2
    assert set(sample) <= set(first)


def test_squad_folder_refuses_bad_folders(squad: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"No such file: .*passages.jsonl"):
        squad_folder(tmp_path / "nowhere", tmp_path / "out")
    write_jsonl(squad / "questions.jsonl", {"id": "x", "passage_id": "gone", "question": "?",
                                            "answers": []})
    with pytest.raises(UserError, match="line 1: passage_id 'gone' is not in"):
        squad_folder(squad, tmp_path / "out")
    write_jsonl(squad / "questions.jsonl", {"id": "x", "question": "?"})
    with pytest.raises(UserError, match="line 1: missing 'passage_id', 'answers'"):
        squad_folder(squad, tmp_path / "out")


# The runner


def answer(case: RagCase, text: str, *, abstained: bool = False,
           citations: tuple[Citation, ...] = (), sources: tuple[Source, ...] = (SOURCE,),
           timings: dict[str, float] | None = None) -> Answer:
    return Answer(question=case.question, query=case.question, text=text,
                  citations=list(citations), sentences=[], sources=list(sources),
                  abstained=abstained, reason="no relevant passages" if abstained else None,
                  model="stub", usage=Usage(prompt_tokens=100, completion_tokens=10),
                  timings=timings if timings is not None else {"total_s": 1.0,
                                                              "retrieve_s": 0.1})


OTHER = replace(SOURCE, marker=2, chunk_id=9, path="/c/other.txt")
CASES = [
    RagCase("right", "When did Böhme fall ill?", ("gold.txt",), ("1624",)),
    RagCase("second", "Where?", ("other.txt",), ("Görlitz",)),
    RagCase("shy", "When?", ("gold.txt",), ("1624",)),
    RagCase("none", "Who won in 2030?", (), (), answerable=False),
    RagCase("bold", "Who won in 2031?", (), (), answerable=False),
    RagCase("broken", "Why?", ("gold.txt",), ("1624",)),
]
REPLIES = {
    # Right, cites the gold source twice; retrieval ranked it first.
    "right": lambda c: answer(c, "He fell ill [1] in 1624 [1].", citations=(CITE, CITE),
                              sources=(SOURCE, OTHER)),
    # Says the answer and more; the gold source is second; cites the wrong one (validly).
    "second": lambda c: answer(c, "In Görlitz, a town [1].", citations=(CITE,),
                               sources=(SOURCE, OTHER), timings={"total_s": 3.0}),
    # Abstains although the answer was there.
    "shy": lambda c: answer(c, "I cannot answer: 1624.", abstained=True),
    "none": lambda c: answer(c, "I cannot answer from the documents.", abstained=True,
                             sources=()),
    # Answers an unanswerable question, with a citation whose quote is wrong.
    "bold": lambda c: answer(c, "Ada won [1].", citations=(replace(CITE, quote="Ada"),),
                             timings={"total_s": 5.0, "first_token_s": 0.5}),
}


def stub_ask(case: RagCase) -> Answer:
    if case.id == "broken":
        raise ModelError("The model crashed")
    return REPLIES[case.id](case)


def test_run_rag_scores_each_case_and_sums_up() -> None:
    seen: list[str] = []
    report = run_rag(CASES, stub_ask, k_values=(1, 2), on_case=lambda r: seen.append(r.case.id))
    assert seen == [c.id for c in CASES]
    by_id = {r.case.id: r for r in report.results}
    assert by_id["broken"].error == "The model crashed"
    assert by_id["broken"].scores == {}
    assert by_id["right"].retrieved == ("/c/gold.txt", "/c/other.txt")
    assert by_id["right"].cited == ("/c/gold.txt", "/c/gold.txt")
    assert by_id["shy"].scores["contains_gold"] == 0.0  # an abstention is never an answer
    assert by_id["bold"].scores == {"citation_validity": 0.0}
    assert by_id["right"].timings["wall_s"] >= 0

    metrics = report.metrics
    assert metrics == {
        "cases": 6, "answerable": 3, "unanswerable": 2, "errors": 1,
        "recall@1": pytest.approx(2 / 3), "recall@2": 1.0,
        "mrr": pytest.approx((1 + 1 / 2 + 1) / 3),
        "exact_match": 0.0, "f1": pytest.approx((0.5 + 1 / 3) / 3),
        "contains_gold": pytest.approx(2 / 3),
        "exact_match_answered": 0.0, "f1_answered": pytest.approx((0.5 + 1 / 3) / 2),
        "contains_gold_answered": 1.0,
        "citation_precision": 0.5,  # a mean over cases: 1 and 0, not 2 of 3 citations
        "citation_recall": pytest.approx(1 / 3),
        "citation_validity": 0.75,  # 3 of 4 citations
        "abstention_rate": 0.5, "false_abstention_rate": pytest.approx(1 / 3),
        "total_s_p50": 1.0, "total_s_p95": pytest.approx(4.6),  # 3 + 0.8 * (5 - 3) in 1, 1, 1, 3, 5
        "first_token_s_p50": 0.5, "first_token_s_p95": 0.5,
        "retrieve_s_p50": 0.1, "retrieve_s_p95": 0.1,
        "prompt_tokens": 500, "completion_tokens": 50}


def test_run_rag_lets_unexpected_exceptions_through() -> None:
    def ask(case: RagCase) -> Answer:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_rag(CASES[:1], ask)


def test_report_json_and_table() -> None:
    report = run_rag(CASES, stub_ask)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["metrics"]["errors"] == 1
    first = data["cases"][0]
    assert first["id"] == "right"
    assert first["gold_sources"] == ["gold.txt"]
    assert first["answer"] == "He fell ill [1] in 1624 [1]."
    assert first["scores"]["recall@1"] == 1.0
    assert data["cases"][-1]["error"] == "The model crashed"

    lines = report.table().splitlines()
    assert lines[0].split() == ["METRIC", "VALUE", "OVER"]
    assert "recall@5                1.000  3 answerable cases" in lines
    assert "citation_precision      0.500  2 citing cases" in lines
    assert "citation_validity       0.750  4 citations" in lines
    assert "abstention_rate         0.500  2 unanswerable cases" in lines
    assert "errors                      1" in lines
    empty = run_rag([], stub_ask).table()
    assert "mrr                       n/a  0 answerable cases" in empty.splitlines()


# The command's handling of bad input (its runs against a model are integration tests)


@pytest.fixture
def feldspar() -> click.Group:
    """The eval group under the top-level group's error handling, as `feldspar` has it."""
    return FeldsparGroup(commands={"eval": eval_group})


def test_eval_rag_refuses_a_missing_dataset(feldspar: click.Group, tmp_path: Path) -> None:
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset",
                                           str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: No such file: {tmp_path / 'nope.jsonl'}; give a JSONL "
                             "file of cases or a SQuAD-style folder (see docs/evaluation.md)\n")


def test_eval_rag_refuses_malformed_jsonl(feldspar: click.Group, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cases.jsonl", CASE, '{"id": "q2", "question": ')
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(path)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {path}, line 2: not valid JSON (Expecting value at "
                             "column 26); write one JSON object a line\n")


def test_eval_rag_refuses_an_unknown_collection(feldspar: click.Group, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "cases.jsonl", CASE)
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(path),
                                           "--collection", "nothing"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "nothing" in result.stderr


def test_eval_rag_refuses_a_folder_without_passages(feldspar: click.Group,
                                                    tmp_path: Path) -> None:
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: No such file: {tmp_path / 'passages.jsonl'}; give a "
                             "JSONL file of cases or a SQuAD-style folder "
                             "(see docs/evaluation.md)\n")


def test_eval_rag_on_a_folder_ingests_asks_and_saves_the_report(
        feldspar: click.Group, squad: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's bookkeeping, with a hash embedder and an `ask` that answers with the
    first passage found: the model path itself is an integration test."""
    from feldspar.models.testing import HashEmbedder
    from feldspar.workspace import Workspace

    def ask(ws: Workspace, question: str, *, collection: str | None = None,
            model: str | None = None) -> Answer:
        hits = ws.search(question, k=3, collection=collection, mode="lexical")
        sources = [Source(i, h.chunk.id or 0, h.chunk.path or "", (h.chunk.start, h.chunk.end),
                          (h.chunk.line_start, h.chunk.line_end), None, (), h.chunk.text,
                          h.score, 0.5) for i, h in enumerate(hits, 1)]
        return Answer(question, question, sources[0].text, [], [], sources, False, None,
                      model or "stub", timings={"total_s": 0.1})

    monkeypatch.setattr("feldspar.cli.evaluate.open_workspace",
                        lambda: Workspace(embedder=HashEmbedder()))
    monkeypatch.setattr(Workspace, "ask", ask)
    report = tmp_path / "report.json"
    args = ["eval", "rag", "--dataset", str(squad), "--limit", "10", "--output", str(report)]
    result = CliRunner().invoke(feldspar, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["METRIC", "VALUE", "OVER"]
    assert result.stderr.endswith(f"Report saved to {report}\n")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["run"]["collection"] == "eval-tiny_squad"
    assert data["metrics"]["cases"] == 10
    assert data["metrics"]["unanswerable"] == 2
    assert data["metrics"]["recall@1"] == 1.0  # each question names its paragraph's codeword
    with Workspace(embedder=HashEmbedder()) as ws:
        assert ws.collection("eval-tiny_squad").documents == 16

    again = CliRunner().invoke(feldspar, [*args[:-2], "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["metrics"] == data["metrics"]
    saved = list((Path(os.environ["FELDSPAR_HOME"]) / "reports").glob("eval-rag-*.json"))
    assert len(saved) == 1


def test_eval_rag_refuses_collection_names_that_leave_its_folder(
        feldspar: click.Group, squad: Path) -> None:
    for name in ("../../x", "a/b", ".."):
        result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(squad),
                                               "--collection", name])
        assert result.exit_code == 1
        assert result.stderr == (f"Error: '{name}' cannot name an evaluation collection: use "
                                 "letters, digits and dashes\n")


def test_eval_rag_never_ingests_into_a_collection_of_other_documents(
        feldspar: click.Group, squad: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from feldspar.models.testing import HashEmbedder
    from feldspar.workspace import Workspace

    mine = tmp_path / "handbook"
    mine.mkdir()
    (mine / "leave.md").write_text("Staff get 25 days of leave.\n")
    with Workspace(embedder=HashEmbedder()) as ws:
        ws.ingest([mine], "handbook")
    monkeypatch.setattr("feldspar.cli.evaluate.open_workspace",
                        lambda: Workspace(embedder=HashEmbedder()))
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(squad),
                                           "--collection", "handbook"])
    assert result.exit_code == 1
    assert "Collection 'handbook' holds other documents" in result.stderr
    with Workspace(embedder=HashEmbedder()) as ws:
        assert [d.path for d in ws.documents("handbook")] == [str(mine / "leave.md")]


def test_malformed_squad_rows_are_one_line_errors(squad: Path, tmp_path: Path) -> None:
    rows = (squad / "questions.jsonl").read_text().splitlines()
    broken = json.loads(rows[0])
    broken["answers"] = ["40"]
    (squad / "questions.jsonl").write_text("\n".join([json.dumps(broken), *rows[1:]]) + "\n")
    with pytest.raises(UserError, match="line 1: 'answers' must be a list of"):
        squad_folder(squad, tmp_path / "out")
    with pytest.raises(UserError, match="unanswerable_share must be in"):
        squad_folder(squad, tmp_path / "out", unanswerable_share=1.5)


@pytest.mark.integration
def test_eval_rag_with_the_packaged_models(feldspar: click.Group, squad: Path,
                                           tmp_path: Path) -> None:
    """The whole path: ingest with the real embedder, ask the real model, check citations
    with the real detector, score; every citation shown must be valid."""
    report = tmp_path / "report.json"
    result = CliRunner().invoke(feldspar, ["eval", "rag", "--dataset", str(squad), "--limit",
                                           "4", "--output", str(report)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(report.read_text(encoding="utf-8"))["metrics"]
    assert metrics["cases"] == 4
    assert metrics["errors"] == 0
    assert metrics["recall@5"] == 1.0
    assert metrics["citation_validity"] == 1.0
