"""The FastAPI application: routes, authentication, limits and JSON errors.

Every error is ``{"error": {"code": ..., "message": ...}}``. Authentication and the body
size limit are checked by an ASGI guard *before* any upload is read; file types are
sniffed from the content (Pillow, then FFmpeg), never from a name or a content type.
"""

import contextlib
import dataclasses
import hmac
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from veil import __version__
from veil.commands.options import request_method_options
from veil.config import RunConfig
from veil.detect.base import DETECTORS
from veil.io.images import read_image, write_image
from veil.mask import MASK_SHAPES
from veil.service import jobs
from veil.service.intake import (
    ApiError,
    Guard,
    error_body,
    sniff,
    sniff_image,
    store,
    veil_call,
    video_suffix,
)
from veil.service.models import (
    ERRORS,
    Health,
    JobStatus,
    Methods,
    methods_payload,
    option_enums,
    service_methods,
)
from veil.service.selection import Selection, StoredSelection, selection_dependency
from veil.service.settings import ServiceSettings

__all__ = ["Service", "create_app"]

log = logging.getLogger(__name__)

_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_STATIC |= {"review.js": "text/javascript", "review.css": "text/css"}  # veil review
_MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_MEDIA |= {"TIFF": "image/tiff", "BMP": "image/bmp", "GIF": "image/gif"}


class Service:
    """What the routes share: settings, pipelines, the private work folder and the jobs.

    The folder and the job manager exist between :meth:`start` and :meth:`close`; the app
    starts them when created and again on a lifespan startup after a shutdown."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.pipelines = jobs.PipelineCache()
        self.slots = threading.BoundedSemaphore(settings.max_sync)
        # synchronous requests run on these threads only: each thread that runs a
        # detector keeps its own compiled model and buffers, so the set stays small
        self.workers = ThreadPoolExecutor(settings.max_sync, thread_name_prefix="veil-sync")
        self.root = Path()
        self.manager: jobs.JobManager | None = None
        self._lock = threading.Lock()

    @property
    def jobs(self) -> jobs.JobManager:
        if self.manager is None:
            raise ApiError(503, "busy", "the service is shutting down")
        return self.manager

    def places(self) -> int:
        """Jobs that would be accepted now (0 while shut down)."""
        manager = self.manager
        return 0 if manager is None else manager.places()

    def start(self) -> None:
        """Create the private (0700) work folder and the job manager, unless running."""
        with self._lock:
            if self.manager is not None:
                return
            s = self.settings
            self.root = Path(tempfile.mkdtemp(prefix="veil-serve-", dir=s.work_dir))
            self.manager = jobs.JobManager(
                self.root,
                max_jobs=s.max_jobs,
                max_queue=s.max_queue,
                ttl=s.result_ttl,
                interval=s.janitor_interval,
            )

    def close(self) -> None:
        """Cancel every job and delete the work folder with every upload and result."""
        with self._lock:
            manager, self.manager = self.manager, None
        if manager is not None:
            manager.close()
            shutil.rmtree(self.root, ignore_errors=True)


def create_app(settings: ServiceSettings | None = None, *, review: Any = None) -> FastAPI:
    """The veil HTTP service for ``settings``. Its private work folder is created now and
    removed, with every upload and result, when the app shuts down (lifespan).
    ``review``: a :mod:`veil.review` session; its page and routes are added
    (:mod:`veil.service.review`, ``veil review``)."""
    svc = Service(settings or ServiceSettings())
    svc.start()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        yield
        svc.close()

    app = FastAPI(
        title="veil",
        version=__version__,
        summary="Anonymize faces in images and videos.",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not served
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = svc
    _install_error_handlers(app)
    _add_routes(app, svc)
    if review is not None:
        from veil.service.review import add_review_routes

        add_review_routes(app, review, _auth(svc.settings), _static)
    app.add_middleware(
        Guard, settings=svc.settings, job_places=svc.places, work_folder=lambda: svc.root
    )
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = getattr(exc, "code", None)
        body = error_body(exc.status_code, str(exc.detail), code)
        return JSONResponse(body, exc.status_code, headers=exc.headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(map(str, e.get("loc", ()))), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body(422, message, "invalid_request", errors), 422)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return JSONResponse(error_body(500, "internal server error", "internal_error"), 500)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)


def _add_routes(app: FastAPI, svc: Service) -> None:
    s = svc.settings
    detector_names = list(s.detectors or DETECTORS.names())
    Method, Detector, Mask = option_enums(service_methods(), detector_names, MASK_SHAPES)
    d = s.config
    auth = _auth(s)

    method0, mask0, detector0 = (
        Method(d.anonymizer.method),
        Mask(d.mask.shape),
        Detector(d.detector.name),
    )

    def run_config(
        method: Annotated[Method, Form()] = method0,  # type: ignore[valid-type]
        strength: Annotated[float, Form(ge=0.05, le=20)] = d.anonymizer.strength,
        mask: Annotated[Mask, Form()] = mask0,  # type: ignore[valid-type]
        detector: Annotated[Detector, Form()] = detector0,  # type: ignore[valid-type]
        threshold: Annotated[float | None, Form(ge=0, le=1)] = d.detector.threshold,
        target: Annotated[Literal["face", "head", "person"], Form()] = d.target,  # type: ignore[assignment]
        degree: Annotated[float | None, Form(ge=0, le=2)] = None,
        method_option: Annotated[list[str] | None, Form()] = None,
        method_options: Annotated[str | None, Form()] = None,
    ) -> RunConfig:
        """Form fields -> the default :class:`RunConfig` with those fields replaced; the
        method's own options (``degree``, ``method_option`` KEY=VALUE fields, a JSON object
        in ``method_options``) are checked like the CLI's ``--method-option``."""
        det_options = d.detector.options if _value(detector) == d.detector.name else {}
        anon_options = dict(d.anonymizer.options) if _value(method) == d.anonymizer.method else {}
        anon_options |= veil_call(
            request_method_options, _value(method), method_option or (), method_options, degree
        )
        return dataclasses.replace(
            d,
            detector=dataclasses.replace(
                d.detector, name=_value(detector), threshold=threshold, options=det_options
            ),
            mask=dataclasses.replace(d.mask, shape=_value(mask)),
            anonymizer=dataclasses.replace(
                d.anonymizer, method=_value(method), strength=strength, options=anon_options
            ),
            target=target,
        )

    Config = Annotated[RunConfig, Depends(run_config)]
    Chosen = Annotated[Selection, Depends(selection_dependency(d))]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:  # a fixed list, never a path built from the request
            raise ApiError(404, "not_found", "no such file")
        return Response(_static(name), media_type=f"{_STATIC[name]}; charset=utf-8")

    @app.get("/api/health", response_model=Health)
    def health() -> dict[str, Any]:
        """Liveness, version and queue occupancy; needs no token."""
        return {"status": "ok", "version": __version__, "active_jobs": svc.jobs.active()}

    @app.get("/api/methods", response_model=Methods, dependencies=auth, responses=ERRORS)
    def methods() -> dict[str, Any]:
        """Detectors, anonymization methods and mask shapes, with defaults and limits."""
        return methods_payload(detector_names, s)

    @app.post(
        "/api/anonymize",
        dependencies=auth,
        response_class=Response,
        responses={**ERRORS, 200: {"content": {m: {} for m in _MEDIA.values()}}},
    )
    def anonymize(image: Annotated[UploadFile, File()], config: Config, chosen: Chosen) -> Response:
        """Anonymize one image synchronously; the result has the input's format, no metadata.

        ``keep`` / ``only``: reference photos (one face each) of the people to leave
        visible / to anonymize alone; ``region`` / ``exclude_region`` (boxes) and
        ``regions`` (JSON polygons): where (see ``veil anonymize --help``).
        The header ``X-Veil-Faces`` tells how many faces were anonymized."""
        with _stored(svc, image, s.max_image_bytes) as path, chosen.stored(svc.root, s) as refs:
            fmt = sniff_image(path, s)
            if fmt is None:
                raise ApiError(415, "unsupported_media_type", "not an image (use /api/jobs)")
            data, faces = _anonymize_file(svc, path, config, refs)
        headers = {
            "X-Veil-Faces": str(faces),
            "Content-Disposition": f'attachment; filename="anonymized.{fmt.lower()}"',
            "Cache-Control": "no-store",
        }
        return Response(data, media_type=_MEDIA[fmt], headers=headers)

    @app.post(
        "/api/jobs", status_code=202, response_model=JobStatus, dependencies=auth, responses=ERRORS
    )
    def create_job(
        files: Annotated[list[UploadFile], File()], config: Config, chosen: Chosen
    ) -> dict[str, Any]:
        """Queue one video, or a batch of images (result: a ZIP); poll ``/api/jobs/{id}``.
        Same ``keep`` / ``only`` / region fields as ``/api/anonymize``."""
        _reserve(svc.jobs)
        if not 1 <= len(files) <= s.max_batch_files:
            raise ApiError(422, "too_many_files", f"send 1 to {s.max_batch_files} files")
        with chosen.stored(svc.root, s) as refs:
            pipeline = _chosen_pipeline(svc, config, refs)
        job = _make_job(svc, files, config)
        try:
            svc.jobs.submit(
                job,
                jobs.task_for(job, pipeline, config, svc.settings),
            )
        except jobs.QueueFull:
            raise _queue_full() from None
        return job.describe(s.result_ttl)

    @app.get("/api/jobs/{job_id}", response_model=JobStatus, dependencies=auth, responses=ERRORS)
    def job_status(job_id: str) -> dict[str, Any]:
        """Status (queued, running, done, failed), progress 0-1 and error of a job."""
        return _job(svc, job_id).describe(s.result_ttl)

    @app.get(
        "/api/jobs/{job_id}/result",
        dependencies=auth,
        response_class=StreamingResponse,
        responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    )
    def job_result(job_id: str) -> Response:
        """Download a finished job's result once. The file is deleted from disk as the
        download starts (it is sent from the open file), and the job is forgotten."""
        job = svc.jobs.claim(job_id)
        if job is None:
            status = _job(svc, job_id).status
            raise ApiError(409, "not_ready", f"job is {status}; its result cannot be downloaded")
        handle = job.result.open("rb")
        size = os.fstat(handle.fileno()).st_size
        svc.jobs.delete(job.id)  # unlinks the file; the open handle still reads it
        headers = {
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{job.download_name}"',
            "Cache-Control": "no-store",
        }
        return StreamingResponse(
            _chunks(handle),
            media_type=job.media_type,
            headers=headers,
            background=BackgroundTask(handle.close),
        )

    @app.delete("/api/jobs/{job_id}", status_code=204, dependencies=auth, responses=ERRORS)
    def delete_job(job_id: str) -> Response:
        """Cancel a job if it is still running and delete its files."""
        if not svc.jobs.delete(job_id):
            raise ApiError(404, "not_found", "no such job")
        return Response(status_code=204)


def _auth(s: ServiceSettings) -> list[Any]:
    return [Depends(_bearer_dependency(s.token))] if s.token else []


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _value(member: Any) -> str:
    """The string of an option enum member (the enums are built at run time)."""
    return str(member.value)


def _bearer_dependency(token: str) -> Any:
    bearer = HTTPBearer(auto_error=False)

    def check(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        given = creds.credentials.encode() if creds else b""
        if not hmac.compare_digest(given, token.encode()):
            raise ApiError(
                401, "unauthorized", "missing or wrong token", {"WWW-Authenticate": "Bearer"}
            )

    return check


def _static(name: str) -> bytes:
    return resources.files("veil.service").joinpath("static", name).read_bytes()


def _job(svc: Service, job_id: str) -> jobs.Job:
    job = svc.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", "no such job (finished jobs expire)")
    return job


def _reserve(manager: jobs.JobManager) -> None:
    try:
        manager.reserve()
    except jobs.QueueFull:
        raise _queue_full() from None


def _queue_full() -> ApiError:
    return ApiError(429, "queue_full", "too many jobs; retry later", {"Retry-After": "5"})


@contextlib.contextmanager
def _stored(svc: Service, upload: UploadFile, limit: int) -> Iterator[Path]:
    """An upload copied into the private folder under a generated name; always deleted."""
    path = store(upload.file, svc.root, limit)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _anonymize_file(
    svc: Service, path: Path, config: RunConfig, refs: StoredSelection | None = None
) -> tuple[bytes, int]:
    """Read, anonymize and encode one stored image on a sync worker thread; the original
    is deleted once read and freed memory is handed back afterwards."""
    result: tuple[bytes, int] = _on_sync_worker(svc, _anonymize_now, svc, path, config, refs)
    return result


def _on_sync_worker(svc: Service, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on a synchronous worker thread once a slot is free (503 after
    ``sync_wait`` seconds); freed memory is handed back afterwards."""
    if not svc.slots.acquire(timeout=svc.settings.sync_wait):
        raise ApiError(503, "busy", "the server is busy; retry later", {"Retry-After": "2"})
    try:
        return svc.workers.submit(fn, *args).result()
    finally:
        jobs.release_memory()
        svc.slots.release()


def _chosen_pipeline(svc: Service, config: RunConfig, refs: StoredSelection) -> Any:
    """The shared pipeline for ``config`` with the request's consent list and regions
    (reference photos detected and embedded on a sync worker thread)."""
    if not refs.photos:  # nothing to detect: regions only, or nothing chosen
        return refs.apply(_pipeline(svc, config))
    return _on_sync_worker(svc, lambda: refs.apply(_pipeline(svc, config)))


def _anonymize_now(
    svc: Service, path: Path, config: RunConfig, refs: StoredSelection | None = None
) -> tuple[bytes, int]:
    out = svc.jobs.new_path(".out")
    try:
        pipeline = _pipeline(svc, config)
        if refs is not None:
            pipeline = refs.apply(pipeline)
        loaded = veil_call(read_image, path, max_pixels=svc.settings.max_pixels)
        path.unlink(missing_ok=True)
        result = veil_call(pipeline.process, loaded.image)
        o = config.output
        veil_call(
            write_image,
            out,
            result.image,
            like=loaded,
            format=loaded.format,
            keep_metadata=o.keep_metadata,
            jpeg_quality=o.jpeg_quality,
        )
        faces = len(result.faces)
        del loaded, result  # the decoded and anonymized arrays, before reading the output
        return out.read_bytes(), faces
    finally:
        out.unlink(missing_ok=True)


def _pipeline(svc: Service, config: RunConfig) -> Any:
    return veil_call(svc.pipelines.get, config)


def _make_job(svc: Service, files: list[UploadFile], config: RunConfig) -> jobs.Job:
    """Store and sniff every file; one video alone, or images only."""
    s, paths = svc.settings, list[Path]()
    try:
        for upload in files:
            paths.append(store(upload.file, svc.root, s.max_video_bytes))
        sniffed = [sniff(p, s) for p in paths]
        kinds = [kind for kind, _ in sniffed]
        _pipeline(svc, config)  # option errors are reported now, not in the job
        if kinds == ["video"]:
            suffix = video_suffix(paths[0])
            media = "video/mp4" if suffix == ".mp4" else "video/x-matroska"
            job = svc.jobs.new_job("video", paths, suffix, media)
            job.expected_frames = sniffed[0][1]
            return job
        if "video" in kinds:
            raise ApiError(422, "mixed_upload", "send a video alone, or only images")
        return svc.jobs.new_job("images", paths, ".zip", "application/zip")
    except BaseException:
        jobs._unlink(paths)
        raise
