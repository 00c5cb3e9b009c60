"""The HTTP API and the page, on Starlette. Every route answers JSON (``{"error": "..."}`` on failure) except
the files, the thumbnails, frames, the page and the event stream.

Why Starlette and uvicorn: small, well kept, ASGI, with streaming requests (uploads go to disk chunk by chunk,
through python-multipart's streaming parser), streaming responses (server-sent events) and files with HTTP Range
in the box; no ORM, template engine or build step that a page of plain HTML and JavaScript does not need.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vidsr.web.db import Database, Media
from vidsr.web.events import Events
from vidsr.web.guard import Guard, login_page
from vidsr.web.library import Library, LimitError, Limits, NotMediaError
from vidsr.web.options import BadRequest, JobRequest, parse_request
from vidsr.web.queue import JobQueue

STATIC = Path(__file__).parent / "static"
SPACE_CHECK_EVERY = 64 * 2**20


@dataclass
class ServeConfig:
    data: Path
    workers: int = 1
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    allowed_hosts: frozenset[str] = frozenset()  # empty: any Host (a token guards the server)


@dataclass
class State:
    db: Database
    library: Library
    queue: JobQueue
    events: Events


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _state(request: Request) -> State:
    return request.app.state.vidsr


def _media_or_404(request: Request) -> Media:
    media = _state(request).db.media(request.path_params["id"])
    if media is None:
        raise LookupError("no such media")
    return media


# media
async def list_media(request: Request) -> Response:
    return JSONResponse([m.as_api() for m in _state(request).db.all_media()])


async def get_media(request: Request) -> Response:
    media = _media_or_404(request)
    jobs = [j.as_api() for j in _state(request).db.jobs(media.id)]
    return JSONResponse(media.as_api() | {"jobs": jobs})


async def delete_media(request: Request) -> Response:
    s = _state(request)
    media = _media_or_404(request)
    await run_in_threadpool(s.queue.cancel_all_of, media.id)
    await run_in_threadpool(s.library.delete, media.id)
    s.events.publish("media", {"deleted": media.id})
    return Response(status_code=204)


async def media_file(request: Request) -> Response:
    s = _state(request)
    media = _media_or_404(request)
    return FileResponse(s.library.path(media), filename=media.name, content_disposition_type="attachment")


async def media_play(request: Request) -> Response:
    """The file itself when a browser plays it, else its browser copy (409 while that is being made)."""
    s = _state(request)
    media = _media_or_404(request)
    if media.playable:
        return FileResponse(s.library.path(media), content_disposition_type="inline", filename=media.name)
    if media.proxy:
        return FileResponse(s.library.path(media, "copy"), media_type="video/mp4", content_disposition_type="inline",
                            filename=Path(media.name).stem + ".mp4")
    return error("a browser copy of this file is being made; try again when its job is done", 409)


async def media_thumbnail(request: Request) -> Response:
    return FileResponse(_state(request).library.path(_media_or_404(request), "thumbnail"), media_type="image/jpeg")


async def media_frame(request: Request) -> Response:
    """The frame at ``?t=SECONDS`` as PNG, for the before/after view; decoded in a child, as every probe is."""
    s = _state(request)
    media = _media_or_404(request)
    if media.kind == "frames":
        return error("a frame set has no timeline; download it", 409)
    try:
        t = max(0.0, float(request.query_params.get("t", "0")))
    except ValueError:
        return error("t must be seconds", 400)
    path = s.library.path(media)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "vidsr.web.probe", "--frame", str(path),
                                                str(t), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        return error("decoding that frame took too long", 500)
    if proc.returncode != 0:
        return error("that frame does not decode", 422)
    return Response(out, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


async def upload(request: Request) -> Response:
    """``multipart/form-data`` with a ``file`` field, streamed to disk as it arrives; 201 with the media."""
    s = _state(request)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        return error('send multipart/form-data with the file in a field named "file"', 400)
    try:
        s.library.check_space(int(request.headers.get("content-length") or 0))
    except LimitError as e:
        return error(str(e), e.status)
    sink = _UploadSink(s.library)
    try:
        parser = MultipartParser(params[b"boundary"], sink.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            sink.check()
        parser.finalize()
    except ClientDisconnect:
        sink.discard()
        return Response(status_code=499)
    except LimitError as e:
        sink.discard()
        return error(str(e), e.status)
    except Exception:
        sink.discard()
        raise
    sink.close()
    if sink.name is None:
        sink.discard()
        return error('no field named "file" in the upload', 400)
    try:
        media = await run_in_threadpool(s.library.ingest, sink.partial, sink.name)
    except NotMediaError as e:
        return error(f"{sink.name}: {e}; nothing was kept", 415)
    s.events.publish("media", {"media": media.as_api()})
    if media.kind == "video" and not media.playable:
        s.queue.submit(media, JobRequest("proxy", {}))
    return JSONResponse(media.as_api(), status_code=201)


class _UploadSink:
    """python-multipart callbacks that write the ``file`` part to a partial under uploads/ (and ignore others)."""

    def __init__(self, library: Library):
        self.library = library
        self.file, self.partial = library.new_upload()
        self.name: str | None = None
        self.size = 0
        self._checked = 0
        self._header: list[bytes] = [b"", b""]
        self._headers: dict[bytes, bytes] = {}
        self._into = False

    def callbacks(self) -> Any:
        def field(data: bytes, start: int, end: int) -> None:
            self._header[0] += data[start:end]

        def value(data: bytes, start: int, end: int) -> None:
            self._header[1] += data[start:end]

        def header_end() -> None:
            self._headers[self._header[0].lower()] = self._header[1]
            self._header = [b"", b""]

        def headers_done() -> None:
            _, disp = parse_options_header(self._headers.get(b"content-disposition", b""))
            self._into = disp.get(b"name") == b"file" and self.name is None
            if self._into:
                self.name = disp.get(b"filename", b"upload").decode("utf-8", "replace")
            self._headers = {}

        def data(chunk: bytes, start: int, end: int) -> None:
            if self._into:
                self.file.write(chunk[start:end])
                self.size += end - start

        def part_end() -> None:
            self._into = False

        return {"on_header_field": field, "on_header_value": value, "on_header_end": header_end,
                "on_headers_finished": headers_done, "on_part_data": data, "on_part_end": part_end}

    def check(self) -> None:
        limit = self.library.limits.max_upload
        if limit is not None and self.size > limit:
            self.library.check_space(self.size)  # raises the 413
        if self.size - self._checked >= SPACE_CHECK_EVERY:
            self._checked = self.size
            self.library.check_space(0)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


# jobs
async def list_jobs(request: Request) -> Response:
    return JSONResponse([j.as_api() for j in _state(request).db.jobs()])


async def _job_request(request: Request) -> tuple[Media, JobRequest] | Response:
    """The media and the checked request of a job's body, or the error response."""
    try:
        body = await request.json()
    except ValueError:
        return error("the body must be JSON", 400)
    media = _state(request).db.media(str(body.get("media"))) if isinstance(body, dict) else None
    if media is None:
        return error("no such media", 404)
    try:
        return media, parse_request(body, media)
    except BadRequest as e:
        return error(str(e), e.status)


async def create_job(request: Request) -> Response:
    parsed = await _job_request(request)
    if isinstance(parsed, Response):
        return parsed
    job = _state(request).queue.submit(*parsed)
    return JSONResponse(job.as_api(), status_code=202)


async def plan_job(request: Request) -> Response:
    """``POST /api/plan`` with a job's body: which engine an upscale would run and why, and about how long it
    would take here, before it is queued (400 for what ``POST /api/jobs`` would refuse)."""
    parsed = await _job_request(request)
    if isinstance(parsed, Response):
        return parsed
    if parsed[1].action != "upscale":
        return error("only an upscale has an engine to plan", 400)
    plan = await run_in_threadpool(_state(request).queue.plan, *parsed)
    return JSONResponse(plan, status_code=200 if "error" not in plan else 422)


async def get_job(request: Request) -> Response:
    job = _state(request).db.job(request.path_params["id"])
    if job is None:
        return error("no such job", 404)
    return JSONResponse(job.as_api())


async def cancel_job(request: Request) -> Response:
    s = _state(request)
    job = s.db.job(request.path_params["id"])
    if job is None:
        return error("no such job", 404)
    if job.state in ("done", "failed"):
        return error(f"the job is {job.state}; delete its result instead", 409)
    return JSONResponse(s.queue.cancel(job).as_api())


async def clear_jobs(request: Request) -> Response:
    """``DELETE /api/jobs``: the list of jobs forgets those that have ended (their results stay in the library)."""
    s = _state(request)
    cleared = await run_in_threadpool(s.db.clear_finished)
    s.queue.publish("cleared", {"jobs": cleared})
    return JSONResponse({"cleared": cleared})


async def events(request: Request) -> Response:
    return StreamingResponse(_state(request).events.stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def models(request: Request) -> Response:
    from vidsr.models.engine import best_engine, list_engines

    engines = await run_in_threadpool(list_engines)
    rows = [{"id": e.id, "family": e.family, "scales": list(e.scales), "degradation": e.degradation}
            for e in engines]
    picks = {}
    for scale in sorted({s for e in engines for s in e.scales}):
        picks[str(scale)] = best_engine(engines, scale).id
    return JSONResponse({"engines": rows, "auto": picks})


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"})


async def health(request: Request) -> Response:
    from vidsr import __version__

    return JSONResponse({"ok": True, "version": __version__})


async def not_found(request: Request, exc: Exception) -> Response:
    return error("not found", 404)


async def server_error(request: Request, exc: Exception) -> Response:
    return error(f"internal error: {type(exc).__name__}", 500)


def open_state(config: ServeConfig) -> State:
    """The database, the data folder (locked, swept after any crash) and the queue (recovered), before the
    server listens: a second server on the same folder is refused here, with a clear line."""
    config.data.mkdir(parents=True, exist_ok=True)
    db = Database(config.data / "vidsr.db")
    library = Library(config.data, db, config.limits)
    library.lock()
    library.sweep()
    bus = Events()
    queue = JobQueue(db, library, config.workers, bus.publish)
    queue.recover()
    return State(db, library, queue, bus)


def create_app(state: State, config: ServeConfig) -> Guard:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.vidsr = state
        state.queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.queue.stop)
            state.db.close()

    media_id = "{id:str}"
    routes = [
        Route("/", index), Route("/login", login_page), Route("/api/health", health), Route("/api/models", models),
        Route("/api/media", list_media, methods=["GET"]), Route("/api/media", upload, methods=["POST"]),
        Route(f"/api/media/{media_id}", get_media, methods=["GET"]),
        Route(f"/api/media/{media_id}", delete_media, methods=["DELETE"]),
        Route(f"/api/media/{media_id}/file", media_file), Route(f"/api/media/{media_id}/play", media_play),
        Route(f"/api/media/{media_id}/thumbnail", media_thumbnail), Route(f"/api/media/{media_id}/frame", media_frame),
        Route("/api/jobs", list_jobs, methods=["GET"]), Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs", clear_jobs, methods=["DELETE"]), Route("/api/plan", plan_job, methods=["POST"]),
        Route("/api/jobs/{id:str}", get_job, methods=["GET"]),
        Route("/api/jobs/{id:str}", cancel_job, methods=["DELETE"]),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers: dict[Any, Any] = {404: not_found, LookupError: not_found, FileNotFoundError: not_found,
                                500: server_error, Exception: server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    return Guard(app, config.token, config.allowed_hosts)
