"""A loopback server that serves files the way the Hugging Face Hub does, for pull tests.

It answers HEAD and GET on /{repo}/resolve/{revision}/{file} with the Hub's headers
(X-Repo-Commit; X-Linked-Etag and X-Linked-Size with the sha256 for large "LFS" files; a
git blob sha1 ETag for small ones), honours Range requests, and lists a repo's files on
/api/models/{repo}/revision/{revision}. It can cut a download short or corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_THRESHOLD = 10_000


@dataclass
class Hub:
    repos: dict[str, dict[str, bytes]]
    cut_after: int | None = None
    """Close the connection after this many bytes of the next GET of a large file."""
    corrupt: bool = False
    """Serve large files with one byte changed (their advertised sha256 stays the same)."""
    log: list[dict[str, Any]] = field(default_factory=list)

    def headers(self, data: bytes) -> dict[str, str]:
        if len(data) >= LFS_THRESHOLD:
            sha = hashlib.sha256(data).hexdigest()
            return {"X-Linked-Etag": f'"{sha}"', "ETag": f'"{sha}"',
                    "X-Linked-Size": str(len(data))}
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return {"ETag": f'"{blob}"'}


class Handler(BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _find(self) -> tuple[str, bytes] | None:
        match = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", self.path)
        if not match:
            return None
        repo, _, name = match.groups()
        data = self.hub.repos.get(repo, {}).get(name)
        return None if data is None else (name, data)

    def _send_missing(self) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", "EntryNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self.hub.log.append({"method": "HEAD", "path": self.path})
        found = self._find()
        if found is None:
            self._send_missing()
            return
        _, data = found
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        for key, value in self.hub.headers(data).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def do_GET(self) -> None:
        self.hub.log.append({"method": "GET", "path": self.path,
                             "range": self.headers.get("Range")})
        listing = re.fullmatch(r"/api/models/(.+?/.+?)/revision/([^/]+)", self.path)
        if listing:
            repo = listing.group(1)
            if repo not in self.hub.repos:
                self._send_missing()
                return
            body = json.dumps({"id": repo, "sha": COMMIT, "siblings": [
                {"rfilename": name} for name in self.hub.repos[repo]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        found = self._find()
        if found is None:
            self._send_missing()
            return
        _, data = found
        large = len(data) >= LFS_THRESHOLD
        if large and self.hub.corrupt:
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        start = 0
        if match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or ""):
            start = int(match.group(1))
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if large and self.hub.cut_after is not None:
            cut, self.hub.cut_after = self.hub.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (the tests make some) are not errors worth printing."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@contextmanager
def serve_hub(hub: Hub) -> Iterator[str]:
    """Run the Hub stand-in on a free loopback port and yield its endpoint URL."""
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
