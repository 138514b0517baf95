"""`feldspar ask`: answers from the ingested documents, with checked citations."""

from __future__ import annotations

import sys
from pathlib import PurePath
from typing import TYPE_CHECKING

import click

from feldspar.cli.output import print_json, typed_lines
from feldspar.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from feldspar.datatypes import Message
    from feldspar.rag import Answer

QUOTE_CHARS = 160


@click.command(epilog="""\b
Examples:
  feldspar ask "How many days of leave do I get?"
  feldspar ask "Who approves expenses?" --collection finance -m granite-3.3-2b-instruct
  feldspar ask "What does the retry loop do?" --where "path=*.py" --json
  feldspar ask                  (a conversation: follow-up questions are understood in context)
""")
@click.argument("question", required=False)
@click.option("-c", "--collection", help="Collection to answer from (default: the "
              "collection setting).")
@click.option("-m", "--model", help="Chat model (default: the chat_model setting).")
@click.option("-k", "--top-k", type=click.IntRange(1, 50), help="Sources to give the model "
              "(default: the rag_top_k setting).")
@click.option("--where", multiple=True, metavar="FIELD=VALUE",
              help="Only documents matching: path=GLOB or type=TYPE (repeatable).")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Most tokens of the answer (default: the rag_max_tokens setting).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for inference.")
@click.option("-i", "--interactive", is_flag=True,
              help="Hold a conversation even when stdin is not a terminal (one question a "
              "line).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: text, citations, sentences, abstained, sources, "
              "usage and timings.")
def ask(question: str | None, collection: str | None, model: str | None, top_k: int | None,
        where: tuple[str, ...], max_tokens: int | None, threads: int | None,
        interactive: bool, as_json: bool) -> None:
    """Answer QUESTION from the ingested documents, citing the passages that support it.

    Every citation is checked: a sentence keeps a citation only when the cited passage
    supports it. When the documents do not support an answer, Feldspar says so and shows
    the closest passages.
    """
    from feldspar.config import load_settings
    from feldspar.models import GenerationOptions
    from feldspar.rag.answering import MAX_QUESTION_CHARS
    from feldspar.store.records import Where
    from feldspar.workspace import Workspace

    if interactive and question is not None:
        raise click.UsageError("Give either a QUESTION or --interactive, not both")
    if question is None and not interactive and not sys.stdin.isatty():
        question = sys.stdin.read(MAX_QUESTION_CHARS + 1)  # longer is refused anyway
    if question is None and as_json:
        raise click.UsageError("--json needs a QUESTION argument or text on stdin")
    settings = load_settings(threads=threads)
    filters = Where.parse(list(where)) if where else None
    options = GenerationOptions(max_tokens=max_tokens, temperature=0.0) if max_tokens else None
    with Workspace(settings) as ws:
        def one(text: str, history: list[Message]) -> Answer:
            stream = ws.ask_stream(text, collection=collection, model=model, history=history,
                                   k=top_k, where=filters, options=options)
            if as_json:
                return stream.result()
            from feldspar.rag.citations import MarkerFilter

            shown = MarkerFilter()
            for piece in stream:
                click.echo(shown.feed(piece), nl=False)
            click.echo(shown.flush())
            answer = stream.result()
            show_checks(answer)
            from feldspar.cli.chat import show_output_check

            for result in answer.guard.values():
                show_output_check(result)
            return answer

        if question is not None:
            answer = one(question, [])
            if as_json:
                print_json(answer.to_dict())
            return
        _converse(one)


def show_checks(answer: Answer) -> None:
    """After the streamed text: the checked citations, or why Feldspar abstained."""
    if answer.abstained:
        if answer.reason == "not supported":
            click.echo(f"\nThe sources do not support this answer. {answer.text}")
        if answer.sources:
            click.echo("\nClosest sources:")
            for source in answer.sources:
                click.echo(f"  [{source.marker}] {_where(source.path, source.lines)}")
        return
    unsupported = [s for s in answer.sentences if s.checked and not s.supported]
    if answer.citations:
        click.echo("\nSources:")
        by_marker = {s.marker: s for s in answer.sources}
        for citation in answer.citations:
            source = by_marker[citation.marker]
            quote = " ".join(citation.quote.split())
            if len(quote) > QUOTE_CHARS:
                quote = quote[: QUOTE_CHARS - 1] + "…"
            click.echo(f"  [{citation.marker}] {_where(source.path, source.lines)}  "
                       f"\"{quote}\"  (support {citation.support:.2f})")
    if unsupported:
        click.echo(f"\nNot supported by the sources ({len(unsupported)} of "
                   f"{len(answer.sentences)} sentences):")
        for sentence in unsupported:
            click.echo(f"  - {sentence.text}")


def _where(path: str, lines: tuple[int, int]) -> str:
    span = f"{lines[0]}" if lines[0] == lines[1] else f"{lines[0]}-{lines[1]}"
    return f"{PurePath(path).name}:{span}  ({path})"


def _converse(turn: Callable[[str, list[Message]], Answer]) -> None:
    """Questions and follow-ups until 'exit' or Ctrl-D; the conversation is the context."""
    history: list[Message] = []
    click.echo("Ask about your documents. Type 'exit' or press Ctrl-D to end.", err=True)
    for line in typed_lines("?"):
        try:
            answer = turn(line, history)
        except UserError as exc:  # one bad question does not end the conversation
            click.echo(f"Error: {exc}", err=True)
            continue
        # The question as the model saw it (redacted, when the input policy says so).
        history += [{"role": "user", "content": answer.question},
                    {"role": "assistant", "content": answer.text}]
