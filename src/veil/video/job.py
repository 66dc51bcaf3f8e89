"""One video file as a job, for the command line, folders (:mod:`veil.runner`), batches
and the service: :func:`run_video_job` with a progress bar, an optional audit file, and no
partial output left behind."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veil.config import RunConfig
from veil.errors import ConfigError, VeilError
from veil.files import FileOutcome, Job, audit_path

if TYPE_CHECKING:
    from collections.abc import Callable

    from veil.edits import EditList
    from veil.pipeline import Pipeline
    from veil.video.pipeline import VideoConfig, VideoReport

__all__ = ["VideoOutcome", "default_video_target", "run_video_job"]


@dataclass(frozen=True)
class VideoOutcome(FileOutcome):
    """A :class:`FileOutcome` (``faces`` = number of face tracks) plus the video report."""

    report: VideoReport | None = None


def default_video_target(source: Path) -> Path:
    """``clip.mp4`` -> ``clip_anonymized.mp4`` beside it."""
    return source.with_name(f"{source.stem}_anonymized{source.suffix}")


def run_video_job(
    src: Path,
    dst: Path,
    config: RunConfig,
    video_config: VideoConfig | None = None,
    quiet: bool = False,
    *,
    pipeline: Pipeline | None = None,
    edits: EditList | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VideoOutcome:
    """Anonymize one video for the command line; never leaves a partial output.

    An existing ``dst`` is ``skipped`` unless ``config.output.overwrite``; ``report``
    writes ``DST.audit.json``. A failing video (``VeilError`` other than
    ``ConfigError``) becomes a ``failed`` outcome; ``ConfigError`` and Ctrl-C propagate.
    A tqdm bar (frames/s, ETA) goes to stderr unless ``quiet``.

    ``edits``: an edit list (:mod:`veil.edits`) applied to every frame (a malformed or
    out-of-range entry makes a ``failed`` outcome naming it); ``progress(done, total)``
    is called after each anonymized frame (``total`` 0 if unknown), from a worker thread.
    """
    from veil.video.pipeline import anonymize_video

    job, out = Job(src, dst), config.output
    if dst.exists() and not out.overwrite:
        return VideoOutcome(job, "skipped")
    start = time.perf_counter()
    bar = None if quiet else _progress_bar(src)  # tqdm is imported only for a bar

    def on_frame(done: int, total: int) -> None:
        if progress is not None:
            progress(done, total)
        if bar is None:
            return
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        audit = audit_path(dst) if out.report else None
        kwargs: dict[str, Any] = {"pipeline": pipeline, "progress": on_frame, "audit": audit}
        if edits is not None:
            kwargs["edits"] = edits
        report = anonymize_video(src, dst, config, video_config, **kwargs)
    except ConfigError:
        raise
    except VeilError as exc:
        return VideoOutcome(job, "failed", error=str(exc), seconds=time.perf_counter() - start)
    finally:
        if bar is not None:
            bar.close()
    return VideoOutcome(job, "done", report.tracks, seconds=report.seconds, report=report)


def _progress_bar(src: Path) -> Any:
    from tqdm import tqdm

    return tqdm(unit="frame", file=sys.stderr, desc=src.name, leave=False)
