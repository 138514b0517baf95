"""Parsing in a child process under memory and time limits, so that one hostile or broken
file (a zip bomb, a PDF that loops, a parser that crashes) costs a skip, not the ingest.

The parent sends one JSON line per file and reads one JSON line back. JSON, not pickle:
the child handles untrusted bytes, so the parent trusts nothing it sends but plain data.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from feldspar.ingest.parsed import Block, Parsed, ParseError


class ParseFailed(Exception):
    """A file could not be parsed; the message is the short reason for the summary."""


class ParserProcess:
    """A long-lived parsing child; restarted after a crash, a timeout or an overrun."""

    def __init__(self, *, memory_mb: int = 2048, timeout: float = 120.0) -> None:
        self.memory_mb = memory_mb
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "feldspar.ingest.worker", str(self.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True, encoding="utf-8")
        return self._proc

    def parse(self, path: Path) -> tuple[Parsed, str, int]:
        """Parse one file: (parsed, sha256 of the bytes parsed, their size).

        Raises:
            ParseFailed: the file was skipped; the message says why.
        """
        proc = self._start()
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise ParseFailed(self._died(proc)) from None
        line = self._read_line(proc.stdout, time.monotonic() + self.timeout)
        if line is None:
            self.close()
            raise ParseFailed(f"parsing took longer than {self.timeout:g} s "
                              "(parse_timeout)")
        if not line:
            raise ParseFailed(self._died(proc))
        reply: dict[str, Any] = json.loads(line)
        if not reply["ok"]:
            raise ParseFailed(reply["reason"])
        return _decode(reply["parsed"]), reply["sha256"], reply["size"]

    @staticmethod
    def _read_line(stream: IO[str], deadline: float) -> str | None:
        """One reply line, "" if the child died, None at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([stream], [], [], left)
            if ready:
                return stream.readline()

    def _died(self, proc: subprocess.Popen[str]) -> str:
        code = proc.wait()
        self._proc = None
        # The child catches every exception a parser raises, so dying means a fault or a
        # memory error where Python could not even report it (seen as status 1).
        hint = f" (out of memory? the limit is {self.memory_mb} MB, parse_memory_mb)"
        if code < 0:
            return f"the parser crashed with {signal.Signals(-code).name}{hint}"
        return f"the parser exited with status {code}{hint}"

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._proc = None


def _encode(parsed: Parsed) -> dict[str, Any]:
    return {"text": parsed.text, "type": parsed.type, "language": parsed.language,
            "title": parsed.title, "metadata": parsed.metadata,
            "blocks": [[b.start, b.end, b.kind, list(b.headings), b.page]
                       for b in parsed.blocks]}


def _decode(data: dict[str, Any]) -> Parsed:
    # NUL is no text, and PostgreSQL refuses it; a space keeps every offset in place.
    text = str(data["text"]).replace("\x00", " ")
    blocks = []
    for start, end, kind, headings, page in data["blocks"]:
        if not 0 <= int(start) < int(end) <= len(text):
            raise ParseFailed("the parser returned a span outside the text")
        blocks.append(Block(int(start), int(end), kind, tuple(map(str, headings)),
                            None if page is None else int(page)))
    return Parsed(text=text, blocks=blocks, type=str(data["type"]),
                  language=data["language"], title=data["title"],
                  metadata={str(k): str(v) for k, v in data["metadata"].items()})


def _serve(memory_mb: int) -> None:
    """The child's loop: limits first, then one reply per request."""
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # Replies go to the real stdout; anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    from feldspar.ingest.parsers import parse

    for line in sys.stdin:
        path = Path(json.loads(line)["path"])
        reply: dict[str, Any] | None = _handle(path, parse, memory_mb)
        try:
            text = json.dumps(reply)
        except MemoryError:  # a text that parsed within the limit, but not its JSON
            text = ""
        if not text:
            reply = None
            text = json.dumps({"ok": False, "reason": f"parsing needed more than {memory_mb} "
                                                      "MB (parse_memory_mb)"})
        replies.write(text + "\n")
        replies.flush()


def _handle(path: Path, parse: Callable[[Path, bytes], Parsed], memory_mb: int
            ) -> dict[str, Any]:
    """One reply. A failure's reply is built after its `except` block ends, when the
    traceback, and with it what the parser had allocated, is gone."""
    failure: str
    try:
        data = path.read_bytes()
        parsed = parse(path, data)
        return {"ok": True, "parsed": _encode(parsed), "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()}
    except ParseError as exc:
        failure = str(exc)
    except MemoryError:
        failure = f"parsing needed more than {memory_mb} MB (parse_memory_mb)"
    except RecursionError:
        failure = "the document is nested too deeply to parse"
    except OSError as exc:
        failure = f"unreadable: {exc.strerror or exc}"
    except Exception as exc:  # a parser library's own bug must not end the ingest
        failure = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return {"ok": False, "reason": failure}


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
