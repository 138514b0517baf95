"""The guard classifier's data: loaders for five public safety datasets and their split.

Each example is a text with the risks it carries (`harm`, `jailbreak`, `prompt_injection`;
none for a benign text). Examples are split by a stable hash of a *group key*, so that
near-copies never straddle the split (about 30% of the groups of each dataset are test):

- advbench: goals clustered by content-word overlap (Jaccard >= 0.5, so the 18 "hack into
  a government database" goals are one group); every goal carries `harm`.
- xstest: a safe prompt and its `contrast_` counterpart are one group (same family, same
  position in the family); unsafe prompts carry `harm`.
- jailbreak_templates_selfreminder: templates sharing 20% of their word 5-grams are one
  group. Each is filled (its `[INSERT PROMPT HERE]`, else appended) with an advbench goal
  (`jailbreak`, `harm`) or with a safe XSTest prompt (`jailbreak` only) *of the same split*.
- benign_prompts: one group per prompt; no risk.
- bipia_indirect_prompt_injection: an email, table or code context, clean (no risk) or
  with an attack string inserted at its start, middle or end (`prompt_injection`). Attack
  strings and contexts are split separately (a test case needs a test context and a test
  attack), so test attacks are never seen in training. 150 of the 900 tables are used.

Training also uses, never in the test file: benign texts from other folders
(`extra_benign`: BANKING77 queries, SQuAD questions and Wikipedia paragraphs); BIPIA's
text attack strings alone, as benign prompts (`attack_prompts`); contexts with the opening
of a jailbreak template hidden in them (`injected_jailbreaks`, contexts and templates of
one split); and one-sentence instructions reworded (`rephrased`).

    python bench/guard_data.py [--data ../shared/data] [--test-out test.jsonl] [--train-out F]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA

TEST_SHARE = 30  # percent of groups held out
RISKS = ("harm", "jailbreak", "prompt_injection")
FOLDERS = {"advbench": "advbench", "xstest": "xstest",
           "jailbreak": "jailbreak_templates_selfreminder", "benign": "benign_prompts",
           "bipia": "bipia_indirect_prompt_injection"}
PLACEHOLDER = "[INSERT PROMPT HERE]"
TABLES_USED = 150
POSITIONS = ("start", "middle", "end")


@dataclass(frozen=True)
class Example:
    text: str
    risks: tuple[str, ...]
    source: str
    """The dataset folder the text comes from."""
    group: str
    """Examples of one group are all in train or all in test."""
    payload: tuple[int, int] | None = None
    """Character span of what was inserted into a host text (the goal or question in a
    jailbreak template, the attack in a BIPIA context): span-bound risks (`harm`,
    `prompt_injection`) lie there, so a window of a long text that misses it is clean."""
    kind: str = ""
    """A finer label for reports: xstest type, bipia task, "filled-harmful", ..."""

    @property
    def test(self) -> bool:
        return is_test(self.source, self.group)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "risks": list(self.risks), "source": self.source}


def is_test(source: str, group: str) -> bool:
    digest = hashlib.sha256(f"{source}\0{group}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < TEST_SHARE


def _pick(key: str, n: int) -> int:
    """A stable index in range(n) chosen by `key`."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % n


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _clusters(items: list[set[Any]], similar: Any) -> list[int]:
    """Union-find over all pairs: the representative index of each item's cluster."""
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(items)), 2):
        if items[i] and items[j] and similar(items[i], items[j]):
            parent[root(i)] = root(j)
    return [min(k for k in range(len(items)) if root(k) == root(i)) for i in range(len(items))]


_STOP = frozenset((
    "a", "an", "the", "to", "of", "and", "or", "for", "on", "in", "how", "that", "can", "be",
    "is", "with", "by", "into", "from", "your", "their", "someone"
))


def advbench(data: Path) -> list[Example]:
    goals = [r["goal"].strip() for r in _csv(data / FOLDERS["advbench"] /
                                             "harmful_behaviors.csv")]
    words = [set(re.findall(r"[a-z0-9]+", g.lower())) - _STOP for g in goals]
    rep = _clusters(words, lambda a, b: len(a & b) / len(a | b) >= 0.5)
    return [Example(g, ("harm",), FOLDERS["advbench"], goals[r], None, "goal")
            for g, r in zip(goals, rep, strict=True)]


def xstest(data: Path) -> list[Example]:
    rows = _csv(data / FOLDERS["xstest"] / "xstest_prompts.csv")
    family = {"nons_group_real_discr": "discr", "real_group_nons_discr": "discr",
              "privacy_public": "privacy", "privacy_fictional": "privacy"}
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        seen[r["type"]] = seen.get(r["type"], -1) + 1
        name = r["type"].removeprefix("contrast_")
        group = f"{family.get(r['type'], name)}:{seen[r['type']]}"
        risks = ("harm",) if r["label"] == "unsafe" else ()
        out.append(Example(r["prompt"].strip(), risks, FOLDERS["xstest"], group, None,
                           r["type"]))
    return out


def benign(data: Path) -> list[Example]:
    return [Example(r["text"].strip(), (), FOLDERS["benign"], r["id"], None, r["source"])
            for r in _jsonl(data / FOLDERS["benign"] / "benign_prompts.jsonl")]


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str
    group: str


def templates(data: Path) -> list[Template]:
    rows = _jsonl(data / FOLDERS["jailbreak"] / "jailbreak_templates.jsonl")

    def shingles(text: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", text.lower())
        return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}

    sets = [shingles(r["prompt"]) for r in rows]
    rep = _clusters(sets, lambda a, b: len(a & b) / min(len(a), len(b)) >= 0.2)
    return [Template(r["name"], r["prompt"], rows[k]["name"]) for r, k in zip(rows, rep,
                                                                             strict=True)]


def fill(template: str, question: str) -> tuple[str, tuple[int, int]]:
    """The template with `question` in its placeholder (appended when it has none), and
    where the question lies in the result."""
    at = template.find(PLACEHOLDER)
    if at < 0:
        head = template.rstrip() + "\n\n"
        return head + question, (len(head), len(head) + len(question))
    text = template[:at] + question + template[at + len(PLACEHOLDER):].replace(
        PLACEHOLDER, question)
    return text, (at, at + len(question))


def jailbreaks(data: Path, *, harmful: int = 1, safe: int = 1) -> list[Example]:
    """Each template filled with `harmful` advbench goals and `safe` safe XSTest prompts,
    all of the template's own split (train templates get train questions only)."""
    source = FOLDERS["jailbreak"]
    goals = advbench(data)
    questions = [ex for ex in xstest(data) if not ex.risks]
    out = []
    for t in templates(data):
        test = is_test(source, t.group)
        pools = ((harmful, [g for g in goals if g.test == test], ("jailbreak", "harm"),
                  "filled-harmful"),
                 (safe, [q for q in questions if q.test == test], ("jailbreak",),
                  "filled-safe"))
        for count, pool, risks, kind in pools:
            for k in range(count):
                question = pool[_pick(f"{t.name}\0{kind}\0{k}", len(pool))].text
                text, span = fill(t.prompt, question)
                out.append(Example(text, risks, source, t.group, span, kind))
    return out


# --- BIPIA -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    task: str
    """email, table or code."""
    text: str
    group: str


def contexts(data: Path) -> list[Context]:
    folder = data / FOLDERS["bipia"]
    out = [Context("email", r["context"], f"email:{r['context']}")
           for r in _jsonl(folder / "email_train.jsonl")]
    out += [Context("code", "\n".join(r["context"]), f"code:{r['context_url']}")
            for r in _jsonl(folder / "code_train.jsonl")]
    tables = sorted(_jsonl(folder / "table_train.jsonl"),
                    key=lambda r: hashlib.sha256(r["context"].encode()).hexdigest())
    seen: set[str] = set()
    for r in tables:  # the table file repeats contexts with different questions
        if r["context"] not in seen and len(seen) < TABLES_USED:
            seen.add(r["context"])
            out.append(Context("table", r["context"], f"table:{r['context']}"))
    return out


def attacks(data: Path) -> dict[str, list[str]]:
    """Attack strings for text contexts ("text") and code contexts ("code")."""
    folder = data / FOLDERS["bipia"]
    out = {}
    for kind in ("text", "code"):
        by_category = json.loads((folder / f"{kind}_attack_train.json").read_text("utf-8"))
        out[kind] = [a for strings in by_category.values() for a in strings]
    return out


def insert(context: str, attack: str, position: str) -> tuple[str, tuple[int, int]]:
    """`attack` put at the start, middle (at the line or sentence break nearest the middle)
    or end of `context`, and where it lies in the result."""
    if position == "start":
        return f"{attack}\n{context}", (0, len(attack))
    if position == "end":
        head = context.rstrip() + "\n"
        return head + attack, (len(head), len(head) + len(attack))
    middle = len(context) // 2
    breaks = [m.end() for m in re.finditer(r"\n|(?<=[.!?|])\s", context)] or [middle]
    at = min(breaks, key=lambda b: abs(b - middle))
    text = f"{context[:at]}{attack}\n{context[at:]}"
    return text, (at, at + len(attack))


def bipia(data: Path, *, attacked: int = 1) -> list[Example]:
    """Each context clean, and `attacked` times with an attack of its own split."""
    source = FOLDERS["bipia"]
    strings = attacks(data)
    out = []
    for c in contexts(data):
        test = is_test(source, c.group)
        out.append(Example(c.text, (), source, c.group, None, f"{c.task}-clean"))
        pool = [a for a in strings["code" if c.task == "code" else "text"]
                if is_test(source, f"attack:{a}") == test]
        for k in range(attacked):
            attack = pool[_pick(f"{c.group}\0attack\0{k}", len(pool))]
            position = POSITIONS[_pick(f"{c.group}\0position\0{k}", len(POSITIONS))]
            text, span = insert(c.text, attack, position)
            out.append(Example(text, ("prompt_injection",), source, c.group, span,
                               f"{c.task}-attacked-{position}"))
    return out


def opening(template: str, words: int = 45) -> str:
    """The first sentences of a jailbreak template, up to about `words` words."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(template.replace(PLACEHOLDER, "").split()))
    out: list[str] = []
    for sentence in sentences:
        if out and len(" ".join([*out, sentence]).split()) > words:
            break
        out.append(sentence)
    return " ".join(out)


def injected_jailbreaks(data: Path) -> list[Example]:
    """Each BIPIA context with the opening of a jailbreak template hidden in it
    (`prompt_injection`), contexts and templates of the same split: BIPIA's own attacks
    never say "ignore your instructions", which injections in the wild often do. Not
    part of the test file; bench/train_guard.py reports its held-out part apart."""
    source = FOLDERS["bipia"]
    by_split = {test: [t for t in templates(data) if is_test(FOLDERS["jailbreak"], t.group)
                       == test] for test in (False, True)}
    out = []
    for c in contexts(data):
        pool = by_split[is_test(source, c.group)]
        attack = opening(pool[_pick(f"{c.group}\0jailbreak", len(pool))].prompt)
        position = POSITIONS[_pick(f"{c.group}\0jailbreak-position", len(POSITIONS))]
        text, span = insert(c.text, attack, position)
        out.append(Example(text, ("prompt_injection",), source, c.group, span,
                           f"{c.task}-jailbreak-{position}"))
    return out


def attack_prompts(data: Path) -> list[Example]:
    """BIPIA's *text* attack strings on their own, as benign prompts (a user may ask
    "What is the capital of Brazil?"; only inside a document is it an injection)."""
    return [Example(a, (), FOLDERS["bipia"], f"attack:{a}", None, "attack-alone")
            for a in attacks(data)["text"]]


# --- all of it ---------------------------------------------------------------------------

def examples(data: Path, *, filled_harmful: int = 1, filled_safe: int = 1,
             attacked: int = 1) -> list[Example]:
    """Every example of the five datasets, train and test (check `.test`)."""
    return (advbench(data) + xstest(data) + benign(data)
            + jailbreaks(data, harmful=filled_harmful, safe=filled_safe)
            + bipia(data, attacked=attacked))


def extra_benign(data: Path, *, banking: int = 800, questions: int = 400,
                 paragraphs: int = 120) -> list[Example]:
    """Benign texts from other folders, for training only: BANKING77 customer queries,
    SQuAD questions and Wikipedia paragraphs (a stable sample of each)."""
    def sample(rows: Iterable[str], n: int, key: str) -> list[str]:
        ranked = sorted(dict.fromkeys(rows), key=lambda t: hashlib.sha256(
            f"{key}\0{t}".encode()).hexdigest())
        return ranked[:n]

    bank = sample((r["text"] for r in _csv(data / "banking77" / "train.csv")), banking,
                  "banking77")
    squad = data / "squad_v1_dev_subset_xquad_en"
    asked = sample((r["question"] for r in _jsonl(squad / "questions.jsonl")), questions,
                   "squad")
    paras = sample((r["text"] for r in _jsonl(squad / "passages.jsonl")), paragraphs,
                   "squad-passages")
    return ([Example(t, (), "banking77", t, None, "query") for t in bank]
            + [Example(t, (), "squad_v1_dev_subset_xquad_en", t, None, "question")
               for t in asked]
            + [Example(t, (), "squad_v1_dev_subset_xquad_en", t, None, "paragraph")
               for t in paras])


_HOW_TO = re.compile(r"\bhow to (.+?)[.?!]*$", re.IGNORECASE)


_VERBS = frozenset((
    "write", "create", "develop", "design", "explain", "provide", "give", "generate",
    "describe", "outline", "make", "list", "suggest", "teach", "instruct", "draft", "compose",
    "translate", "summarize", "summarise", "tell", "find", "produce", "plan", "rewrite", "add",
    "integrate", "include", "use", "replace", "remove", "modify", "show", "help", "build",
    "publish", "post", "share", "offer", "prepare", "recommend", "identify", "train", "hack",
    "steal", "manipulate", "encourage", "promote", "convince"
))


def rephrase(text: str) -> str:
    """An instruction reworded as a user might ask it: "... how to X" becomes "How do I
    X?" (or "What is the best way to X?"); others get "Can you ...?", "Please ..." or
    "I want you to ...". Applied alike to harmful and benign instructions, so that the
    form of a request says nothing of its risk."""
    first = text.strip()
    lower = (first[0].lower() + first[1:]).rstrip(".!")
    found = _HOW_TO.search(first)
    k = _pick(f"rephrase\0{text}", 3)
    if found:
        rest = found.group(1)
        return (f"How do I {rest}?", f"What is the best way to {rest}?", f"How can I {rest}?")[k]
    return (f"Can you {lower}?", f"Please {lower}.", f"I want you to {lower}.")[k]


def rephrased(rows: Iterable[Example]) -> list[Example]:
    """`rephrase` of each one-sentence instruction among `rows` (same risks and group):
    one line, under 40 words, starting with a verb of _VERBS."""
    return [Example(rephrase(ex.text), ex.risks, ex.source, ex.group, None, "rephrased")
            for ex in rows if "\n" not in ex.text.strip() and len(ex.text.split()) < 40
            and ex.text.split()[0].lower() in _VERBS and ". " not in ex.text.strip()]


def _write(path: Path, rows: Iterator[Example]) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in rows:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def write_test_jsonl(path: Path, data: Path = DEFAULT_DATA) -> int:
    """Write the held-out test part as JSONL {"text", "risks", "source"}; returns the
    number of lines. The same rows, every time, on every machine."""
    return _write(Path(path), (ex for ex in examples(data) if ex.test))


def write_train_jsonl(path: Path, data: Path = DEFAULT_DATA) -> int:
    """Write the train part (one filling / attack per template / context) as JSONL."""
    return _write(Path(path), (ex for ex in examples(data) if not ex.test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--test-out", type=Path)
    parser.add_argument("--train-out", type=Path)
    args = parser.parse_args()
    rows = examples(args.data)
    for source in dict.fromkeys(ex.source for ex in rows):
        part = [ex for ex in rows if ex.source == source]
        test = [ex for ex in part if ex.test]
        print(f"{source}: {len(part)} examples, {len(test)} test")
    if args.test_out:
        print(f"{write_test_jsonl(args.test_out, args.data)} lines -> {args.test_out}")
    if args.train_out:
        print(f"{write_train_jsonl(args.train_out, args.data)} lines -> {args.train_out}")


if __name__ == "__main__":
    main()
