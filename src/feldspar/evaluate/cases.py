"""Evaluation cases: a question, the documents that answer it and the accepted answers.

Cases come from a JSONL file (one object a line) or are made from a SQuAD-style folder
(`passages.jsonl` + `questions.jsonl`), whose held-out articles give questions that the
corpus cannot answer.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feldspar.errors import UserError

FIELDS = ("id", "question", "gold_sources", "answers", "answerable")
EXAMPLE = ('{"id": "q1", "question": "Who signed the lease?", '
           '"gold_sources": ["contracts/lease.pdf"], "answers": ["Ada Lovelace"]}')


@dataclass(frozen=True)
class RagCase:
    """One question to ask, and what a right reply looks like."""

    id: str
    question: str
    gold_sources: tuple[str, ...]
    """Documents that answer it: stored paths, or their last path components
    ("xquad-en-a000-p001.txt", "handbook/leave.md"). Empty when unanswerable."""
    answers: tuple[str, ...]
    """Accepted answers; a reply is scored against the best-matching one."""
    answerable: bool = True
    """False when the collection does not hold the answer: the right reply abstains."""


def load_cases(path: str | Path) -> list[RagCase]:
    """Read cases from a JSONL file, one object a line (see docs/evaluation.md).

    Raises:
        UserError: the file is missing or unreadable, or a line is not a valid case; the
            message names the line and the fix.
    """
    cases: list[RagCase] = []
    seen: set[str] = set()
    for where, data in read_jsonl(Path(path)):
        case = _case(data, where)
        if case.id in seen:
            raise UserError(f"{where}: duplicate id '{case.id}'; give every case its own id")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise UserError(f"{path} holds no cases; write one JSON object a line, e.g. {EXAMPLE}")
    return cases


def sample_cases(cases: Sequence[RagCase], limit: int, *, seed: int = 0) -> list[RagCase]:
    """A seeded sample of `limit` cases, in their original order, that keeps the share of
    unanswerable cases.

    Example:
        >>> cases = [RagCase(str(i), "?", (), (), answerable=i % 4 != 0) for i in range(40)]
        >>> picked = sample_cases(cases, 8)
        >>> len(picked), sum(not c.answerable for c in picked)
        (8, 2)
        >>> picked == sample_cases(cases, 8)
        True
    """
    if limit >= len(cases):
        return list(cases)
    rng = random.Random(seed)
    unanswerable = [i for i, c in enumerate(cases) if not c.answerable]
    answerable = [i for i, c in enumerate(cases) if c.answerable]
    n_unanswerable = round(limit * len(unanswerable) / len(cases))
    picked = {*rng.sample(unanswerable, n_unanswerable),
              *rng.sample(answerable, limit - n_unanswerable)}
    return [c for i, c in enumerate(cases) if i in picked]


def squad_folder(folder: str | Path, out_dir: str | Path, *, limit: int | None = None,
                 unanswerable_share: float = 0.2, seed: int = 0
                 ) -> tuple[Path, list[RagCase]]:
    """Make a corpus and cases from a SQuAD-style folder (passages.jsonl, questions.jsonl).

    Articles (passages grouped by title) are taken in the order of the SHA-256 of their
    title and held out of the corpus until their questions make up `unanswerable_share` of
    all questions: those questions become the unanswerable cases, since no paragraph of
    their article is in the corpus. Every other passage is written to
    `out_dir/corpus/<passage_id>.txt` (the title, a blank line, the text); its questions
    are answerable, with gold source `<passage_id>.txt`. Other `.txt` files left in that
    folder by an earlier call are removed, so the folder is exactly the corpus.

    Args:
        folder: the dataset folder.
        out_dir: where the corpus folder goes.
        limit: ask only a seeded sample of this many questions (see `sample_cases`).
        unanswerable_share: the share of questions whose article is held out, in [0, 1).
        seed: the sample's seed; the split itself depends only on the titles.

    Returns:
        The corpus folder and the cases, in the order of questions.jsonl.

    Raises:
        UserError: a file is missing or a row lacks a field.
    """
    if not 0 <= unanswerable_share < 1:
        raise UserError(f"unanswerable_share must be in [0, 1), not {unanswerable_share}")
    folder = Path(folder)
    passages = _rows(folder / "passages.jsonl", ("passage_id", "title", "text"))
    questions = _rows(folder / "questions.jsonl", ("id", "passage_id", "question", "answers"))
    title_of = {p["passage_id"]: p["title"] for _, p in passages}
    for where, q in questions:
        if q["passage_id"] not in title_of:
            raise UserError(f"{where}: passage_id '{q['passage_id']}' is not in "
                            f"{folder / 'passages.jsonl'}; fix the id or add the passage")
    held_out = _held_out(Counter(title_of[q["passage_id"]] for _, q in questions),
                         unanswerable_share * len(questions))

    corpus = Path(out_dir) / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    written = set()
    for where, p in passages:
        name = f"{p['passage_id']}.txt"
        if Path(name).name != name or name.startswith("."):
            raise UserError(f"{where}: passage_id '{p['passage_id']}' cannot be a file name; "
                            "use letters, digits and dashes")
        if p["title"] not in held_out:
            (corpus / name).write_text(f"{p['title']}\n\n{p['text']}\n", encoding="utf-8")
            written.add(name)
    for stale in corpus.glob("*.txt"):
        if stale.name not in written:
            stale.unlink()

    cases = []
    for _, q in questions:
        answerable = title_of[q["passage_id"]] not in held_out
        cases.append(RagCase(
            id=str(q["id"]), question=q["question"],
            gold_sources=(f"{q['passage_id']}.txt",) if answerable else (),
            answers=tuple(a["text"] for a in q["answers"]) if answerable else (),
            answerable=answerable))
    return corpus, cases if limit is None else sample_cases(cases, limit, seed=seed)


def read_jsonl(path: Path, example: str = EXAMPLE
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each non-blank line's object, with "PATH, line N" to name it in errors.

    Raises:
        UserError: the file cannot be read, or a line is not a JSON object.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"No such file: {path}; give a JSONL file of cases or a SQuAD-style "
                        "folder (see docs/evaluation.md)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; give a JSONL file of cases") from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); "
                            "write one JSON object a line") from None
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object, e.g. {example}")
        yield where, data


def _case(data: dict[str, Any], where: str) -> RagCase:
    missing = [f for f in FIELDS[:4] if f not in data]
    if missing:
        raise UserError(f"{where}: missing {', '.join(repr(f) for f in missing)}; every case "
                        f"needs id, question, gold_sources and answers, e.g. {EXAMPLE}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UserError(f"{where}: unknown field {', '.join(repr(f) for f in unknown)}; the "
                        f"fields are {', '.join(FIELDS)}")
    case_id, question = data["id"], data["question"]
    if not isinstance(case_id, str | int) or isinstance(case_id, bool) or str(case_id) == "":
        raise UserError(f"{where}: 'id' must be a non-empty string or a number")
    if not isinstance(question, str) or not question.strip():
        raise UserError(f"{where}: the question is empty; write the question to ask")
    gold, answers = _strings(data, "gold_sources", where), _strings(data, "answers", where)
    answerable = data.get("answerable", True)
    if not isinstance(answerable, bool):
        raise UserError(f"{where}: 'answerable' must be true or false")
    if answerable and not (gold and answers):
        raise UserError(f"{where}: an answerable case needs at least one gold source and one "
                        'answer; fill them in, or set "answerable": false')
    if not answerable and gold:
        raise UserError(f"{where}: an unanswerable case has no gold sources; empty "
                        "'gold_sources' or drop \"answerable\": false")
    return RagCase(str(case_id), question, gold, answers, answerable)


def _strings(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserError(f"{where}: '{key}' must be a list of non-empty strings, e.g. "
                        f"{EXAMPLE}")
    return tuple(value)


def _rows(path: Path, fields: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    rows = list(read_jsonl(path))
    for where, row in rows:
        missing = [f for f in fields if f not in row]
        if missing:
            raise UserError(f"{where}: missing {', '.join(repr(f) for f in missing)}; a "
                            f"SQuAD-style {path.name} row has {', '.join(fields)}")
        wrong = [f for f in fields if f != "id" and not isinstance(row[f], str)
                 and not (f == "answers" and isinstance(row[f], list)
                          and all(isinstance(a, dict) and isinstance(a.get("text"), str)
                                  for a in row[f]))]
        if wrong:
            raise UserError(f"{where}: {', '.join(repr(f) for f in wrong)} must be "
                            + ("a list of {\"text\": ...} objects" if wrong == ["answers"]
                               else "text") + f" in a SQuAD-style {path.name}")
    return rows


def _held_out(questions_per_title: Counter[str], target: float) -> set[str]:
    """Titles in hash order until their questions reach `target`; one title always stays."""
    held: set[str] = set()
    count = 0
    titles = sorted(questions_per_title,
                    key=lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    for title in titles[:-1]:
        if count >= target:
            break
        held.add(title)
        count += questions_per_title[title]
    return held
