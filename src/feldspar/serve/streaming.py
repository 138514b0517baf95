"""Server-sent events made in a thread of their own, relayed to the client.

A model's stream belongs to the thread that reads it: one thread starts the work and makes
every event, so a bad request (a prompt over the context) raises before any event is sent
and becomes an ordinary error answer. The thread stops, and frees the model, as soon as the
client is gone: a watcher asks every DISCONNECT_POLL seconds, and the work checks
`cancelled()` between tokens, so that a client that leaves frees the model even while the
guard holds text back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from feldspar.errors import FeldsparError

DISCONNECT_POLL = 0.25
"""Seconds between two checks that a streaming client is still there."""
DONE = "data: [DONE]\n\n"
log = logging.getLogger("feldspar.serve")
_local = threading.local()


def sse(data: Any) -> str:
    """One server-sent event carrying `data` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def cancelled() -> bool:
    """Whether the client of the stream this thread makes has gone."""
    stop: threading.Event | None = getattr(_local, "stop", None)
    return stop is not None and stop.is_set()


def until_cancelled(pieces: Iterable[str]) -> Iterator[str]:
    """`pieces` until the client of this thread's stream goes."""
    for piece in pieces:
        if cancelled():
            return
        yield piece


def events(make: Iterator[str], close: Callable[[], None]) -> Generator[str, None, None]:
    """The events `make` yields, then exactly one `data: [DONE]`; an error on the way
    becomes an error event in OpenAI's envelope (never a cut-off stream), and `close`
    frees what the events hold however they end."""
    from feldspar.serve.errors import APIError, from_feldspar

    try:
        yield from make
    except FeldsparError as exc:
        yield sse(from_feldspar(exc).body())
    except Exception:
        log.exception("a stream failed")
        yield sse(APIError(500, "The server failed while streaming; see its log",
                           type="api_error", code="server_error").body())
    finally:
        close()
    yield DONE


async def event_stream(start: Callable[[], Iterator[str]], request: Request,
                       on_end: Callable[[], None] | None = None) -> Response:
    """Call `start` in a thread of its own and stream the events it returns. `start` does
    the work that may fail (its exception propagates here, before any event); iterating
    what it returns makes the events, and closing it frees what it holds. `on_end` runs
    exactly once, as soon as the work is over, however it ends (before a failure is
    answered, so that a client that retries finds its place free)."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()
    ended = threading.Event()

    def end() -> None:
        if on_end is not None and not ended.is_set():
            ended.set()
            on_end()

    def settle(exc: BaseException | None) -> None:  # in the loop; the request may be gone
        if started.done():
            return
        if exc is None:
            started.set_result(None)
        else:
            started.set_exception(exc)

    def produce() -> None:
        _local.stop = stop
        try:
            _produce(start, loop, settle, queue, stop, end)
        finally:
            end()

    try:
        threading.Thread(target=produce, name="feldspar-stream", daemon=True).start()
    except BaseException:
        end()
        raise
    try:
        await started
    except asyncio.CancelledError:  # the client left before the first event
        stop.set()
        raise
    return StreamingResponse(_relay(queue, stop, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _produce(start: Callable[[], Iterator[str]], loop: asyncio.AbstractEventLoop,
             settle: Callable[[BaseException | None], None],
             queue: asyncio.Queue[str | None], stop: threading.Event,
             end: Callable[[], None]) -> None:
    """In the stream's thread: start, say so (or how it failed), then queue the events
    until they end or the client is gone; None marks the end."""
    def post(function: Callable[..., None], *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the server has stopped: nobody is left to tell
            stop.set()

    try:
        made = start()
    except BaseException as exc:
        end()
        post(settle, exc)
        return
    post(settle, None)
    try:
        for event in made:
            if stop.is_set():
                break
            post(queue.put_nowait, event)
    finally:
        close = getattr(made, "close", None)
        if close is not None:
            close()  # in the thread that reads it: the model is freed
        post(queue.put_nowait, None)


async def _relay(queue: asyncio.Queue[str | None], stop: threading.Event,
                 request: Request) -> AsyncIterator[str]:
    """The events from `queue` until its end (None); `stop` is set when the client goes."""
    async def watch() -> None:
        while not stop.is_set():
            if await request.is_disconnected():
                stop.set()
                return
            await asyncio.sleep(DISCONNECT_POLL)

    watcher = asyncio.ensure_future(watch())
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        stop.set()
        watcher.cancel()
