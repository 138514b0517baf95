"""Checks on the zip container of DOCX, PPTX and XLSX files before a library opens them."""

from __future__ import annotations

import io
import zipfile

from feldspar.ingest.parsed import ParseError

# Limits from the zip's central directory. Module constants, so that a deployment (or a test)
# can change them. The libraries read every part in full, so the uncompressed total is what
# a file costs in memory.
MAX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_RATIO = 200
RATIO_MIN_SIZE = 10 * 1024 * 1024
MAX_MEMBERS = 100_000

_MIB = 1024 * 1024


def check_zip(data: bytes, kind: str) -> None:
    """Refuse a zip container that is not one, or that would unpack to far too much.

    Args:
        data: The file's bytes.
        kind: The document type for the message, e.g. "DOCX".

    Raises:
        ParseError: "corrupt <kind>: not a zip file", or "zip bomb: <detail>".
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise ParseError(f"corrupt {kind}: not a zip file") from None
    if len(members) > MAX_MEMBERS:
        raise ParseError(f"zip bomb: {len(members)} members")
    total = sum(member.file_size for member in members)
    if total > MAX_UNCOMPRESSED:
        raise ParseError(f"zip bomb: {total // _MIB} MiB uncompressed")
    for member in members:
        if member.file_size > RATIO_MIN_SIZE and (
            member.file_size > MAX_RATIO * max(member.compress_size, 1)
        ):
            ratio = member.file_size // max(member.compress_size, 1)
            raise ParseError(f"zip bomb: {member.filename[:100]} compressed {ratio}:1")
