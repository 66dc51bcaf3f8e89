"""The batch driver and the local engine.

:class:`JobWorker` does one job end to end (verify-and-skip, process with retries, hash
the output) on top of :class:`veil.runner.ImageRunner`; both engines run it, the local
one on a thread pool here, the Ray one inside actors and tasks. :func:`run_batch` is the
driver: it looks jobs up in the run manifest, hands them to an engine, appends every
result to the manifest as it streams back, sweeps temporary files and writes the run's
audit JSON.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from veil import __version__
from veil.config import RunConfig
from veil.distributed.manifest import (
    RUNS_DIR,
    Record,
    RunManifest,
    file_sha256,
    is_complete,
    settings_hash,
)
from veil.errors import OutputError
from veil.runner import FileOutcome, ImageRunner, Job, default_workers, is_video

__all__ = ["BatchSummary", "Engine", "JobWorker", "LocalEngine", "WorkItem", "run_batch"]

log = logging.getLogger(__name__)

OnRecord = Callable[[Record], None]


@dataclass(frozen=True)
class WorkItem:
    """A job plus the manifest's last ``done`` record for its target (``None``: never done)."""

    job: Job
    expected: Record | None = None


class JobWorker:
    """One pipeline (loaded once), used for many jobs. Thread-safe like ``ImageRunner``.

    Outputs are always (re)written when a job is not verified complete: the manifest, not
    the mere existence of a file, decides what is done.
    """

    def __init__(
        self, config: RunConfig, settings: str, *, retries: int = 2, run_id: str = ""
    ) -> None:
        output = dataclasses.replace(config.output, overwrite=True)
        self.config = dataclasses.replace(config, output=output)
        self.settings = settings
        self.retries = retries
        self.run_id = run_id
        self.runner = ImageRunner(self.config, quiet=True)

    def run(self, item: WorkItem) -> Record:
        """Skip a verified output, else process with up to ``retries`` retries."""
        base = self._check(item)
        if isinstance(base, Record):
            return base
        kind = "video" if is_video(item.job.source) else "image"
        return self._retry(self._process(item.job, kind), kind, base)

    def _check(self, item: WorkItem) -> Record | dict[str, Any]:
        """The record of a job that needs no work (verified output, unreadable input),
        else the fields every record of this job carries."""
        job = item.job
        kind = "video" if is_video(job.source) else "image"
        base = {"settings": self.settings, "kind": kind, "run_id": self.run_id}
        try:
            input_sha = file_sha256(job.source)
        except OSError as exc:
            return Record.for_job(job, "failed", reason=f"{job.source}: {exc}", **base)
        base["input_sha256"] = input_sha
        if is_complete(job, item.expected, self.settings, input_sha):
            assert item.expected is not None
            out_sha = item.expected.output_sha256
            return Record.for_job(job, "skipped", output_sha256=out_sha, **base)
        return base

    def _retry(self, outcome: FileOutcome, kind: str, base: dict[str, Any]) -> Record:
        """The record of a first attempt's ``outcome``, retrying a failure in this thread."""
        job = outcome.job
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                outcome = self._process(job, kind)
            if outcome.status == "done":
                return self._done(outcome, attempt, base)
            log.warning("%s: attempt %d failed: %s", job.source, attempt, outcome.error)
        reason = outcome.error or outcome.status
        return Record.for_job(job, "failed", reason=reason, attempts=self.retries + 1, **base)

    def run_many(self, items: Sequence[WorkItem]) -> Iterator[Record]:
        """Images through the runner's overlapping stages (:meth:`ImageRunner.stream`:
        hashing, checking and decoding in the read stage), records in input order, then
        videos one by one. A failed image is retried here, one attempt at a time."""
        images = {i.job.target: i for i in items if not is_video(i.job.source)}
        checked: dict[Path, Record | dict[str, Any]] = {}

        def check(job: Job) -> FileOutcome | None:
            checked[job.target] = verdict = self._check(images[job.target])
            return FileOutcome(job, "skipped") if isinstance(verdict, Record) else None

        for outcome in self.runner.stream((i.job for i in images.values()), check=check):
            verdict = checked.pop(outcome.job.target)
            yield verdict if isinstance(verdict, Record) else self._retry(outcome, "image", verdict)
        for item in items:
            if is_video(item.job.source):
                yield self.run(item)

    def _process(self, job: Job, kind: str) -> FileOutcome:
        if kind == "video":
            return self.runner.process_video(job)
        return self.runner.process(job)

    def _done(self, outcome: FileOutcome, attempt: int, base: dict[str, Any]) -> Record:
        job = outcome.job
        report = getattr(outcome, "report", None)
        frames = int(getattr(report, "frames_out", 0) or 0)
        return Record.for_job(
            job,
            "done",
            output_sha256=file_sha256(job.target),
            attempts=attempt,
            faces=outcome.faces,
            seconds=round(outcome.seconds, 4),
            frames=frames,
            **base,
        )


class Engine(Protocol):
    """Runs work items somewhere and reports each result to ``on_record`` as it arrives."""

    name: str

    def run(self, items: Sequence[WorkItem], on_record: OnRecord) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class LocalEngine:
    """All local cores: one :class:`JobWorker` on a thread pool (``config.workers``)."""

    name = "local"

    def __init__(
        self, config: RunConfig, settings: str, *, retries: int = 2, run_id: str = ""
    ) -> None:
        workers = config.workers or default_workers()
        self.config = dataclasses.replace(config, workers=workers)
        self.worker = JobWorker(self.config, settings, retries=retries, run_id=run_id)

    def run(self, items: Sequence[WorkItem], on_record: OnRecord) -> None:
        for record in self.worker.run_many(items):
            on_record(record)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "workers": self.config.workers}


@dataclass
class BatchSummary:
    """Everything a batch run reported, in arrival order."""

    run_id: str
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    audit: Path | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]

    def throughput(self) -> dict[str, float]:
        """Images/s and video frames/s over the run's wall time (processed files only)."""
        done = [r for r in self.records if r.status == "done"]
        wall = max(self.seconds, 1e-9)
        return {
            "images_per_s": round(sum(r.kind == "image" for r in done) / wall, 3),
            "video_fps": round(sum(r.frames for r in done if r.kind == "video") / wall, 3),
        }


def new_run_id() -> str:
    """``20250101T120000.123456Z-1a2b3c``: unique per run, and sorting the ids sorts the
    runs by start time (microseconds, so two runs within one second keep their order)."""
    now = time.time_ns() // 1000
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 1_000_000))
    return f"{stamp}.{now % 1_000_000:06d}Z-{secrets.token_hex(3)}"


def run_batch(
    jobs: Sequence[Job],
    dest: Path,
    config: RunConfig,
    engine: Engine,
    *,
    run_id: str,
    progress: OnRecord | None = None,
) -> BatchSummary:
    """Run ``jobs`` on ``engine``; returns the summary, the audit is ``summary.audit``.

    Each target gets at most one record per run (a batch replayed after a worker died
    cannot count twice); a job the engine never reported becomes ``failed``.
    """
    jobs = [Job(j.source.absolute(), j.target.absolute()) for j in jobs]
    dest = dest.absolute()
    settings = settings_hash(config)
    summary = BatchSummary(run_id)
    started = time.time()
    with RunManifest(dest) as manifest:
        completed = manifest.completed()
        items = [WorkItem(j, completed.get(str(j.target))) for j in jobs]
        seen: set[str] = set()

        def on_record(record: Record) -> None:
            if record.target in seen:
                return
            seen.add(record.target)
            manifest.append(record)
            summary.records.append(record)
            if progress is not None:
                progress(record)

        engine.run(items, on_record)
        for job in jobs:
            if str(job.target) not in seen:
                on_record(_lost(job, settings, run_id))
    summary.seconds = time.time() - started
    sweep_temp_files(jobs)
    summary.audit = _write_run_audit(summary, dest, config, settings, engine, started)
    return summary


def _lost(job: Job, settings: str, run_id: str) -> Record:
    reason = "no result from the engine (worker lost and retries exhausted)"
    return Record.for_job(job, "failed", reason=reason, settings=settings, run_id=run_id)


def sweep_temp_files(jobs: Iterable[Job]) -> list[Path]:
    """Remove temporary files a killed worker left beside the targets of ``jobs``
    (``.NAME.*.tmp`` from image/audit writes, ``.STEM.*.partialSUFFIX`` from video);
    call only when no worker of this run is writing any more."""
    by_dir: dict[Path, list[re.Pattern[str]]] = {}
    for job in jobs:
        t = job.target
        name, stem, suffix = re.escape(t.name), re.escape(t.stem), re.escape(t.suffix)
        pattern = re.compile(rf"^\.(?:{name}\..+\.tmp|{stem}\.[0-9a-f]+\.partial{suffix})$")
        by_dir.setdefault(t.parent, []).append(pattern)
    removed = []
    for folder, patterns in by_dir.items():
        try:
            names = [n for n in os.listdir(folder) if n.startswith(".")]
        except OSError:
            continue
        for n in names:
            if any(p.match(n) for p in patterns):
                (folder / n).unlink(missing_ok=True)
                removed.append(folder / n)
    if removed:
        log.info("removed %d temporary files left by interrupted workers", len(removed))
    return removed


def _write_run_audit(
    summary: BatchSummary,
    dest: Path,
    config: RunConfig,
    settings: str,
    engine: Engine,
    started: float,
) -> Path:
    path = dest / RUNS_DIR / f"{summary.run_id}.json"
    data = {
        "run_id": summary.run_id,
        "veil_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(summary.seconds, 3),
        "engine": engine.describe(),
        "settings": config.to_dict(),
        "settings_hash": settings,
        "counts": {s: summary.count(s) for s in ("done", "skipped", "failed")},
        "throughput": summary.throughput(),
        "failed": [
            {"source": r.source, "reason": r.reason, "attempts": r.attempts} for r in summary.failed
        ],
        "manifest": str(dest / RUNS_DIR / "manifest.jsonl"),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the run audit: {exc}") from exc
    return path
