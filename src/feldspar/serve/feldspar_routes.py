"""Feldspar's own endpoints under /api: collections and uploads, search, ask (streamable),
classify, guard and the audit log. Each is a thin shell over the Python API the CLI uses."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from feldspar.serve import guarding
from feldspar.serve.errors import APIError
from feldspar.serve.schemas import AskRequest, ClassifyRequest, GuardRequest, SearchRequest
from feldspar.serve.streaming import cancelled, event_stream, events, sse, until_cancelled

if TYPE_CHECKING:
    from feldspar.datatypes import Message
    from feldspar.serve.state import ServerState

UPLOADS = "uploads"
"""Uploaded files are kept in FELDSPAR_HOME/uploads/COLLECTION/, so that a document's
stored path stays valid and a second upload of the same name updates it."""
NAME = re.compile(r"[\w.-]{1,64}")
CHUNK = 1 << 20


def install(app: FastAPI, state: ServerState) -> None:
    _install_documents(app, state)
    _install_answers(app, state)
    _install_guard(app, state)


def _install_documents(app: FastAPI, state: ServerState) -> None:
    ws = state.workspace

    @app.get("/api/collections", tags=["feldspar"])
    def list_collections() -> dict[str, Any]:
        """Every collection with its embedding model and size."""
        return {"data": [asdict(c) for c in ws.collections()]}

    @app.get("/api/collections/{name}/documents", tags=["feldspar"])
    def list_documents(name: str) -> dict[str, Any]:
        """A collection's documents."""
        return {"data": [asdict(d) for d in ws.documents(ws.collection(name).name)]}

    @app.post("/api/collections/{name}/documents", tags=["feldspar"])
    async def upload(name: str, files: list[UploadFile]) -> dict[str, Any]:
        """Upload documents (multipart, field `files`) into a collection (made if new);
        they are parsed, chunked, screened and embedded like `feldspar ingest`. Each file
        may be up to `max_file_mb`, the whole upload `serve_max_upload_mb`."""
        collection = _name(name)
        if any(not isinstance(f, StarletteUpload) or not f.filename for f in files):
            raise APIError(400, "Each part named 'files' must be a file with a name",
                           param="files")
        names = [_filename(f.filename) for f in files]
        if len(set(names)) < len(names):
            raise APIError(400, "Two files of this upload have the same name", param="files")
        folder = state.settings.home / UPLOADS / collection
        with state.busy():
            staged = []
            try:
                for file, filename in zip(files, names, strict=True):
                    staged.append((await _save(state, file, folder), folder / filename))
                return await run_in_threadpool(_ingest_uploads, state, staged, collection)
            finally:
                for temp, _ in staged:
                    temp.unlink(missing_ok=True)

    @app.post("/api/search", tags=["feldspar"])
    async def search(body: SearchRequest) -> dict[str, Any]:
        """The best chunks for a query (hybrid, dense or lexical)."""
        from feldspar.cli.ingest import hit_dict

        with state.busy():
            hits = await run_in_threadpool(ws.search, body.query, k=body.k,
                                           collection=body.collection, mode=body.mode)
        return {"data": [hit_dict(h) for h in hits]}


def _install_answers(app: FastAPI, state: ServerState) -> None:
    ws = state.workspace

    @app.post("/api/ask", response_model=None, tags=["feldspar"])
    async def ask(body: AskRequest, request: Request) -> Response | dict[str, Any]:
        """An answer from a collection's documents: its text with checked citations,
        support per sentence, the sources, and the guard's decisions. With `stream`,
        server-sent events: `{"type": "delta", "text"}` as the model writes, then
        `{"type": "answer", "answer"}`, then `[DONE]`."""
        if not body.stream:
            with state.busy():
                answer = await run_in_threadpool(lambda: _ask(state, body).result())
            return answer.to_dict()  # type: ignore[no-any-return]
        state.enter()
        return await event_stream(lambda: _ask_events(state, body), request,
                                  on_end=state.leave)

    @app.get("/api/labelsets", tags=["feldspar"])
    def list_labelsets() -> dict[str, Any]:
        """The label sets, with their labels."""
        return {"data": [{"name": s.name, "labels": list(s.labels)}
                         for s in ws.store.labelsets()]}

    @app.post("/api/classify", tags=["feldspar"])
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Labels from a label set's student, the teacher answering the texts the student
        is unsure of; with the cascade's summary."""
        with state.busy():
            return await run_in_threadpool(_classify, state, body)


def _install_guard(app: FastAPI, state: ServerState) -> None:
    ws = state.workspace

    @app.post("/api/guard", tags=["feldspar"])
    async def guard(body: GuardRequest) -> dict[str, Any]:
        """Screen a text under the policy (or for the risks named); the decision goes to
        the audit log."""
        from feldspar.guard.screen import Guard

        screen: Guard = ws.guard

        def check() -> dict[str, Any]:
            result = screen.check(body.text, direction=body.direction, risks=body.risks,
                                  prompt=body.prompt, context=body.context,
                                  source=guarding.SOURCE)
            return result.to_dict()

        with state.busy():
            return await run_in_threadpool(check)

    @app.get("/api/audit", tags=["feldspar"])
    def audit(since: str | None = None, until: str | None = None,
              action: Literal["allow", "flag", "redact", "block"] | None = None,
              risk: str | None = None,
              direction: Literal["input", "output", "document"] | None = None,
              source: str | None = None,
              limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """The guard's decisions, newest first; `since` and `until` take 30m, 24h, 7d or
        a date."""
        from feldspar.cli.audit import entry_dict, parse_when
        from feldspar.guard.risks import risk as known_risk
        from feldspar.store.records import AuditQuery

        query = AuditQuery(since=parse_when(since) if since else None,
                           until=parse_when(until) if until else None, action=action,
                           direction=direction, source=source, limit=limit,
                           risk=known_risk(risk, state.settings.guard_risks).name
                           if risk else None)
        return {"data": [entry_dict(e) for e in ws.store.audit(query)]}

    @app.get("/api/audit/{entry_id}", tags=["feldspar"])
    def audit_entry(entry_id: int) -> dict[str, Any]:
        """One decision of the audit log."""
        from feldspar.cli.audit import entry_dict

        found = ws.store.audit_entry(entry_id) if 0 < entry_id < 2**63 else None
        if found is None:
            raise APIError(404, f"No audit entry {entry_id}; GET /api/audit lists them",
                           code="not_found")
        return entry_dict(found)


def _name(name: str) -> str:
    """A collection name that is also a safe folder name (never '.' or '..')."""
    if not NAME.fullmatch(name) or not name.strip("."):
        raise APIError(400, f"Invalid collection name '{name[:80]}': use 1-64 letters, "
                       "digits, '.', '-' or '_'", param="name")
    return name


def _filename(raw: str | None) -> str:
    """A safe file name from what the client sent (no folders, no hidden files)."""
    base = Path((raw or "").replace("\\", "/")).name
    clean = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    if not clean:
        raise APIError(400, f"Invalid file name '{(raw or '')[:80]}'; give the file a name "
                       "with letters or digits", param="files")
    return clean[:200]


async def _save(state: ServerState, file: UploadFile, folder: Path) -> Path:
    """Write an upload to a temporary file in `folder`, refusing one over max_file_mb."""
    limit = int(state.settings.max_file_mb * 1024 * 1024)
    folder.mkdir(parents=True, exist_ok=True)
    size = 0
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", delete=False) as out:
        partial = Path(out.name)
        try:
            while block := await file.read(CHUNK):
                size += len(block)
                if size > limit:
                    raise APIError(413, f"'{file.filename}' is over max_file_mb "
                                   f"({state.settings.max_file_mb:g} MB)",
                                   code="file_too_large", param="files")
                out.write(block)
        except BaseException:
            out.close()
            partial.unlink(missing_ok=True)
            raise
    return partial


def _ingest_uploads(state: ServerState, staged: list[tuple[Path, Path]],
                    collection: str) -> dict[str, Any]:
    """Put the uploads in place and ingest them. A file that replaces an earlier upload
    keeps that one aside until the new one is in; one that cannot go in is removed and
    the earlier one put back, so a failed upload changes nothing."""
    backups: list[tuple[Path, Path | None]] = []
    for temp, target in staged:
        backup = None
        if target.exists():
            backup = target.with_name(f".previous-{target.name}")
            target.replace(backup)
        temp.replace(target)
        backups.append((target, backup))
    kept: set[Path] = set()
    try:
        report = state.workspace.ingest([t for t, _ in backups], collection)
        kept = {Path(p).resolve() for p in (*report.added, *report.updated, *report.unchanged)}
    finally:
        for target, backup in backups:
            if target.resolve() in kept:
                if backup is not None:
                    backup.unlink(missing_ok=True)
            elif backup is not None:
                backup.replace(target)
            else:
                target.unlink(missing_ok=True)
    data = report.to_dict()
    data["documents"] = [str(t) for t, _ in backups if t.resolve() in kept]
    return data


def _ask(state: ServerState, body: AskRequest) -> Any:
    from feldspar.serve.openai_routes import chat_model

    model = chat_model(state, body.model).spec.name if body.model else None
    history: list[Message] = [{"role": m.role, "content": m.text()} for m in body.history]
    return guarding.start_answer(state, body.question, collection=body.collection,
                                 history=history, model=model, options=None, k=body.k)


def _ask_events(state: ServerState, body: AskRequest) -> Iterator[str]:
    answering = _ask(state, body)

    def make() -> Iterator[str]:
        for piece in until_cancelled(answering):
            yield sse({"type": "delta", "text": piece})
        if cancelled():
            return  # the client is gone: no checks for nobody
        yield sse({"type": "answer", "answer": answering.result().to_dict()})

    return events(make(), answering.close)


def _classify(state: ServerState, body: ClassifyRequest) -> dict[str, Any]:
    if body.threshold is not None and body.target_accuracy is not None:
        raise APIError(400, "Give threshold or target_accuracy, not both", param="threshold")
    clf = state.workspace.classifier(body.labelset)
    result = clf.predict(body.texts, teacher=clf.teacher if body.teacher else None,
                         threshold=body.threshold, target_accuracy=body.target_accuracy)
    return {"data": [{"text": text, **asdict(p)}
                     for text, p in zip(body.texts, result.predictions, strict=True)],
            "summary": result.summary()}
