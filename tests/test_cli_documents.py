"""`feldspar ingest`, `search`, `collections` and `documents` from the command line, with
the real packaged embedder and the real store in FELDSPAR_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from feldspar.cli import cli
from tests.test_ingest import MIXED, write

pytestmark = pytest.mark.integration


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write(root, MIXED)
    return root


def test_ingest_then_search_then_manage(corpus: Path) -> None:
    code, out, _ = run("ingest", str(corpus), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert len(report["added"]) == 6
    assert report["ignored"] == 1
    assert report["chunks"] >= 6

    code, out, _ = run("search", "how long is parental leave", "-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)
    assert hits[0]["source"] == str(corpus / "notes.txt")
    assert set(hits[0]) >= {"rank", "score", "chunk_id", "source", "span", "text"}
    assert hits[0]["span"]["line_start"] == 1

    code, out, _ = run("search", "retry backoff", "--where", "type=code", "--mode", "lexical")
    assert code == 0
    assert "retry.py:4" in out
    assert "§ Retry" in out

    code, out, _ = run("collections", "list")
    assert "default" in out
    assert "all-minilm-l6-v2" in out
    code, out, _ = run("documents", "list", "--where", "path=*.md")
    assert code == 0
    assert "guide.md" in out
    assert "notes.txt" not in out
    code, out, _ = run("documents", "show", str(corpus / "guide.md"))
    assert code == 0
    assert "§ Guide > Install" in out
    code, out, _ = run("documents", "remove", str(corpus / "guide.md"))
    assert code == 0
    code, out, _ = run("documents", "list", "--json")
    assert str(corpus / "guide.md") not in [d["path"] for d in json.loads(out)]

    code, out, _ = run("ingest", str(corpus))
    assert code == 0
    assert "1 added" in out
    assert "5 unchanged" in out
    code, _, _ = run("collections", "delete", "default", "--yes")
    assert code == 0
    code, out, _ = run("collections", "list", "--json")
    assert json.loads(out) == []


def test_skipped_files_set_exit_status_3_and_are_listed(corpus: Path) -> None:
    write(corpus, {"binary.txt": bytes(range(256))})
    code, out, _ = run("ingest", str(corpus))
    assert code == 3
    assert f"skipped {corpus / 'binary.txt'}: binary content" in out


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "/no/such/folder"], "No such file or folder: /no/such/folder"),
    (["search", "x", "--collection", "nope"], "No collection named 'nope'"),
    (["search", "x", "--where", "colour=red"], "Invalid filter 'colour=red'"),
    (["search", "   "], "The query is empty"),
    (["collections", "show", "nope"], "No collection named 'nope'"),
    (["documents", "remove", "/nope.md"], "No document '/nope.md'"),
])
def test_bad_input_gets_one_line_and_exit_1(args: list[str], message: str,
                                             corpus: Path) -> None:
    run("ingest", str(corpus / "notes.txt"))
    code, _out, err = run(*args)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_another_embedding_model_is_refused_without_touching_the_collection(
        corpus: Path) -> None:
    run("ingest", str(corpus / "notes.txt"))
    code, _, _ = run("models", "add", "my-embedder", "--path", _minilm_folder(), "--role",
                     "embed", "--license", "Apache-2.0")
    assert code == 0
    code, _, err = run("ingest", str(corpus / "guide.md"), "-e", "my-embedder")
    assert code == 1
    assert "was embedded with 'all-minilm-l6-v2'" in err
    code, _, err = run("search", "leave", "-e", "my-embedder")
    assert code == 1
    assert "search it with --embed-model all-minilm-l6-v2" in err
    code, out, _ = run("documents", "list", "--json")
    assert [Path(d["path"]).name for d in json.loads(out)] == ["notes.txt"]


def _minilm_folder() -> str:
    from feldspar.config import load_settings
    from feldspar.models.lookup import find_spec
    from feldspar.models.weights import locate

    return str(locate(find_spec("all-minilm-l6-v2", load_settings())))


def test_the_workspace_never_ingests_itself(tmp_path: Path, corpus: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """FELDSPAR_HOME inside the folder given: its database and caches stay out."""
    monkeypatch.setenv("FELDSPAR_HOME", str(corpus / "home"))
    code, out, _ = run("ingest", str(corpus), "--json")
    assert code == 0, out
    assert not [p for p in json.loads(out)["added"] if "/home/" in p]
    code, out, _ = run("ingest", str(corpus), "--json")
    report = json.loads(out)
    assert report["ignored"] == 1
    assert report["skipped"] == []
