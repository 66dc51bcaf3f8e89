"""Background jobs of the HTTP service: a bounded queue in front of a thread pool, the
pipelines they share, and a janitor that deletes what nobody downloaded.

Files live in one private folder (0700) under generated names only. An input is deleted
as soon as its job ends (done, failed or cancelled); a result is deleted after its
download, on ``DELETE``, or ``ttl`` seconds after the job ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
import secrets
import threading
import time
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from veil.config import RunConfig
from veil.detect.base import DETECTORS, Detector
from veil.errors import InputError, VeilError
from veil.pipeline import Pipeline
from veil.service.settings import ServiceSettings

__all__ = ["Job", "JobManager", "PipelineCache", "QueueFull", "release_memory", "run_images_task"]
__all__ += ["run_video_task", "task_for"]

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")
Task = Callable[["Job"], None]


class QueueFull(Exception):
    """Every worker is busy and the queue holds its maximum of waiting jobs."""


class Cancelled(Exception):
    """The job was deleted while it ran."""


@dataclass(eq=False)
class Job:
    """One queued or finished job. ``progress`` is 0-1; ``error`` is set when ``failed``."""

    id: str
    kind: str
    inputs: list[Path]
    result: Path
    media_type: str
    download_name: str
    status: str = "queued"
    progress: float = 0.0
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[None] | None = None
    claimed: bool = False
    expected_frames: int = 0
    timeout: float = float("inf")
    started: float | None = None

    def set_progress(self, fraction: float) -> None:
        """Record progress (clamped below 1 until done); raise :class:`Cancelled` if
        deleted, :class:`~veil.errors.InputError` once it ran longer than ``timeout``."""
        if self.cancel.is_set():
            raise Cancelled(self.id)
        if self.started is not None and time.monotonic() - self.started > self.timeout:
            raise InputError(
                f"the job ran longer than the limit of {self.timeout:g} s (--job-timeout); "
                "nothing was kept"
            )
        self.progress = min(max(fraction, 0.0), 0.99)

    def describe(self, ttl: float) -> dict[str, Any]:
        expires = None if self.finished is None else max(0.0, self.finished + ttl - time.time())
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "progress": round(self.progress, 4),
            "error": self.error,
            "expires_in": None if expires is None else round(expires, 1),
        }


def _unlink(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


class JobManager:
    """Runs at most ``max_jobs`` jobs at once with up to ``max_queue`` waiting; a janitor
    thread deletes jobs (and their files) ``ttl`` seconds after they ended."""

    def __init__(
        self, root: Path, *, max_jobs: int, max_queue: int, ttl: float, interval: float
    ) -> None:
        self.root, self.ttl, self.capacity = root, ttl, max_jobs + max_queue
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_jobs, thread_name_prefix="veil-job")
        self._stop = threading.Event()
        self._janitor = threading.Thread(
            target=self._sweep_loop, args=(interval,), name="veil-janitor", daemon=True
        )
        self._janitor.start()

    def new_path(self, suffix: str = "") -> Path:
        """A fresh, unguessable file name in the private folder (never from a client)."""
        return self.root / f"{secrets.token_hex(16)}{suffix}"

    def places(self) -> int:
        """Jobs that would be accepted now (free workers plus free queue places)."""
        with self._lock:
            return 0 if self._stop.is_set() else self.capacity - self._active()

    def reserve(self) -> None:
        """Raise :class:`QueueFull` now, before an upload is stored, if no place is free."""
        with self._lock:
            if self._active() >= self.capacity:
                raise QueueFull

    def submit(self, job: Job, task: Task) -> Job:
        """Queue ``task(job)``; raises :class:`QueueFull` (and deletes the inputs) if full."""
        with self._lock:
            if self._active() >= self.capacity or self._stop.is_set():
                _unlink(job.inputs)
                raise QueueFull
            self._jobs[job.id] = job
            job.future = self._pool.submit(self._run, job, task)
        return job

    def new_job(self, kind: str, inputs: list[Path], suffix: str, media_type: str) -> Job:
        name = f"anonymized{suffix}"
        return Job(str(uuid.uuid4()), kind, inputs, self.new_path(suffix), media_type, name)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def claim(self, job_id: str) -> Job | None:
        """The finished job whose result may be downloaded once, else ``None``."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != "done" or job.claimed:
                return None
            job.claimed = True
            return job

    def delete(self, job_id: str) -> bool:
        """Forget a job: cancel it if queued or running, delete its files. False if unknown."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancel.set()
        if job.future is not None and job.future.cancel():
            _unlink(job.inputs)  # never started: _run will not clean up
        if job.status in ("done", "failed") or (job.future and job.future.cancelled()):
            _unlink([*job.inputs, job.result])
        return True

    def sweep(self, now: float | None = None) -> int:
        """Delete jobs that ended more than ``ttl`` seconds ago; return how many."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j.id for j in self._jobs.values() if j.finished and j.finished + self.ttl < now]
        return sum(self.delete(job_id) for job_id in old)

    def close(self) -> None:
        """Cancel everything, wait for running jobs to stop, delete every job's files."""
        self._stop.set()
        with self._lock:
            ids = list(self._jobs)
        for job_id in ids:
            self.delete(job_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._janitor.join(timeout=5)

    def active(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._active()

    def _active(self) -> int:
        return sum(j.status in ("queued", "running") for j in self._jobs.values())

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # the janitor must survive anything
                log.exception("janitor sweep failed")

    def _run(self, job: Job, task: Task) -> None:
        try:
            if job.cancel.is_set():
                raise Cancelled(job.id)
            job.status, job.started = "running", time.monotonic()
            task(job)
            job.progress, job.status = 1.0, "done"
        except Cancelled:
            job.status, job.error = "failed", "cancelled"
        except VeilError as exc:
            job.status, job.error = "failed", str(exc).replace(f"{self.root}/", "")
        except Exception:
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", "internal error while processing the job"
        finally:
            _unlink(job.inputs)  # the originals never outlive their job
            job.finished = time.time()
            if job.status != "done" or job.cancel.is_set():
                _unlink([job.result])
            release_memory()


class PipelineCache:
    """Pipelines built from a :class:`RunConfig`, kept (LRU) and shared by every request;
    detectors (the expensive part) are shared between pipelines with the same detector."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._pipelines: OrderedDict[str, Pipeline] = OrderedDict()
        self._detectors: OrderedDict[str, Detector] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: RunConfig) -> Pipeline:
        key = json.dumps(config.to_dict(), sort_keys=True, default=str)
        with self._lock:
            if key in self._pipelines:
                self._pipelines.move_to_end(key)
                return self._pipelines[key]
            pipeline = Pipeline.from_config(config, detector=self._detector(config))
            self._pipelines[key] = pipeline
            if len(self._pipelines) > self.size:
                self._pipelines.popitem(last=False)
            return pipeline

    def _detector(self, config: RunConfig) -> Detector:
        d = config.detector
        key = json.dumps([d.name, d.kwargs()], sort_keys=True, default=str)
        if key not in self._detectors:
            self._detectors[key] = DETECTORS.create(d.name, **d.kwargs())
            if len(self._detectors) > self.size:
                self._detectors.popitem(last=False)
        self._detectors.move_to_end(key)
        return self._detectors[key]


def task_for(job: Job, pipeline: Pipeline, config: RunConfig, settings: ServiceSettings) -> Task:
    """The function a worker runs for ``job`` (looked up at call time, so tests can patch)."""
    job.timeout = settings.job_timeout
    if job.kind == "video":
        return partial(run_video_task, pipeline=pipeline, config=config, settings=settings)
    return partial(
        run_images_task,
        pipeline=pipeline,
        config=config,
        max_pixels=settings.max_pixels,
        work=job.result.parent,
    )


def run_video_task(
    job: Job, pipeline: Pipeline, config: RunConfig, settings: ServiceSettings | None = None
) -> None:
    """Anonymize the job's one video into ``job.result`` (audio kept, metadata stripped).

    The frames are counted as they are decoded: past ``settings.max_frames``, or past
    ``max_duration`` seconds at the video's frame rate (a container may lie about both),
    the job fails with nothing written."""
    from veil.io.video import probe_video
    from veil.video import VideoConfig, anonymize_video

    s = settings or ServiceSettings()
    fps = probe_video(job.inputs[0]).fps
    limit = s.max_frames
    if fps > 0:
        limit = min(limit, int(s.max_duration * fps) + 1)

    def progress(done: int, total: int) -> None:
        if done > limit:
            raise InputError(
                f"the video has more than {limit:,} frames (limits: --max-frames "
                f"{s.max_frames:,}, --max-duration {s.max_duration:g} s); nothing was kept"
            )
        job.set_progress(done / max(total or job.expected_frames, done + 1, 1))

    video = VideoConfig(keep_metadata=False)
    anonymize_video(job.inputs[0], job.result, config, video, pipeline=pipeline, progress=progress)


def run_images_task(
    job: Job, pipeline: Pipeline, config: RunConfig, max_pixels: int, work: Path
) -> None:
    """Anonymize every image of the job into a ZIP at ``job.result``; each original is
    deleted right after it was read. Any failing image fails the whole job (fail closed)."""
    from veil.io.images import read_image, write_image

    partial = job.result.with_name(f".{job.result.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            for k, source in enumerate(job.inputs):
                job.set_progress(k / len(job.inputs))
                loaded = read_image(source, max_pixels=max_pixels)
                _unlink([source])
                image = pipeline.process(loaded.image).image
                out = work / f"{secrets.token_hex(16)}.{loaded.format.lower()}"
                try:
                    o = config.output
                    write_image(
                        out,
                        image,
                        like=loaded,
                        format=loaded.format,
                        keep_metadata=o.keep_metadata,
                        jpeg_quality=o.jpeg_quality,
                    )
                    name = f"anonymized_{k + 1:03d}.{_suffix(loaded.format)}"
                    archive.write(out, name)
                finally:
                    _unlink([out])
        partial.replace(job.result)
    finally:
        _unlink([partial])


def _suffix(fmt: str) -> str:
    return {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise: after a
    large image the process would stay at its peak). No-op without glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
