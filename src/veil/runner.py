"""Run the pipeline over image files and folders: plan, skip done work, process on all
cores, write atomically, audit, and summarize failures without stopping the run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from veil.config import RunConfig
from veil.errors import InputError, OutputError, VeilError
from veil.io.images import IMAGE_SUFFIXES, iter_image_files, read_image, write_image
from veil.io.video import VIDEO_SUFFIXES
from veil.pipeline import Pipeline

__all__ = ["FileOutcome", "Job", "RunSummary", "default_workers", "plan_jobs", "run_images"]

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Job:
    """One input file and where its anonymized copy goes."""

    source: Path
    target: Path


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one job: ``status`` is ``done``, ``skipped`` or ``failed``."""

    job: Job
    status: str
    faces: int = 0
    error: str | None = None
    seconds: float = 0.0


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


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def audit_path(target: Path) -> Path:
    return target.with_name(target.name + ".audit.json")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write audit file: {exc}") from exc


class ImageRunner:
    """Processes jobs with one shared pipeline on a pool of threads."""

    def __init__(
        self, config: RunConfig, pipeline: Pipeline | None = None, *, quiet: bool = True
    ) -> None:
        self.config = config
        self.quiet = quiet
        self.workers = config.workers or default_workers()
        self.pipeline = pipeline or Pipeline.from_config(_with_thread_budget(config, self.workers))

    def run(
        self, jobs: Sequence[Job], progress: Callable[[FileOutcome], None] | None = None
    ) -> RunSummary:
        """Images on a pool of threads first, then videos one at a time (each video
        already keeps every core busy with its own decode/detect/encode threads)."""
        summary = RunSummary()

        def record(outcome: FileOutcome) -> None:
            summary.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)

        images = [j for j in jobs if not is_video(j.source)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for outcome in pool.map(self.process, images):
                record(outcome)
        for job in jobs:
            if is_video(job.source):
                record(self.process_video(job))
        return summary

    def process_video(self, job: Job) -> FileOutcome:
        """One video through :func:`veil.commands.video.run_video_job` (same pipeline)."""
        from veil.commands.video import run_video_job

        return run_video_job(
            job.source, job.target, self.config, quiet=self.quiet, pipeline=self.pipeline
        )

    def process(self, job: Job) -> FileOutcome:
        """Process one job; every error becomes a ``failed`` outcome, nothing is written."""
        out = self.config.output
        if job.target.exists() and not out.overwrite:
            return FileOutcome(job, "skipped")
        start = time.perf_counter()
        try:
            loaded = read_image(job.source)
            result = self.pipeline.process(loaded.image)
            write_image(
                job.target,
                result.image,
                like=loaded,
                keep_metadata=out.keep_metadata,
                jpeg_quality=out.jpeg_quality,
            )
            if out.report:
                self._audit(job, loaded.sha256, result.faces.to_records())
        except VeilError as exc:
            return FileOutcome(job, "failed", error=str(exc))
        except Exception as exc:  # a bug must not stop a million-file run: report it
            log.exception("unexpected error on %s", job.source)
            return FileOutcome(job, "failed", error=f"{job.source}: {type(exc).__name__}: {exc}")
        return FileOutcome(job, "done", len(result.faces), seconds=time.perf_counter() - start)

    def _audit(self, job: Job, input_sha: str, faces: list[dict[str, Any]]) -> None:
        record = {
            "input": str(job.source),
            "input_sha256": input_sha,
            "output": str(job.target),
            "output_sha256": file_sha256(job.target),
            "settings": self.pipeline.describe(),
            "faces": faces,
        }
        _write_json_atomic(audit_path(job.target), record)


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
