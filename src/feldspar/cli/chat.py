"""`feldspar chat`: one question, or a conversation, with a chat model."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from feldspar.cli.output import print_json, typed_lines

if TYPE_CHECKING:
    from feldspar.datatypes import Completion, Message
    from feldspar.guard import Guard, GuardedStream, GuardResult
    from feldspar.models import ChatModel, GenerationOptions, Stream

@click.command(epilog="""\b
Examples:
  feldspar chat "Name three primary colors."
  echo "Summarise: ..." | feldspar chat --max-tokens 200
  feldspar chat "Name three primary colors." --json --seed 1
  feldspar chat -m granite-3.3-2b-instruct        (a conversation; 'exit' or Ctrl-D ends it)
""")
@click.argument("prompt", required=False)
@click.option("-m", "--model", help="Model name (default: the chat_model setting).")
@click.option("-s", "--system", help="System prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Most tokens to generate.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.7, show_default=True,
              help="Sampling temperature; 0 is greedy.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95,
              show_default=True, help="Nucleus sampling mass.")
@click.option("--seed", type=int, help="Random seed, for repeatable replies.")
@click.option("--stop", multiple=True, help="Stop when this text appears (repeatable).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for inference.")
@click.option("-i", "--interactive", is_flag=True,
              help="Hold a conversation even when stdin is not a terminal (one turn a line).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object with text, model, license, usage and timings.")
def chat(prompt: str | None, model: str | None, system: str | None, max_tokens: int,
         temperature: float, top_p: float, seed: int | None, stop: tuple[str, ...],
         threads: int | None, interactive: bool, as_json: bool) -> None:
    """Chat with a model: one-shot with PROMPT or stdin, a conversation without."""
    from feldspar.config import load_settings
    from feldspar.models import GenerationOptions, get_model

    prompt = _read_prompt(prompt, interactive, as_json)
    options = GenerationOptions(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                seed=seed, stop=stop)
    settings = load_settings(threads=threads)
    screen = None
    if settings.guard:
        from feldspar.workspace import Workspace

        screen = Workspace(settings).guard  # its store holds the audit log
    # A blocked prompt never reaches the model, which is not even loaded for it.
    checked = None
    if screen is not None and prompt is not None:
        checked = screen_prompt(screen, prompt, model or settings.chat_model)
        prompt = checked.text
    started = time.perf_counter()
    llm = get_model(model, settings=settings)
    load_s = time.perf_counter() - started
    if prompt is None:
        _converse(llm, system, options, screen)
        return
    stream = llm.stream(prompt, system=system, options=options)
    guarded = screen.stream(stream, prompt=prompt, source="chat", model=llm.spec.name) \
        if screen else None
    if as_json:
        print_json(_guarded_json(stream, guarded, checked, load_s))
        return
    for piece in guarded if guarded is not None else stream:
        click.echo(piece, nl=False)
    click.echo()
    if guarded is not None:
        show_output_check(guarded.result())


def _read_prompt(prompt: str | None, interactive: bool, as_json: bool) -> str | None:
    """The one-shot prompt (the argument, or stdin when it is not a terminal), or None for
    a conversation."""
    if interactive and prompt is not None:
        raise click.UsageError("Give either a PROMPT or --interactive, not both")
    if prompt is None and not interactive and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    if prompt is not None and not prompt.strip():
        raise click.UsageError("The prompt is empty; give a question or pipe text in")
    if prompt is None and as_json:
        raise click.UsageError("--json needs a PROMPT argument or text on stdin")
    return prompt


def _guarded_json(stream: Stream, guarded: GuardedStream | None,
                  checked: GuardResult | None, load_s: float) -> dict[str, Any]:
    """`chat --json`: the completion, with the text as the guard let it through and the
    guard's decisions."""
    text = "".join(guarded if guarded is not None else stream)
    data = completion_json(stream.result(), load_s)
    if guarded is not None and checked is not None:
        answer = guarded.result()
        data["text"] = answer.text if answer.action == "redact" else text
        data["guard"] = {"input": checked.to_dict(), "output": answer.to_dict()}
        if answer.blocked:
            data["finish_reason"] = "content_filter"
    return data


def screen_prompt(screen: Guard, prompt: str, model: str) -> GuardResult:
    """The input policy on a prompt: raises `Blocked`, notes flags on stderr, and returns
    the decision (whose text is redacted where the policy says so)."""
    from feldspar.guard import Blocked

    result = screen.check(prompt, direction="input", source="chat", model=model)
    if result.blocked:
        raise Blocked(result)
    if result.flags:
        click.echo(f"(guard: {result.action} for {', '.join(result.flags)})", err=True)
    return result


def show_output_check(result: GuardResult) -> None:
    """After a streamed answer: what the output policy did, on stderr."""
    if result.blocked:
        click.echo(f"(guard: the answer was stopped for {', '.join(result.flags)})",
                   err=True)
    elif result.flags:
        click.echo(f"(guard: {result.action} for {', '.join(result.flags)})", err=True)


def completion_json(done: Completion, load_s: float | None = None) -> dict[str, Any]:
    """The JSON shape of a finished generation, as `chat --json` prints it."""
    speed = None
    if done.timings.first_token_s is not None and done.usage.completion_tokens > 1:
        span = done.timings.total_s - done.timings.first_token_s
        speed = (done.usage.completion_tokens - 1) / span if span > 0 else None
    timings: dict[str, float | None] = {
        "first_token_s": done.timings.first_token_s,
        "total_s": done.timings.total_s,
        "tokens_per_s": speed,
    }
    if load_s is not None:
        timings["load_s"] = load_s
    return {
        "text": done.text,
        "model": done.model,
        "license": done.license,
        "finish_reason": done.finish_reason,
        "usage": {
            "prompt_tokens": done.usage.prompt_tokens,
            "completion_tokens": done.usage.completion_tokens,
            "total_tokens": done.usage.total_tokens,
        },
        "timings": timings,
    }


def _converse(llm: ChatModel, system: str | None, options: GenerationOptions,
              screen: Guard | None) -> None:
    """An interactive conversation; the model sees the whole history each turn."""
    from feldspar.guard import Blocked

    history: list[Message] = [{"role": "system", "content": system}] if system else []
    click.echo(f"Chatting with {llm.spec.name} ({llm.spec.license}). "
               "Type 'exit' or press Ctrl-D to end.", err=True)
    for line in typed_lines(">"):
        if screen is not None:
            try:
                line = screen_prompt(screen, line, llm.spec.name).text
            except Blocked as exc:  # a blocked message does not end the conversation
                click.echo(f"Error: {exc}", err=True)
                continue
        history.append({"role": "user", "content": line})
        stream = _reply(llm, history, 1 if system else 0, options)
        if stream is None:
            continue
        guarded = screen.stream(stream, prompt=line, source="chat", model=llm.spec.name) \
            if screen else None
        shown = []
        for piece in guarded if guarded is not None else stream:
            click.echo(piece, nl=False)
            shown.append(piece)
        click.echo()
        if guarded is not None:
            show_output_check(guarded.result())
        history.append({"role": "assistant", "content": "".join(shown)})


def _reply(llm: ChatModel, history: list[Message], keep: int,
           options: GenerationOptions) -> Stream | None:
    """Start a reply, forgetting the oldest exchanges while the conversation is too long."""
    from feldspar.errors import ContextOverflow

    while True:
        try:
            return llm.stream(history, options=options)
        except ContextOverflow:
            if len(history) - keep <= 1:
                history.pop()
                click.echo("That message alone is longer than the context; send a shorter "
                           "one.", err=True)
                return None
            del history[keep : keep + 2]
            click.echo("(The conversation outgrew the context; the oldest turns were dropped.)",
                       err=True)
