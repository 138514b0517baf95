"""Overload: a bounded number of requests may wait for the models; beyond it, a request is
answered at once with 429 and Retry-After rather than queued without end."""

from __future__ import annotations

import threading

from feldspar.serve.errors import APIError


class Gate:
    """Counts the requests that hold or wait for a model.

    Example:
        >>> gate = Gate(1)
        >>> gate.enter()
        >>> gate.enter()
        Traceback (most recent call last):
        ...
        feldspar.serve.errors.APIError: The server is busy (1 requests in progress); retry in 1 s
        >>> gate.leave(); gate.busy
        0
    """

    def __init__(self, limit: int, retry_after: int = 1) -> None:
        self.limit, self.retry_after = limit, retry_after
        self.busy = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        """Take a place, or raise the 429 when every place is taken."""
        with self._lock:
            if self.busy >= self.limit:
                raise APIError(429, f"The server is busy ({self.busy} requests in progress); "
                               f"retry in {self.retry_after} s", type="rate_limit_error",
                               code="server_busy",
                               headers={"Retry-After": str(self.retry_after)})
            self.busy += 1

    def leave(self) -> None:
        with self._lock:
            self.busy = max(0, self.busy - 1)
