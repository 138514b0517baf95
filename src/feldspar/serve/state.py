"""What every route of one server shares: settings, the workspace, limits and metrics."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from feldspar.serve.limits import Gate
from feldspar.serve.metrics import Metrics

if TYPE_CHECKING:
    from feldspar.config import Settings
    from feldspar.guard.screen import Guard
    from feldspar.workspace import Workspace


@dataclass
class ServerState:
    settings: Settings
    workspace: Workspace
    gate: Gate
    metrics: Metrics = field(default_factory=Metrics)
    ready: threading.Event = field(default_factory=threading.Event)
    load_error: str | None = None
    """Why the default chat model could not be loaded at start-up (None: it was)."""

    def __post_init__(self) -> None:
        self.workspace.guard.listeners.append(self.metrics.decision)

    @property
    def guard(self) -> Guard | None:
        """The workspace's guard, when the guard setting is on."""
        return self.workspace.guard if self.settings.guard else None

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold a place among the requests that use a model (or answer 429)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def enter(self) -> None:
        self.gate.enter()
        self.metrics.in_progress.inc()

    def leave(self) -> None:
        self.gate.leave()
        self.metrics.in_progress.dec()
