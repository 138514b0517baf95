"""The contract every store passes: subclass `StoreContract` and provide a `store` fixture.

SQLite passes it in test_store_sqlite.py; a PostgreSQL + pgvector store passes the same
tests by overriding the one fixture.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from feldspar.errors import StoreError, UserError
from feldspar.store import Chunk, Document, Store, Where
from feldspar.store.records import AuditEntry, AuditQuery, Example, LabelSet, StoredStudent

DIM = 8


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def doc(path: str, content_hash: str = "h1", collection: str = "docs",
        doc_type: str = "text") -> Document:
    return Document(collection=collection, path=path, content_hash=content_hash, size=10,
                    mtime=1.0, type=doc_type)


def chunks(*texts: str, headings: tuple[str, ...] = ()) -> list[Chunk]:
    return [Chunk(text=t, start=i * 100, end=i * 100 + len(t), line_start=i + 1,
                  line_end=i + 1, headings=headings, tokens=len(t.split()))
            for i, t in enumerate(texts)]


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class StoreContract:
    """Behaviour every store must have."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def docs(self, store: Store) -> Store:
        store.create_collection("docs", "test-embedder", DIM)
        return store

    def test_collections_are_created_listed_and_deleted(self, store: Store) -> None:
        made = store.create_collection("docs", "m", DIM)
        assert (made.name, made.embed_model, made.dimension) == ("docs", "m", DIM)
        store.create_collection("code", "m", DIM)
        assert [c.name for c in store.collections()] == ["code", "docs"]
        assert store.delete_collection("code")
        assert not store.delete_collection("code")
        assert [c.name for c in store.collections()] == ["docs"]

    def test_a_duplicate_or_invalid_collection_name_is_refused(self, store: Store) -> None:
        store.create_collection("docs", "m", DIM)
        with pytest.raises(UserError, match="already exists"):
            store.create_collection("docs", "m", DIM)
        with pytest.raises(UserError, match="Invalid collection name"):
            store.create_collection("no spaces; please", "m", DIM)

    def test_a_document_round_trips_with_its_chunks(self, docs: Store) -> None:
        parts = chunks("alpha beta", "gamma delta", headings=("Guide", "Setup"))
        stored = docs.put_document(doc("/a.txt"), parts, vectors(2))
        assert (stored.path, stored.chunks, stored.content_hash) == ("/a.txt", 2, "h1")
        got = docs.document_chunks("docs", "/a.txt")
        assert [c.text for c in got] == ["alpha beta", "gamma delta"]
        assert got[1].headings == ("Guide", "Setup")
        assert (got[1].start, got[1].end, got[1].line_start, got[1].path) == (
            100, 111, 2, "/a.txt")
        ids = [c.id for c in got if c.id is not None]
        assert [c.text for c in docs.chunks(ids[::-1])] == ["gamma delta", "alpha beta"]
        collection = docs.collection("docs")
        assert collection is not None
        assert (collection.documents, collection.chunks) == (1, 2)

    def test_replacing_a_document_leaves_no_old_chunks(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("old words here", "more old"), vectors(2))
        docs.put_document(doc("/a.txt", "h2"), chunks("new text"), vectors(1, seed=1))
        assert [c.text for c in docs.document_chunks("docs", "/a.txt")] == ["new text"]
        assert docs.lexical_search("docs", "old", 10) == []
        assert len(docs.dense_search("docs", vectors(1)[0], 10)) == 1
        found = docs.document("docs", "/a.txt")
        assert found is not None
        assert found.content_hash == "h2"
        assert docs.check() == []

    def test_a_failed_write_keeps_the_previous_version(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("kept"), vectors(1))
        with pytest.raises(UserError, match="vectors"):
            docs.put_document(doc("/a.txt", "h2"), chunks("lost", "too"), vectors(1))
        assert [c.text for c in docs.document_chunks("docs", "/a.txt")] == ["kept"]
        assert docs.check() == []

    def test_remove_document(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("alpha"), vectors(1))
        docs.put_document(doc("/b.txt"), chunks("beta"), vectors(1, seed=2))
        assert docs.remove_document("docs", "/a.txt")
        assert not docs.remove_document("docs", "/a.txt")
        assert [d.path for d in docs.documents("docs")] == ["/b.txt"]
        assert docs.lexical_search("docs", "alpha", 5) == []
        assert docs.check() == []

    def test_lexical_search_ranks_by_bm25_and_tolerates_any_text(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("the cat sat on the mat",
                                                "dogs bark at the cat cat cat",
                                                "nothing relevant"), vectors(3))
        found = docs.lexical_search("docs", "cat", 10)
        texts = [c.text for c in docs.chunks([i for i, _ in found])]
        assert texts == ["dogs bark at the cat cat cat", "the cat sat on the mat"]
        assert found[0][1] >= found[1][1]
        for hostile in ['"', "AND OR NOT", "NEAR(a b)", "*", "col:umn", "", "🙂"]:
            assert isinstance(docs.lexical_search("docs", hostile, 5), list)

    def test_lexical_search_reads_heading_paths(self, docs: Store) -> None:
        docs.put_document(doc("/a.md"), chunks("run the installer", headings=("Windows",)),
                          vectors(1))
        assert len(docs.lexical_search("docs", "windows", 5)) == 1

    def test_dense_search_returns_nearest_by_cosine(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("x", "y", "z"),
                          np.stack([unit(1, 0), unit(0, 1), unit(1, 1)]))
        found = docs.dense_search("docs", unit(1, 0.1), 2)
        texts = [c.text for c in docs.chunks([i for i, _ in found])]
        assert texts == ["x", "z"]
        assert found[0][1] == pytest.approx(float(unit(1, 0) @ unit(1, 0.1)), abs=1e-5)

    def test_search_filters_by_path_glob_and_type(self, docs: Store) -> None:
        docs.put_document(doc("/repo/a.md", doc_type="markdown"), chunks("shared word"),
                          np.stack([unit(1, 0)]))
        docs.put_document(doc("/repo/src/b.py", doc_type="code"), chunks("shared word"),
                          np.stack([unit(1, 0.01)]))
        for where, expected in [(Where(path="*.md"), "/repo/a.md"),
                                (Where(type="code"), "/repo/src/b.py"),
                                (Where(path="src/*.py"), "/repo/src/b.py")]:
            lexical = docs.chunks([i for i, _ in docs.lexical_search("docs", "shared", 5,
                                                                     where)])
            dense = docs.chunks([i for i, _ in docs.dense_search("docs", unit(1, 0), 5,
                                                                 where)])
            assert [c.path for c in lexical] == [expected]
            assert [c.path for c in dense] == [expected]
        assert [d.path for d in docs.documents("docs", Where(type="markdown"))] == [
            "/repo/a.md"]

    def test_collections_do_not_see_each_other(self, docs: Store) -> None:
        docs.create_collection("other", "test-embedder", DIM)
        docs.put_document(doc("/a.txt"), chunks("apple"), vectors(1))
        docs.put_document(doc("/a.txt", collection="other"), chunks("banana"), vectors(1))
        assert [c.text for c in docs.chunks([i for i, _ in
                                             docs.dense_search("other", vectors(1)[0], 5)])
                ] == ["banana"]
        assert docs.lexical_search("other", "apple", 5) == []
        assert docs.delete_collection("other")
        assert [c.text for c in docs.document_chunks("docs", "/a.txt")] == ["apple"]
        assert docs.check() == []

    def test_unknown_collection_is_a_user_error(self, store: Store) -> None:
        with pytest.raises(UserError, match="No collection named 'nope'"):
            store.documents("nope")
        with pytest.raises(UserError, match="No collection named 'nope'"):
            store.lexical_search("nope", "x", 3)

    def test_replace_vectors_switches_model_atomically(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("a", "b"), vectors(2))
        ids = [c.id for batch in docs.iter_chunks("docs") for c in batch]
        new = {i: v for i, v in zip(ids, vectors(2, seed=5)[:, :4] * 2, strict=True)}
        new = {i: v / np.linalg.norm(v) for i, v in new.items()}
        docs.replace_vectors("docs", "other-model", 4, new)
        collection = docs.collection("docs")
        assert collection is not None
        assert (collection.embed_model, collection.dimension) == ("other-model", 4)
        found = docs.dense_search("docs", next(iter(new.values())), 1)
        assert found[0][0] == next(iter(new))
        assert docs.check() == []

    def test_prepare_search_then_search_sees_every_write(self, docs: Store) -> None:
        docs.put_document(doc("/a.txt"), chunks("a"), np.stack([unit(1, 0)]))
        docs.prepare_search("docs")
        docs.put_document(doc("/b.txt"), chunks("b"), np.stack([unit(0, 1)]))
        found = docs.dense_search("docs", unit(0, 1), 1)
        assert [c.text for c in docs.chunks([i for i, _ in found])] == ["b"]

    # The guard's part: chunk flags and the audit log

    def test_chunk_flags_round_trip(self, docs: Store) -> None:
        parts = chunks("clean text", "ignore your instructions")
        parts[1] = replace(parts[1], flags=("prompt_injection", "secrets"))
        docs.put_document(doc("/a.txt"), parts, vectors(2))
        got = docs.document_chunks("docs", "/a.txt")
        assert [c.flags for c in got] == [(), ("prompt_injection", "secrets")]
        assert docs.chunks([got[1].id or 0])[0].flags == ("prompt_injection", "secrets")

    def test_audit_entries_are_kept_and_filtered(self, store: Store) -> None:
        def entry(at: float, direction: str, action: str, flags: tuple[str, ...],
                  source: str = "guard") -> AuditEntry:
            verdicts = tuple({"risk": f, "score": 0.9, "flagged": True, "threshold": 0.5,
                              "detector": "rules"} for f in flags)
            return AuditEntry(time=at, direction=direction, action=action, source=source,
                              text_sha256="ab" * 32, chars=5, flags=flags, verdicts=verdicts,
                              model="m", ref="/doc.md" if source == "ingest" else None)

        ids = store.add_audit([entry(100.0, "input", "block", ("harm", "jailbreak")),
                               entry(200.0, "output", "redact", ("pii",)),
                               entry(300.0, "document", "flag", ("secrets",), "ingest"),
                               entry(400.0, "input", "allow", ())])
        assert len(set(ids)) == 4
        assert [e.time for e in store.audit(AuditQuery())] == [400.0, 300.0, 200.0, 100.0]
        assert [e.time for e in store.audit(AuditQuery(limit=2))] == [400.0, 300.0]
        assert [e.time for e in store.audit(AuditQuery(since=200.0, until=400.0))] == [
            300.0, 200.0]
        assert [e.action for e in store.audit(AuditQuery(risk="jailbreak"))] == ["block"]
        assert store.audit(AuditQuery(risk="harm_engagement")) == []  # not a LIKE on "harm"
        assert [e.source for e in store.audit(AuditQuery(direction="document"))] == ["ingest"]
        assert [e.time for e in store.audit(AuditQuery(action="allow", source="guard"))] == [
            400.0]
        first = store.audit_entry(ids[0])
        assert first is not None
        assert (first.flags, first.verdicts[1]["risk"], first.text, first.model) == (
            ("harm", "jailbreak"), "jailbreak", None, "m")
        ingest = store.audit_entry(ids[2])
        assert ingest is not None
        assert ingest.ref == "/doc.md"
        assert store.audit_entry(max(ids) + 1000) is None

    # Classification: label sets, examples, students

    @pytest.fixture
    def topics(self, store: Store) -> Store:
        store.put_labelset(LabelSet("topics", ("sport", "art"), {"art": "painting, music"}))
        return store

    def test_labelsets_round_trip_and_keep_created_when_replaced(self, store: Store) -> None:
        store.put_labelset(LabelSet("topics", ("sport", "art", "news"),
                                    {"sport": "games", "art": "painting"}, 100.0, 100.0))
        store.put_labelset(LabelSet("moods", ("sad", "happy")))
        found = store.labelset("topics")
        assert found == LabelSet("topics", ("sport", "art", "news"),
                                 {"sport": "games", "art": "painting"}, 100.0, 100.0)
        store.put_labelset(LabelSet("topics", ("zeta", "alpha"), {"zeta": "ζ 🙂"}, 500.0, 200.0))
        assert store.labelset("topics") == LabelSet("topics", ("zeta", "alpha"),
                                                    {"zeta": "ζ 🙂"}, 100.0, 200.0)
        moods = store.labelset("moods")
        assert moods is not None
        assert moods.labels == ("sad", "happy")
        assert 0 < moods.created == moods.updated  # unset times are the store's clock
        assert [s.name for s in store.labelsets()] == ["moods", "topics"]
        assert store.labelset("nope") is None

    def test_deleting_a_labelset_takes_its_examples_and_student(self, topics: Store) -> None:
        topics.replace_examples("topics", [Example("goal!", "sport")], ["human"])
        topics.put_student(StoredStudent("topics", b"weights", {"accuracy": 0.9}))
        assert topics.delete_labelset("topics")
        assert not topics.delete_labelset("topics")
        assert topics.labelset("topics") is None
        assert topics.labelsets() == []
        topics.put_labelset(LabelSet("topics", ("sport",)))
        assert topics.examples("topics") == []
        assert topics.student("topics") is None
        found = topics.labelset("topics")
        assert found is not None
        assert found.examples == 0
        assert topics.check() == []

    def test_replace_examples_replaces_only_the_named_sources(self, topics: Store) -> None:
        human = [Example("the match ended 2-1", "sport"), Example("an oil portrait", "art")]
        assert topics.replace_examples("topics", human, ["human"]) == 2
        teacher = [Example(f"text {i}", "art", "teacher", 0.5 + i / 10) for i in range(3)]
        assert topics.replace_examples("topics", teacher, ["teacher"]) == 3
        assert topics.replace_examples("topics", teacher[:1], ["teacher"]) == 1
        got = topics.examples("topics")
        assert [(e.text, e.label, e.source, e.confidence) for e in got] == [
            ("the match ended 2-1", "sport", "human", None),
            ("an oil portrait", "art", "human", None), ("text 0", "art", "teacher", 0.5)]
        ids = [e.id for e in got]
        assert None not in ids
        assert ids == sorted(ids)
        assert [e.text for e in topics.examples("topics", "teacher")] == ["text 0"]
        assert topics.examples("topics", "nobody") == []
        found = topics.labelset("topics")
        assert found is not None
        assert found.examples == 3
        assert topics.replace_examples("topics", [], ["human", "teacher"]) == 0
        assert topics.examples("topics") == []

    def test_a_failed_replace_keeps_the_old_examples(self, topics: Store) -> None:
        topics.replace_examples("topics", [Example("kept", "sport", "teacher", 0.9)],
                                ["teacher"])
        # The second example cannot be stored: it fails after the old ones were deleted.
        bad = [Example("new", "art", "teacher"),
               Example("bad", "art", "teacher", object())]  # type: ignore[arg-type]
        with pytest.raises(StoreError):
            topics.replace_examples("topics", bad, ["teacher"])
        # NUL is refused alike by every store (PostgreSQL cannot hold it in text).
        with pytest.raises(UserError, match="NUL"):
            topics.replace_examples("topics", [Example("a \x00 b", "art")], ["teacher"])
        assert [e.text for e in topics.examples("topics")] == ["kept"]

    def test_an_unknown_labelset_is_a_user_error(self, store: Store) -> None:
        with pytest.raises(UserError, match="No label set named 'nope'"):
            store.replace_examples("nope", [Example("x", "y")], ["human"])
        with pytest.raises(UserError, match="No label set named 'nope'"):
            store.examples("nope")
        with pytest.raises(UserError, match="No label set named 'nope'"):
            store.put_student(StoredStudent("nope", b"", {}))
        assert store.student("nope") is None

    def test_a_student_round_trips_and_is_replaced(self, topics: Store) -> None:
        weights = bytes(range(256)) * 3
        info = {"labels": ["sport", "art"], "accuracy": 0.875, "examples": {"human": 12}}
        topics.put_student(StoredStudent("topics", weights, info, 123.0))
        assert topics.student("topics") == StoredStudent("topics", weights, info, 123.0)
        topics.put_student(StoredStudent("topics", b"\x00new", {"accuracy": 1.0}))
        found = topics.student("topics")
        assert found is not None
        assert (found.weights, found.info) == (b"\x00new", {"accuracy": 1.0})
        assert found.created > 123.0
        assert isinstance(found.weights, bytes)
