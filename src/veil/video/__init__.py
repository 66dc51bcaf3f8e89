"""Video files and live streams: the frame anonymizer shared by both, the threaded file
pipeline, its audit, live sources and sinks, and the file job.

Modules: :mod:`~veil.video.pipeline` (:class:`VideoConfig`, :class:`FrameAnonymizer`,
:func:`anonymize_video`), :mod:`~veil.video.audit` (per-frame audit JSON),
:mod:`~veil.video.live` (webcams and network streams), :mod:`~veil.video.job` (one file as
a job with progress and outcome, for the CLI, folders, batches and the service). The
package imports neither :mod:`veil.runner` nor :mod:`veil.commands`: they import it.
"""

from veil.video.pipeline import (
    Ahead,
    FrameAnonymizer,
    Pending,
    ProcessedFrame,
    VideoConfig,
    VideoReport,
    anonymize_video,
    obscure,
)

__all__ = [
    "Ahead",
    "FrameAnonymizer",
    "Pending",
    "ProcessedFrame",
    "VideoConfig",
    "VideoReport",
    "anonymize_video",
    "obscure",
]
