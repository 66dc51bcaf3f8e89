"""Run the pipeline over image files and folders: plan, skip done work, process on all
cores, write atomically, audit, and summarize failures without stopping the run."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from veil.config import RunConfig
from veil.consent import kept_records
from veil.errors import InputError, OutputError, VeilError
from veil.files import FileOutcome, Job, audit_path, file_sha256, write_json_atomic
from veil.io.images import (
    IMAGE_SUFFIXES,
    LoadedImage,
    iter_image_files,
    read_image,
    write_image,
)
from veil.io.suffixes import VIDEO_SUFFIXES
from veil.pipeline import Pipeline, Result
from veil.stages import Stage, run_stages

if TYPE_CHECKING:
    from veil.edits import EditList

__all__ = ["FileOutcome", "Job", "RunSummary", "default_workers", "plan_jobs", "run_images"]
__all__ += ["run_image_job"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class RunSummary:
    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _default_target(source: Path) -> Path:
    return source.with_name(f"{source.stem}_anonymized{source.suffix}")


def plan_jobs(
    inputs: Sequence[Path],
    output: Path | None,
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Job]:
    """Map inputs (files and folders) to output paths.

    Folders contribute images and videos (by suffix). A single file with ``output``
    naming a file of a known suffix goes there; otherwise ``output`` is
    a folder: files land in it by name, folders are mirrored below it (the folder's own
    name is kept when several inputs are given). Without ``output`` a file ``x.jpg``
    becomes ``x_anonymized.jpg`` beside it and a folder ``d`` becomes ``d_anonymized``.
    """
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise InputError(f"input not found: {', '.join(missing)}")
    if (
        output is not None
        and len(inputs) == 1
        and inputs[0].is_file()
        and output.suffix.lower() in MEDIA_SUFFIXES
    ):
        jobs = [Job(inputs[0], output)]
        check_targets(jobs)
        return jobs
    jobs = []
    for src in inputs:
        jobs.extend(_jobs_for(src, output, len(inputs) > 1, recursive, include, exclude))
    check_targets(jobs)
    return jobs


def _jobs_for(
    src: Path,
    output: Path | None,
    several: bool,
    recursive: bool,
    include: Sequence[str],
    exclude: Sequence[str],
) -> Iterator[Job]:
    if src.is_file():
        yield Job(src, output / src.name if output else _default_target(src))
        return
    root = output if output else src.with_name(f"{src.name}_anonymized")
    if output and several:
        root = output / src.name
    skip = [*exclude]
    resolved_root = root.resolve()
    files = iter_image_files(
        src, recursive=recursive, include=include, exclude=skip, suffixes=MEDIA_SUFFIXES
    )
    for path in files:
        if resolved_root in path.resolve().parents:
            continue  # never re-process our own outputs when OUT is inside the input
        yield Job(path, root / path.relative_to(src))


def check_targets(jobs: Sequence[Job]) -> None:
    """Refuse outputs that would overwrite an input, collide with each other, or land
    below an existing file (``-o afile`` for a folder): before any work starts."""
    sources = {j.source.resolve() for j in jobs}
    seen: set[Path] = set()
    folders: set[Path] = set()
    for job in jobs:
        _check_folder(job.target.parent, folders)
        target = job.target.resolve()
        if target in sources:
            raise OutputError(f"{job.target}: output would overwrite an input file")
        if target in seen:
            raise OutputError(f"{job.target}: two inputs would write the same output file")
        seen.add(target)


def _check_folder(folder: Path, checked: set[Path]) -> None:
    """``folder`` can be created: no existing part of it is a file (checked once each)."""
    for part in [folder, *folder.parents]:
        if part in checked:
            return
        if part.exists():
            if not part.is_dir():
                raise OutputError(f"cannot write into {part}: it is a file, not a folder")
            checked.add(part)
            return
        checked.add(part)


@dataclass(frozen=True)
class _Loaded:
    """A job whose image was read (``start``: when its reading began)."""

    job: Job
    start: float
    loaded: LoadedImage


@dataclass(frozen=True)
class _Done:
    """A job whose image was anonymized, ready to be written."""

    loaded: _Loaded
    result: Result


T = TypeVar("T")


def _guard(job: Job, step: Callable[[], T]) -> T | FileOutcome:
    """Run one stage of ``job``; every error becomes a ``failed`` outcome (nothing written)."""
    try:
        return step()
    except VeilError as exc:
        return FileOutcome(job, "failed", error=str(exc))
    except Exception as exc:  # a bug must not stop a million-file run: report it
        log.exception("unexpected error on %s", job.source)
        return FileOutcome(job, "failed", error=f"{job.source}: {type(exc).__name__}: {exc}")


class ImageRunner:
    """Processes image jobs with one shared pipeline in three overlapping stages.

    ``readers`` threads decode, ``config.workers`` threads (default: one per core) detect
    and anonymize, each with ``cores / workers`` inference threads, ``writers`` threads
    encode and write (two each: a write waits for ``fsync``, and a second one keeps the
    encoder busy meanwhile); at most ``readers + workers + writers + queue_size`` images
    are in memory at once. ``stages=False`` processes one job after the other in the calling
    thread (same outputs; for tests and speed comparisons).

    ``edits`` maps an input file (``Job.source``) to its edit list (:mod:`veil.edits`),
    applied to that file only (images: frame 0; videos: every frame).
    """

    def __init__(
        self,
        config: RunConfig,
        pipeline: Pipeline | None = None,
        *,
        quiet: bool = True,
        stages: bool = True,
        readers: int = 2,
        writers: int = 2,
        queue_size: int = 2,
        edits: Mapping[Path, EditList] | None = None,
    ) -> None:
        self.config = config
        self.edits = dict(edits or {})
        self.quiet = quiet
        self.stages = stages
        self.workers = config.workers or default_workers()
        self.readers, self.writers, self.queue_size = readers, writers, queue_size
        self.pipeline = pipeline or Pipeline.from_config(_with_thread_budget(config, self.workers))

    def run(
        self, jobs: Sequence[Job], progress: Callable[[FileOutcome], None] | None = None
    ) -> RunSummary:
        """Images through overlapping stages first (:meth:`stream`), then videos one at a
        time (each video already keeps every core busy with its own threads)."""
        summary = RunSummary()

        def record(outcome: FileOutcome) -> None:
            summary.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)

        images = [j for j in jobs if not is_video(j.source)]
        # one image: no overlap to gain, and worker threads would compile the model again
        for outcome in self.stream(images, serial=len(images) < 2):
            record(outcome)
        for job in jobs:
            if is_video(job.source):
                record(self.process_video(job))
        return summary

    def stream(
        self,
        jobs: Iterable[Job],
        *,
        check: Callable[[Job], FileOutcome | None] | None = None,
        serial: bool = False,
    ) -> Iterator[FileOutcome]:
        """Image jobs -> outcomes in input order, with decode, detection + anonymization
        and encode overlapping (:func:`veil.stages.run_stages`). ``serial=True`` (or
        ``stages=False``): one job after the other in this thread, the same bytes.
        ``check(job)`` runs first in the read stage; an outcome it returns ends that job
        there (``veil batch`` skips verified outputs with it)."""
        read = Stage("read", lambda job: self._read(job, check), self.readers)
        work = Stage("detect", self._work, self.workers)
        write = Stage("write", self._write, self.writers)
        in_flight = self.readers + self.workers + self.writers + self.queue_size
        yield from run_stages(
            jobs, (read, work, write), in_flight=in_flight, serial=serial or not self.stages
        )

    def _read(
        self, job: Job, check: Callable[[Job], FileOutcome | None] | None
    ) -> FileOutcome | _Loaded:
        if check is not None and (done := check(job)) is not None:
            return done
        if job.target.exists() and not self.config.output.overwrite:
            return FileOutcome(job, "skipped")
        start = time.perf_counter()
        return _guard(job, lambda: _Loaded(job, start, read_image(job.source)))

    def _work(self, item: FileOutcome | _Loaded) -> FileOutcome | _Done:
        if isinstance(item, FileOutcome):
            return item
        return _guard(item.job, lambda: _Done(item, self._process(item)))

    def _process(self, item: _Loaded) -> Result:
        edits = self.edits.get(item.job.source)
        if edits is None:
            return self.pipeline.process(item.loaded.image)
        h, w = item.loaded.image.shape[:2]
        edits.check_media(width=w, height=h, frame_count=1)
        return self.pipeline.process(item.loaded.image, edits=edits)

    def _write(self, item: FileOutcome | _Done) -> FileOutcome:
        if isinstance(item, FileOutcome):
            return item
        job, start = item.loaded.job, item.loaded.start

        def save() -> FileOutcome:
            self._save(job, item.loaded.loaded, item.result)
            seconds = time.perf_counter() - start
            return FileOutcome(job, "done", len(item.result.faces), seconds=seconds)

        return _guard(job, save)

    def process_video(self, job: Job) -> FileOutcome:
        """One video through :func:`veil.video.job.run_video_job` (same pipeline)."""
        from veil.video.job import run_video_job

        edits = self.edits.get(job.source)
        return run_video_job(
            job.source,
            job.target,
            self.config,
            quiet=self.quiet,
            pipeline=self.pipeline,
            edits=edits,
        )

    def process(self, job: Job) -> FileOutcome:
        """Process one job in this thread; every error becomes a ``failed`` outcome and
        nothing is written (fail closed)."""
        item = self._work(self._read(job, None))
        return self._write(item)

    def _save(self, job: Job, loaded: LoadedImage, result: Result) -> None:
        out = self.config.output
        write_image(
            job.target,
            result.image,
            like=loaded,
            keep_metadata=out.keep_metadata,
            jpeg_quality=out.jpeg_quality,
            png_compression=out.png_compression,
        )
        if out.report:
            self._audit(
                job, loaded.sha256, result.faces.to_records(), kept_records(result.kept), result
            )

    def _audit(
        self,
        job: Job,
        input_sha: str,
        faces: list[dict[str, Any]],
        kept: list[dict[str, Any]],
        result: Result | None = None,
    ) -> None:
        record = {
            "input": str(job.source),
            "input_sha256": input_sha,
            "output": str(job.target),
            "output_sha256": file_sha256(job.target),
            "settings": self.pipeline.describe(),
            "faces": faces,
        }
        if self.pipeline.consent is not None:
            record["kept"] = kept  # faces a consent list left as they are
        edits = self.edits.get(job.source)
        if edits is not None and result is not None:
            record.update(edit_audit(edits, result))
        write_json_atomic(audit_path(job.target), record)


def edit_audit(edits: EditList, result: Result) -> dict[str, Any]:
    """An image audit's edit fields: ``faces`` with ``edit``/``method`` where an edit list
    set them, ``removed`` (detections it left as they are) and ``edits`` (every entry
    with what it changed, :class:`veil.edits.EditLog`)."""
    from veil.edits import EditLog, face_edit_records

    log = EditLog(edits)
    log.add(0, result.edit_changes)
    return {
        "faces": face_edit_records(result.faces, result.faces.to_records()),
        "removed": face_edit_records(result.removed, result.removed.to_records()),
        "edits": log.records(),
    }


def _with_thread_budget(config: RunConfig, workers: int) -> RunConfig:
    """Give CenterFace ``cores / workers`` inference threads (unless set explicitly), so
    the worker threads together use every core without oversubscribing it."""
    det = config.detector
    if det.name != "centerface" or "threads" in det.options:
        return config
    threads = max(1, default_workers() // workers)
    return replace(config, detector=replace(det, options={**det.options, "threads": threads}))


def run_images(
    jobs: Sequence[Job],
    config: RunConfig,
    progress: Callable[[FileOutcome], None] | None = None,
) -> RunSummary:
    """Process ``jobs`` with ``config``; see :class:`ImageRunner`."""
    return ImageRunner(config).run(jobs, progress)


def run_image_job(
    src: Path,
    dst: Path,
    config: RunConfig,
    *,
    pipeline: Pipeline | None = None,
    edits: EditList | None = None,
) -> FileOutcome:
    """One image file as a job, the image counterpart of
    :func:`veil.video.job.run_video_job`: read, anonymize (with ``edits``, an edit list
    for this image, :mod:`veil.edits`), write ``dst`` atomically and, with
    ``config.output.report``, ``DST.audit.json``. An existing ``dst`` is ``skipped``
    unless ``config.output.overwrite``; every error is a ``failed`` outcome with nothing
    written. ``pipeline`` (built from ``config`` when ``None``) may be shared."""
    runner = ImageRunner(config, pipeline, edits=None if edits is None else {src: edits})
    return runner.process(Job(src, dst))
