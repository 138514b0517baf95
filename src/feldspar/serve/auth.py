"""API keys: bearer tokens, compared in constant time.

Keys come from the `api_keys` setting (FELDSPAR_API_KEYS, comma-separated) or the file
named by `api_keys_file` (one key a line). With neither, the server makes one key, keeps
it in FELDSPAR_HOME/api-key (readable by its owner only) and prints where it is: the
server never runs open by default.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from feldspar.config import Settings
from feldspar.errors import ConfigError

KEY_FILE = "api-key"


def load_keys(settings: Settings) -> tuple[list[str], Path | None]:
    """The accepted keys, and the file a generated key was written to (else None)."""
    if settings.api_keys is not None:
        keys = [k.strip() for k in settings.api_keys.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ConfigError("api_keys (FELDSPAR_API_KEYS) holds no key; give at least one")
        return keys, None
    if settings.api_keys_file is not None:
        path = settings.api_keys_file.expanduser()
        try:
            keys = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and not line.startswith("#")]
        except OSError as exc:
            raise ConfigError(f"Cannot read api_keys_file {path}: {exc.strerror}") from None
        if not keys:
            raise ConfigError(f"api_keys_file {path} holds no key; write one a line")
        return keys, None
    path = settings.home / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"fsk-{secrets.token_urlsafe(32)}\n")
    return [path.read_text(encoding="utf-8").strip()], path


def authorized(header: str | None, keys: list[str]) -> bool:
    """Whether an Authorization header carries one of the keys (constant time per key).

    Example:
        >>> authorized("Bearer k1", ["k0", "k1"]), authorized("Bearer k", ["k1"])
        (True, False)
        >>> authorized(None, ["k1"]), authorized("Basic k1", ["k1"])
        (False, False)
    """
    if not header or not header.startswith("Bearer "):
        return False
    given = header.removeprefix("Bearer ").strip().encode()
    found = False
    for key in keys:  # every key compared, so that timing says nothing of which matched
        found |= hmac.compare_digest(given, key.encode())
    return found
