"""Finding the files to ingest: folders walked recursively, `.feldsparignore` honoured,
symlinks followed only where they stay inside the folder given."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feldspar.errors import UserError

IGNORE_FILE = ".feldsparignore"

# Folders no one wants indexed: version control, dependencies, caches, environments.
SKIPPED_FOLDERS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".idea", ".vscode", ".eggs",
})


@dataclass(frozen=True)
class Found:
    """A file to ingest."""

    path: Path
    """Absolute, symlinks resolved: the document's identity in the store."""
    root: Path
    """The folder (or file) given on the command line that led to it."""


@dataclass(frozen=True)
class Skipped:
    """A file or folder left out, and why."""

    path: str
    reason: str


def find_files(paths: Sequence[Path], exclude: Sequence[Path] = ()
               ) -> Iterator[Found | Skipped]:
    """Every file under `paths`, in a stable order, and what was left out; folders in
    `exclude` (the workspace's own, FELDSPAR_HOME) are not entered.

    Raises:
        UserError: a path given does not exist.
    """
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise UserError(f"No such file or folder: {', '.join(missing)}")
    seen: set[Path] = set()
    for given in paths:
        root = given.resolve()
        if root.is_file():
            if root not in seen:
                seen.add(root)
                yield Found(root, root)
            continue
        for item in _walk(root, {p.resolve() for p in exclude}):
            if isinstance(item, Found):
                if item.path in seen:
                    continue
                seen.add(item.path)
            yield item


def _walk(root: Path, exclude: set[Path]) -> Iterator[Found | Skipped]:
    rules: list[tuple[Path, Any]] = []
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append):
        here = Path(folder)
        while errors:
            error = errors.pop()
            yield Skipped(str(error.filename), f"unreadable folder: {error.strerror}")
        rules = [(base, spec) for base, spec in rules if here.is_relative_to(base)]
        spec = _ignore_spec(here / IGNORE_FILE)
        if isinstance(spec, Skipped):
            yield spec
        elif spec is not None:
            rules.append((here, spec))
        kept = []
        for name in sorted(dirs):
            path = here / name
            if (name in SKIPPED_FOLDERS or path in exclude
                    or _ignored(path, rules, folder=True)):
                continue
            if path.is_symlink():
                yield Skipped(str(path), "symlinked folder not followed")
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            if name == IGNORE_FILE or _ignored(path, rules, folder=False):
                continue
            yield _check(path, root)


def _check(path: Path, root: Path) -> Found | Skipped:
    """A file inside the walk, with its symlinks resolved and kept inside `root`."""
    if not path.is_symlink():
        # A FIFO or device would block or never end: only regular files are read.
        return Found(path, root) if path.is_file() else Skipped(str(path),
                                                                "not a regular file")
    try:
        target = path.resolve(strict=True)
    except RuntimeError:
        return Skipped(str(path), "symlink loop")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return Skipped(str(path), "symlink loop")
        return Skipped(str(path), "broken symlink")
    if not target.is_relative_to(root):
        return Skipped(str(path), f"symlink points outside {root}")
    if not target.is_file():
        return Skipped(str(path), "symlink to something that is not a file")
    return Found(target, root)


def _ignore_spec(path: Path) -> Any:
    if not path.is_file():
        return None
    from pathspec import GitIgnoreSpec

    try:
        return GitIgnoreSpec.from_lines(path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return Skipped(str(path), f"ignore file not read ({exc}); its patterns were not "
                                  "applied")


def _ignored(path: Path, rules: list[tuple[Path, Any]], *, folder: bool) -> bool:
    """Whether gitignore-style rules from this folder or its parents exclude `path`; the
    nearest file's rules win, as in git."""
    verdict = False
    for base, spec in rules:
        rel = path.relative_to(base).as_posix() + ("/" if folder else "")
        result = spec.check_file(rel)
        if result.include is not None:
            verdict = bool(result.include)
    return verdict
