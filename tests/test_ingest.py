"""Ingest: incremental, atomic per file, and a bad file is a skip, never a failed run.

Most tests embed with HashEmbedder: what they check (hashing, replacing, pruning, limits,
crash safety) surrounds the model. test_real_embedder_finds_the_right_passage and the
CLI tests use the real packaged embedder.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from feldspar.config import Settings
from feldspar.errors import EmbeddingMismatch, UserError
from feldspar.ingest import ChunkOptions, IngestOptions, ingest, reembed
from feldspar.ingest.worker import ParseFailed, ParserProcess
from feldspar.models.testing import HashEmbedder
from feldspar.store import SqliteStore, Where


class CountingEmbedder(HashEmbedder):
    """Counts the texts it embeds, to prove that unchanged files are not embedded again."""

    def __init__(self, name: str = "hash") -> None:
        super().__init__()
        self.embedded = 0
        if name != "hash":
            from dataclasses import replace

            self.spec = replace(self.spec, name=name)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed_batch(texts)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


MIXED = {
    "guide.md": "# Guide\n\n## Install\n\nRun the installer and reboot.\n\n## Use\n\n"
                "Open the app and sign in with your badge.\n",
    "notes.txt": "Parental leave is sixteen weeks at full pay.\n",
    "src/retry.py": "import time\n\n\nclass Retry:\n    def backoff(self, n):\n"
                    "        return 2 ** n\n\n\ndef sleep_for(seconds):\n"
                    "    time.sleep(seconds)\n",
    "page.html": "<html><head><title>Holidays</title><script>var x = 'secret';</script>"
                 "</head><body><h1>Holidays</h1><p>The office closes on May 1.</p></body>"
                 "</html>",
    "data/prices.csv": "item,price\nwidget,3\ngadget,5\n",
    "config.json": '{"name": "feldspar", "retries": 3}',
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store" / "feldspar.db")
    yield s
    s.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write(root, MIXED)
    return root


def test_a_mixed_folder_goes_in_and_is_searchable(store: SqliteStore, corpus: Path) -> None:
    report = ingest(store, HashEmbedder(), [corpus], "docs")
    assert sorted(Path(p).name for p in report.added) == [
        "config.json", "guide.md", "notes.txt", "page.html", "prices.csv", "retry.py"]
    assert report.ignored == 1  # the PNG
    assert report.skipped == []
    types = {Path(d.path).name: d.type for d in store.documents("docs")}
    assert types == {"config.json": "json", "guide.md": "markdown", "notes.txt": "text",
                     "page.html": "html", "prices.csv": "csv", "retry.py": "code"}
    hits = store.lexical_search("docs", "badge", 3)
    found = store.chunks([i for i, _ in hits])
    assert found[0].path == str(corpus / "guide.md")
    assert found[0].headings == ("Guide", "Use")
    assert "sign in with your badge" in found[0].text
    assert store.lexical_search("docs", "secret", 3) == []  # script text is not content
    assert store.check() == []


def test_rerunning_skips_unchanged_files_without_embedding(store: SqliteStore,
                                                           corpus: Path) -> None:
    embedder = CountingEmbedder()
    first = ingest(store, embedder, [corpus], "docs")
    embedded = embedder.embedded
    again = ingest(store, embedder, [corpus], "docs")
    assert len(again.unchanged) == len(first.added)
    assert again.added == again.updated == []
    assert again.chunks == 0
    assert embedder.embedded == embedded


def test_a_changed_file_is_replaced_whole(store: SqliteStore, corpus: Path) -> None:
    ingest(store, HashEmbedder(), [corpus], "docs")
    (corpus / "notes.txt").write_text("Parental leave is now twenty weeks.\n")
    report = ingest(store, HashEmbedder(), [corpus], "docs")
    assert report.updated == [str(corpus / "notes.txt")]
    chunks = store.document_chunks("docs", str(corpus / "notes.txt"))
    assert [c.text for c in chunks] == ["Parental leave is now twenty weeks."]
    assert store.lexical_search("docs", "sixteen", 5) == []
    assert store.check() == []


def test_prune_removes_documents_whose_files_are_gone(store: SqliteStore,
                                                      corpus: Path) -> None:
    ingest(store, HashEmbedder(), [corpus], "docs")
    (corpus / "notes.txt").unlink()
    kept = ingest(store, HashEmbedder(), [corpus], "docs")
    assert kept.removed == []
    assert store.document("docs", str(corpus / "notes.txt"))
    pruned = ingest(store, HashEmbedder(), [corpus], "docs", IngestOptions(prune=True))
    assert pruned.removed == [str(corpus / "notes.txt")]
    assert store.document("docs", str(corpus / "notes.txt")) is None
    # Pruning one folder leaves documents from other folders alone.
    other = corpus.parent / "other"
    write(other, {"a.txt": "another folder"})
    ingest(store, HashEmbedder(), [other], "docs")
    ingest(store, HashEmbedder(), [corpus / "src"], "docs", IngestOptions(prune=True))
    assert store.document("docs", str(other / "a.txt")) is not None
    assert store.document("docs", str(corpus / "guide.md")) is not None


def test_feldsparignore_is_honoured_like_gitignore(store: SqliteStore, corpus: Path) -> None:
    write(corpus, {".feldsparignore": "*.csv\nsrc/\n!keep.csv\n",
                   "keep.csv": "a,b\n1,2\n",
                   "sub/.feldsparignore": "secret.txt\n",
                   "sub/secret.txt": "hidden", "sub/open.txt": "visible",
                   "node_modules/lib.js": "function x() {}",
                   ".git/config": "[core]"})
    report = ingest(store, HashEmbedder(), [corpus], "docs")
    names = sorted(Path(p).relative_to(corpus).as_posix() for p in report.added)
    assert names == ["config.json", "guide.md", "keep.csv", "notes.txt", "page.html",
                     "sub/open.txt"]


def test_bad_files_are_skipped_with_reasons_and_the_rest_goes_in(
        store: SqliteStore, corpus: Path) -> None:
    write(corpus, {
        "binary.txt": bytes(range(256)) * 4,
        "broken.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage",
        "broken.docx": b"PK\x03\x04 not really a zip",
        "big.md": "word " * 5000,
        "empty.txt": "",
        "latin1.txt": "Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"),
    })
    os.mkfifo(corpus / "pipe.txt")
    os.symlink(corpus / "loop-b", corpus / "loop-a.txt")
    os.symlink(corpus / "loop-a.txt", corpus / "loop-b")
    outside = corpus.parent / "outside.txt"
    outside.write_text("outside the root")
    os.symlink(outside, corpus / "escape.txt")
    os.symlink(corpus / "src", corpus / "linked-src")
    options = IngestOptions(max_file_bytes=20_000)
    report = ingest(store, HashEmbedder(), [corpus], "docs", options)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert reasons["binary.txt"] == "binary content"
    assert "PDF" in reasons["broken.pdf"]
    assert "DOCX" in reasons["broken.docx"]
    assert reasons["big.md"].startswith("larger than")
    assert "empty.txt" not in reasons  # an empty document, not an error
    assert store.document("docs", str(corpus / "empty.txt")).chunks == 0  # type: ignore[union-attr]
    assert reasons["pipe.txt"] == "not a regular file"
    assert reasons["loop-a.txt"] == "symlink loop"
    assert reasons["escape.txt"].startswith("symlink points outside")
    assert reasons["linked-src"] == "symlinked folder not followed"
    assert len(report.added) == 8  # the six good files, latin1.txt and empty.txt
    latin = store.document_chunks("docs", str(corpus / "latin1.txt"))
    assert latin[0].text == "Café crème brûlée"
    assert store.check() == []


def test_a_file_that_breaks_later_keeps_its_last_good_version(store: SqliteStore,
                                                              corpus: Path) -> None:
    ingest(store, HashEmbedder(), [corpus], "docs")
    (corpus / "notes.txt").write_bytes(b"\x00\x01\x02" * 100)
    report = ingest(store, HashEmbedder(), [corpus], "docs", IngestOptions(prune=True))
    assert [s.reason for s in report.skipped] == ["binary content"]
    assert report.removed == []
    chunks = store.document_chunks("docs", str(corpus / "notes.txt"))
    assert "sixteen weeks" in chunks[0].text


def test_a_parser_that_overruns_its_time_is_stopped_and_the_next_file_parses(
        tmp_path: Path) -> None:
    write(tmp_path, {"a.md": "# A\n\ntext", "b.txt": "plain"})
    with ParserProcess(timeout=0.001) as slow, pytest.raises(ParseFailed, match="longer than"):
        slow.parse(tmp_path / "a.md")
    with ParserProcess() as parser:
        parsed, digest, size = parser.parse(tmp_path / "b.txt")
        assert (parsed.text, size, len(digest)) == ("plain", 5, 64)


def test_a_parser_over_its_memory_limit_is_a_skip(tmp_path: Path) -> None:
    # A 23 MB Markdown list of 400,000 items: markdown-it's tokens for it need far more
    # than the 300 MB the parser is given here.
    (tmp_path / "small.txt").write_text("small")
    big = tmp_path / "big.md"
    big.write_text(("- item " + "x" * 50 + "\n") * 400_000)
    with ParserProcess(memory_mb=300) as parser:
        # Python raises MemoryError where it can; an allocation inside a C library may
        # crash the child instead. Either way the file is skipped, with the limit named.
        with pytest.raises(ParseFailed, match=r"more than 300 MB|the limit is 300 MB"):
            parser.parse(big)
        parsed, _, _ = parser.parse(tmp_path / "small.txt")  # the next file still parses
        assert parsed.text == "small"


def test_a_collection_keeps_its_embedding_model(store: SqliteStore, corpus: Path) -> None:
    ingest(store, HashEmbedder(), [corpus], "docs")
    other = CountingEmbedder("other-hash")
    with pytest.raises(EmbeddingMismatch, match="embedded with 'hash'"):
        ingest(store, other, [corpus], "docs")
    count = reembed(store, other, "docs")
    collection = store.collection("docs")
    assert collection is not None
    assert (collection.embed_model, collection.chunks) == ("other-hash", count)
    assert other.embedded == count
    assert ingest(store, other, [corpus], "docs").added == []


def test_a_missing_path_is_one_user_error(store: SqliteStore, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="No such file or folder"):
        ingest(store, HashEmbedder(), [tmp_path / "nope"], "docs")


def test_chunks_fit_the_budget_and_filters_work(store: SqliteStore, corpus: Path) -> None:
    write(corpus, {"long.md": "# Long\n\n" + " ".join(f"Sentence {i} is here." for i in
                                                      range(300))})
    options = IngestOptions(chunking=ChunkOptions(max_tokens=64, overlap=8))
    ingest(store, HashEmbedder(), [corpus], "docs", options)
    chunks = store.document_chunks("docs", str(corpus / "long.md"))
    assert len(chunks) > 10
    assert all(c.tokens <= 64 for c in chunks)
    code = store.documents("docs", Where(type="code"))
    assert [Path(d.path).name for d in code] == ["retry.py"]


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from feldspar.ingest import ingest
from feldspar.models.testing import HashEmbedder
from feldspar.store import SqliteStore

class Slow(HashEmbedder):
    def embed_batch(self, texts):
        time.sleep(0.05)
        return super().embed_batch(texts)

store = SqliteStore(Path(sys.argv[1]))
report = ingest(store, Slow(), [Path(sys.argv[2])], "docs")
print(len(report.added), len(report.unchanged))
"""


@pytest.mark.integration
def test_kill_9_mid_ingest_leaves_a_consistent_store_and_a_rerun_finishes(
        tmp_path: Path) -> None:
    corpus = tmp_path / "many"
    write(corpus, {f"doc{i:03}.md": f"# Doc {i}\n\n" + f"Paragraph about topic {i}. " * 400
                   for i in range(120)})
    db = tmp_path / "kill" / "feldspar.db"
    script = tmp_path / "ingest.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(corpus)])
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            except sqlite3.OperationalError:  # the file is there, its schema not yet
                continue
            if done >= 10:
                break
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.kill()
    proc.wait()
    store = SqliteStore(db)
    assert store.check() == []
    partial = store.documents("docs")
    assert 10 <= len(partial) < 120
    for document in partial:  # every file fully in
        assert len(store.document_chunks("docs", document.path)) == document.chunks > 0
    store.close()
    rerun = subprocess.run([sys.executable, str(script), str(db), str(corpus)],
                           capture_output=True, text=True, timeout=300, check=True)
    added, unchanged = map(int, rerun.stdout.split())
    assert unchanged == len(partial)
    assert added == 120 - len(partial)
    store = SqliteStore(db)
    assert store.check() == []
    assert len(store.documents("docs")) == 120
    store.close()


@pytest.mark.integration
def test_real_embedder_finds_the_right_passage(store: SqliteStore, corpus: Path,
                                               settings: Settings) -> None:
    from feldspar.models import get_embedder
    from feldspar.retrieve import search

    embedder = get_embedder(settings=settings)
    ingest(store, embedder, [corpus], "docs")
    for query, name in [("How long is maternity leave?", "notes.txt"),
                        ("how is the exponential backoff computed", "retry.py"),
                        ("When is the office closed?", "page.html")]:
        for mode in ("hybrid", "dense"):
            hits = search(store, embedder, "docs", query, k=3, mode=mode)  # type: ignore[arg-type]
            assert hits[0].chunk.path is not None
            assert Path(hits[0].chunk.path).name == name, (query, mode, hits[0].chunk.text)


LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                    for i in range(1, 10))
          + "]>")


def _bomb_docx(path: Path) -> None:
    """A real DOCX whose document.xml declares the "billion laughs" entities."""
    import io
    import zipfile

    from docx import Document

    buffer = io.BytesIO()
    document = Document()
    document.add_paragraph("PLACEHOLDER")
    document.save(buffer)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                text = data.decode()
                head, _, body = text.partition("?>")
                text = head + "?>" + LAUGHS + body.replace("PLACEHOLDER", "&lol9;")
                data = text.encode()
            out.writestr(item, data)


def test_xml_bombs_do_not_expand(store: SqliteStore, tmp_path: Path) -> None:
    root = tmp_path / "bombs"
    root.mkdir()
    _bomb_docx(root / "laughs.docx")
    (root / "laughs.html").write_text(f"{LAUGHS}<html><body><p>&lol9;</p><p>kept</p>"
                                      "</body></html>")
    (root / "good.txt").write_text("a good file")
    began = time.monotonic()
    report = ingest(store, HashEmbedder(), [root], "docs",
                    IngestOptions(parse_timeout=60, parse_memory_mb=1024))
    assert time.monotonic() - began < 60
    assert str(root / "good.txt") in report.added
    for path in report.added:  # whatever went in holds no expanded entities
        for chunk in store.document_chunks("docs", path):
            assert "lollollol" not in chunk.text
    assert store.check() == []
