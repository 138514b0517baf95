"""`feldspar check-grounding`: is a response supported by the given passages?"""

from __future__ import annotations

import sys

import click

from feldspar.cli.app import CONTEXT
from feldspar.cli.output import print_json
from feldspar.errors import UserError

# A passage or a response larger than this is refused rather than read, and so are more
# passages than this.
MAX_BYTES = 1_000_000
MAX_PASSAGES = 100


def read_text(name: str, what: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of file `name` ('-': standard input), or a one-line UserError."""
    try:
        if name == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(name, "rb") as fh:
                data = fh.read(limit + 1)
    except FileNotFoundError as exc:
        raise UserError(f"{what} file not found: {name}") from exc
    except IsADirectoryError as exc:
        raise UserError(f"{what} {name} is a folder; give a text file") from exc
    except OSError as exc:
        raise UserError(f"Cannot read {what.lower()} {name}: {exc.strerror or exc}") from exc
    source = "standard input" if name == "-" else name
    if len(data) > limit:
        raise UserError(f"{what} {source} is larger than {limit // 1_000_000} MB; give a "
                        "shorter text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {source} is not UTF-8 text (undecodable byte at position "
                        f"{exc.start})") from exc


@click.command("check-grounding", context_settings=CONTEXT, epilog="""\b
Examples:
  feldspar check-grounding --context policy.txt --response "Staff get 25 days of leave."
  feldspar check-grounding --context a.txt --context b.txt --response "$(cat answer.txt)" --json
  generate-answer | feldspar check-grounding --context notes.md --response -

\b
Each --context file is one passage ('-' reads standard input). --response is the text
itself, or '-' for standard input. Scores are probabilities (0 to 1) that the passages
support the sentence; the last line is the whole response's. Passages are numbered from
1 in the order given, in JSON too. Exit status 0 either way.
""")
@click.option("--context", "contexts", multiple=True, required=True, metavar="FILE",
              help="A file holding one passage of the context; repeatable, '-' for stdin.")
@click.option("--response", required=True, metavar="TEXT",
              help="The response to check, or '-' to read it from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_grounding(contexts: tuple[str, ...], response: str, as_json: bool) -> None:
    """Score how well the context passages support each sentence of a response."""
    if len(contexts) > MAX_PASSAGES:
        raise UserError(f"{len(contexts)} context files, over the limit of {MAX_PASSAGES}; "
                        "join related passages into fewer files")
    if list(contexts).count("-") + (response == "-") > 1:
        raise UserError("Standard input ('-') can be read once: give it to one option only")
    passages = [read_text(name, "Context") for name in contexts]
    text = read_text("-", "Response") if response == "-" else response
    from feldspar.grounding import GroundednessDetector

    report = GroundednessDetector().check(passages, text)
    if as_json:
        data = report.to_dict()
        for sentence in data["sentences"]:  # the --context file, counted from 1 as below
            if sentence["passage"] is not None:
                sentence["passage"] += 1
        print_json(data)
        return
    for s in report.sentences:
        where = f"passage {s.passage + 1}" if s.passage is not None else "no passage"
        score = f"{s.score:.2f}" if s.checked else "  - "
        note = f"[{where}]" if s.checked else "[nothing to check]"
        click.echo(f"{score}  {' '.join(s.text.split())}  {note}")
    verdict = "grounded" if report.grounded else "NOT grounded"
    click.echo(f"Overall: {report.score:.2f} ({verdict}; threshold {report.threshold:.2f})")
