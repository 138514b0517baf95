"""Checks on a GGUF file before llama.cpp reads it, for errors a person can act on."""

from __future__ import annotations

import struct
from pathlib import Path

from feldspar.errors import ModelError

MAGIC = b"GGUF"


def check_gguf(path: Path) -> None:
    """Raise `ModelError` unless `path` starts like a GGUF file of a version llama.cpp reads."""
    try:
        with path.open("rb") as handle:
            header = handle.read(24)
    except OSError as exc:
        raise ModelError(f"Cannot read model file {path}: {exc.strerror or exc}") from exc
    if header[:4] != MAGIC:
        raise ModelError(
            f"{path} is not a GGUF file (it does not start with 'GGUF'); "
            "re-download it or check the path"
        )
    if len(header) < 24:
        raise ModelError(f"{path} is truncated (only {len(header)} bytes); re-download it")
    (version,) = struct.unpack("<I", header[4:8])
    if version not in (2, 3):
        raise ModelError(f"{path} is GGUF version {version}, which llama.cpp cannot read")
