"""The page's renders through the edit list's re-render API (:mod:`veil.edits`): the same
calls ``veil video --edits FILE`` and ``veil anonymize --edits FILE`` make."""

from __future__ import annotations

from pathlib import Path

from veil.config import RunConfig
from veil.edits import EditList
from veil.pipeline import Pipeline
from veil.review.render import Progress
from veil.video.pipeline import VideoConfig

__all__ = ["render_image", "render_video"]


def render_video(
    src: Path,
    dst: Path,
    edits: EditList,
    config: RunConfig,
    video: VideoConfig,
    progress: Progress,
) -> None:
    from veil.video.pipeline import anonymize_video

    def frames(done: int, total: int) -> None:
        progress(done / total if total else 0.0)

    anonymize_video(src, dst, config, video, progress=frames)


def render_image(
    src: Path, dst: Path, edits: EditList, config: RunConfig, pipeline: Pipeline
) -> None:
    from veil.io.images import read_image, write_image

    loaded = read_image(src)
    result = pipeline.process(loaded.image)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_image(dst, result.image, like=loaded, format=loaded.format)
