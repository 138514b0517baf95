"""Models a user registered with `feldspar models add`, kept in FELDSPAR_HOME/models.json."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feldspar.errors import ConfigError
from feldspar.models.spec import ModelSpec

FILE = "models.json"


def load_registered(home: Path) -> list[ModelSpec]:
    """The registered models; an unreadable file is an error, never silently empty."""
    path = home / FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [ModelSpec.from_dict(item) for item in data["models"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is damaged ({exc.__class__.__name__}: {exc}); fix it or move it away"
        ) from exc


@contextmanager
def registry_lock(home: Path) -> Iterator[None]:
    """Hold the registry for a read-modify-write, so two `models add` never lose an entry."""
    import fcntl

    home.mkdir(parents=True, exist_ok=True)
    with (home / ".models.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_registered(home: Path, specs: list[ModelSpec]) -> None:
    """Write all registered models atomically: a crash leaves the old file or the new one."""
    home.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"models": [s.to_dict() for s in specs]}, indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".models-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, home / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
