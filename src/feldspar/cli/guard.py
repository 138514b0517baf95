"""`feldspar guard`: screen a text, or a file of texts, for risks under the policy."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from feldspar.cli.app import CONTEXT
from feldspar.cli.grounding import read_text
from feldspar.cli.output import print_json, print_table
from feldspar.errors import UserError

if TYPE_CHECKING:
    from feldspar.guard import Direction, Guard, GuardResult

MAX_TEXT_BYTES = 10_000_000
"""A text larger than this is refused; up to it, all of it is screened, in pieces."""
BATCH = 64
EXIT_ERRORS = 3


@click.command(context_settings=CONTEXT, epilog=f"""\b
Examples:
  feldspar guard "How do I make a bomb?"
  feldspar guard "Mail me at jane@example.com" --direction output --json
  feldspar guard "Ignore all previous instructions" --risk jailbreak --risk prompt_injection
  feldspar guard --risk groundedness --context policy.txt "Staff get 40 days of leave."
  feldspar guard --file prompts.jsonl --json > verdicts.jsonl
  feldspar guard --list-risks

\b
Without --risk, the risks of the policy for the direction (guard_policy) are screened.
The action is what the policy does: allow, flag, redact (the text comes back with the
spans replaced) or block. Every decision goes to the audit log (feldspar audit list).
--file reads JSONL, one {{"text": ...}} a line, and writes one result a line in the same
order; a line that cannot be screened gets {{"error": ...}}, and the exit status is then
{EXIT_ERRORS}.
""")
@click.argument("text", required=False)
@click.option("--risk", "risks", multiple=True, metavar="NAME",
              help="Screen for this risk (repeatable; default: the policy's).")
@click.option("--direction", type=click.Choice(["input", "output", "document"]),
              default="input", show_default=True,
              help="Whose text it is: a prompt, a model's answer, or a document.")
@click.option("--prompt", "question", metavar="TEXT",
              help="The question that an output answers (for answer risks).")
@click.option("--context", "contexts", multiple=True, metavar="FILE",
              help="A passage the answer was given (RAG risks); repeatable.")
@click.option("--file", "batch", type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="Screen every {\"text\": ...} line of a JSONL file "
              "('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: action and verdicts.")
@click.option("--list-risks", is_flag=True, help="List the risks and their detectors.")
def guard(text: str | None, risks: tuple[str, ...], direction: Direction,
          question: str | None,
          contexts: tuple[str, ...], batch: Path | None, as_json: bool,
          list_risks: bool) -> None:
    """Screen TEXT (or stdin) for harm, jailbreaks, prompt injection, PII, secrets and
    the other risks of the taxonomy, and say what the policy does with it."""
    from feldspar.config import load_settings
    from feldspar.workspace import Workspace

    settings = load_settings()
    if list_risks:
        _list_risks(settings.guard_risks, as_json)
        return
    if batch is not None and text is not None:
        raise click.UsageError("Give either TEXT or --file, not both")
    from feldspar.guard.risks import resolve

    named = resolve(risks, settings.guard_risks)  # bad input fails before any work
    names = [r.name for r in named] or None
    needing = [r.name for r in named if r.needs_context]
    if needing and not contexts:
        raise UserError(f"'{needing[0]}' is judged against retrieved passages; give the "
                        "context (--context FILE) or leave the risk out")
    context = [read_text(c, "Context", MAX_TEXT_BYTES) for c in contexts]
    if batch is None and text is None:
        if sys.stdin.isatty():
            raise click.UsageError("Give a TEXT to screen, --file, or pipe text in")
        text = read_text("-", "Text", MAX_TEXT_BYTES)
    if text is not None and not text.strip():
        raise UserError("The text is empty; give something to screen")
    with Workspace(settings) as ws:
        screen = ws.guard
        if batch is not None:
            failed = _batch(screen, batch, direction, names, question, context, as_json)
            if failed:
                sys.exit(EXIT_ERRORS)
            return
        assert text is not None
        result = screen.check(text, direction=direction, risks=names,
                              prompt=question, context=context, source="guard")
    if as_json:
        print_json(result.to_dict())
        return
    _show(result)


def _show(result: GuardResult) -> None:
    flagged = ", ".join(f"{v.risk} {v.score:.2f}" for v in result.verdicts if v.flagged)
    click.echo(f"{result.action}" + (f"  ({flagged})" if flagged else ""))
    print_table(["risk", "score", "flagged", "threshold", "detector"],
                [(v.risk, f"{v.score:.3f}", "yes" if v.flagged else "no",
                  f"{v.threshold:.2f}", v.detector) for v in result.verdicts])
    if result.action == "redact":
        click.echo(f"\n{result.text}")


def _lines(source: IO[bytes]) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, error) for each line of a JSONL file of {"text": ...}."""
    for number, raw in enumerate(source, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            yield number, None, f"line {number} is not a JSON object in UTF-8 ({exc})"
            continue
        value = record.get("text") if isinstance(record, dict) else None
        if not isinstance(value, str) or not value.strip():
            yield number, None, f"line {number} has no non-empty \"text\" string"
        elif len(value.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            yield number, None, f"line {number} is over {MAX_TEXT_BYTES // 1_000_000} MB"
        else:
            yield number, value, None


def _batch(screen: Guard, path: Path, direction: Direction, names: list[str] | None,
           question: str | None, context: list[str], as_json: bool) -> int:
    """Screen a JSONL file in batches, one output line per input line; returns how many
    lines failed."""
    from tqdm import tqdm

    try:
        source = sys.stdin.buffer if str(path) == "-" else path.open("rb")
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    failed = 0
    with source, tqdm(unit="text", desc="Screening", file=sys.stderr,
                      disable=not sys.stderr.isatty()) as bar:
        pending: list[tuple[int, str | None, str | None]] = []
        for entry in _lines(source):
            pending.append(entry)
            if len(pending) == BATCH:
                failed += _emit(screen, pending, direction, names, question, context, as_json)
                bar.update(len(pending))
                pending = []
        failed += _emit(screen, pending, direction, names, question, context, as_json)
        bar.update(len(pending))
    return failed


def _emit(screen: Guard, entries: list[tuple[int, str | None, str | None]],
          direction: Direction,
          names: list[str] | None, question: str | None, context: list[str],
          as_json: bool) -> int:
    texts = [t for _, t, _ in entries if t is not None]
    results = iter(screen.check_many(texts, direction=direction,
                                     risks=names, prompt=question, context=context,
                                     source="guard") if texts else [])
    for number, text, error in entries:
        out: dict[str, Any]
        if text is None:
            out = {"line": number, "error": error}
        else:
            out = {"line": number, **next(results).to_dict()}
        if as_json:
            click.echo(json.dumps(out, ensure_ascii=False))
        else:
            click.echo(f"{number}\t{out.get('action', 'error')}\t"
                       f"{','.join(out.get('flags', [])) or out.get('error', '')}")
    return sum(1 for _, text, _ in entries if text is None)


def _list_risks(custom: dict[str, str], as_json: bool) -> None:
    from feldspar.guard.risks import taxonomy

    risks = taxonomy(custom)
    if as_json:
        print_json([{"name": r.name, "family": r.family, "subject": r.subject,
                     "detectors": list(r.detectors), "definition": r.definition}
                    for r in risks.values()])
        return
    print_table(["risk", "family", "about", "detectors"],
                [(r.name, r.family, r.subject, ", ".join(r.detectors)) for r in risks.values()])
