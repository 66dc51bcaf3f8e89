"""The page's renders through the edit list's re-render API: the calls ``veil video --edits
FILE`` (:func:`veil.video.anonymize_video` with ``edits``) and ``veil anonymize PHOTO
--edits FILE`` (:class:`veil.runner.ImageRunner` with ``edits``) make, so the page and the
command line write the same bytes."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from veil.config import RunConfig
from veil.edits import EditList
from veil.errors import InputError
from veil.files import FileOutcome, Job
from veil.review.render import Progress
from veil.video.pipeline import VideoConfig, anonymize_video

__all__ = ["render_photos", "render_video"]

#: share of a render's progress bar given to following tracked adds
FOLLOW_SHARE = 0.3


def render_video(
    src: Path,
    dst: Path,
    edits: EditList | None,
    config: RunConfig,
    video: VideoConfig,
    progress: Progress,
) -> None:
    """``veil video SRC -o DST [--edits FILE]``: ``dst`` replaced atomically when done.

    Tracked adds are followed first (:func:`~veil.video.edits.prepare_edits`, the first
    :data:`FOLLOW_SHARE` of the progress), so the bar moves during that pass too; the
    prepared list gives the same bytes as following inside :func:`anonymize_video`."""
    from veil.pipeline import Pipeline
    from veil.video.edits import prepare_edits

    pipeline = Pipeline.from_config(config)
    start = 0.0
    if edits is not None and any(a.track for a in edits.add):
        start = FOLLOW_SHARE

        def follow(done: int, total: int) -> None:
            progress(FOLLOW_SHARE * done / total if total else 0.0)

        edits = prepare_edits(src, edits, pipeline, progress=follow)

    def frames(done: int, total: int) -> None:
        progress(start + (1 - start) * (done / total if total else 0.0))

    anonymize_video(src, dst, config, video, pipeline=pipeline, progress=frames, edits=edits)


def render_photos(
    jobs: Sequence[Job],
    edits: dict[Path, EditList],
    config: RunConfig,
    progress: Progress,
) -> None:
    """``veil anonymize PHOTO -o OUT [--edits FILE]`` for every job (existing outputs
    replaced); InputError naming every photo that failed (those get no output)."""
    from veil.runner import ImageRunner

    overwrite = dataclasses.replace(config.output, overwrite=True)
    runner = ImageRunner(dataclasses.replace(config, output=overwrite), edits=edits)
    done = 0

    def step(outcome: FileOutcome) -> None:
        nonlocal done
        done += 1
        progress(done / max(len(jobs), 1))

    summary = runner.run(list(jobs), step)
    if summary.failed:
        errors = "; ".join(f"{o.job.source.name}: {o.error}" for o in summary.failed)
        raise InputError(f"{len(summary.failed)} photos failed (no output for them): {errors}")
