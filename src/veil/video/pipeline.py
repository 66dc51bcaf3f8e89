"""Anonymize video: detect -> track -> look-ahead -> mask -> anonymize on every frame.

:class:`FrameAnonymizer` is the per-stream core (files and live streams): frames go in
one by one and leave ``lookahead`` frames later, anonymized, with their faces.
:func:`anonymize_video` runs it on a file with five overlapping stages, each a thread::

    decode (VideoReader) --queue--> FrameAnonymizer.ahead (full detection on speed mode's
    every-N and scene-cut frames) --queue--> main: FrameAnonymizer.track (window search,
    track, look-ahead) --queue--> FrameAnonymizer.finish (anonymize) --queue--> encode

yuv420p video stays :class:`~veil.io.yuv.YUV420` throughout (see :mod:`veil.io.yuv`).

Queues are bounded, so memory is ``O(queue_size + lookahead)`` frames for any length.
Fail closed: a frame whose detection (or anonymization) fails is never written as it
was; it is fully obscured (``on_error="obscure"``) or left out (``"drop"``). Any other
error, or Ctrl-C, stops every stage and leaves no output file.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from veil.config import RunConfig
from veil.consent import TrackConsent
from veil.errors import BackendError, ConfigError, InputError, VeilError
from veil.io.video import VideoReader
from veil.io.video_writer import VideoWriter, check_writer_options
from veil.io.yuv import YUV420, as_rgb
from veil.pipeline import Pipeline
from veil.track import LookaheadBuffer, SpeedMode, Tracker
from veil.track.search import search_windows
from veil.types import Faces, check_image
from veil.video.audit import Tally, audit_header, write_audit

if TYPE_CHECKING:
    from veil.edits import Box, EditList

Image = np.ndarray | YUV420  # RGB uint8 (H, W, 3), or a yuv420p frame kept as decoded
Pending = tuple["ProcessedFrame", Faces]  # a tracked frame (input image) and its final faces

__all__ = ["FrameAnonymizer", "ProcessedFrame", "VideoConfig", "VideoReport", "anonymize_video"]
__all__ += ["obscure"]

log = logging.getLogger(__name__)

ON_ERROR = ("obscure", "drop")
_POLL = 0.05  # seconds between checks of the stop event while a queue is full or empty


@dataclass(frozen=True)
class VideoConfig:
    """How a video is tracked and encoded (the pipeline itself is a :class:`RunConfig`).

    Attributes:
        detect_every: speed mode: full detection every N frames, tracking in between
            (full detection also on scene cuts); 1 detects on every frame. The default
            8 relies on ``lookahead >= detect_every - 1`` to mask a face that appears
            between two detections from its first frame; these key-frame passes look
            harder for small faces (:meth:`~veil.detect.base.Detector.detect_keyframe`).
        search: between full detections, confirm uncertain tracks (new, missed, or
            predicted for long) by running the detector on windows around them; off, any
            uncertain track forces a full detection.
        max_age: frames a lost face stays masked at its predicted box (forward fill).
        lookahead: frames held back so a face found late is masked in them too
            (backward fill); 0 disables it. Output lags input by this many frames.
        on_error: a frame whose detection fails is ``"obscure"``-d entirely or
            ``"drop"``-ped (the output then has fewer frames; the others keep their pts).
        codec, crf, preset, keep_audio, keep_metadata: see
            :class:`~veil.io.video_writer.VideoWriter`.
        queue_size: frames each inter-stage queue holds.
        yuv: keep yuv420p frames as decoded (RGB only for detection and face crops;
            pixels away from faces are copied exactly); off, every frame goes through RGB.
        allow_partial: a video whose container declares more frames than could be
            decoded (truncated, corrupt) still gets an output of the frames that were
            decoded; off (default), it fails with no output, naming how many were lost.
    """

    detect_every: int = 8
    search: bool = True
    max_age: int = 15
    lookahead: int = 8
    on_error: str = "obscure"
    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    keep_audio: bool = True
    keep_metadata: bool = False
    queue_size: int = 8
    yuv: bool = True
    allow_partial: bool = False

    def __post_init__(self) -> None:
        checks = {
            "detect_every": (self.detect_every >= 1, ">= 1"),
            "queue_size": (self.queue_size >= 1, ">= 1"),
            "max_age": (self.max_age >= 0, ">= 0"),
            "lookahead": (self.lookahead >= 0, ">= 0"),
            "on_error": (self.on_error in ON_ERROR, " or ".join(map(repr, ON_ERROR))),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"VideoConfig: {name}={getattr(self, name)!r}; expected {rule}")
        check_writer_options(self.codec, self.crf, self.preset)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def obscure(image: np.ndarray, *, cells: int = 6) -> np.ndarray:
    """The whole RGB ``uint8 (H, W, 3)`` image reduced to about ``cells`` colour cells
    across (area average) and smoothly enlarged back: nothing in it stays recognizable."""
    h, w = image.shape[:2]
    small = (max(1, min(cells, w)), max(1, min(round(cells * h / w), h)))
    tiny = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(tiny, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class ProcessedFrame:
    """One frame leaving :class:`FrameAnonymizer`.

    Attributes:
        index: the index it was pushed with.
        image: anonymized, of the kind pushed (RGB ``uint8 (H, W, 3)`` or YUV420); fully
            obscured when ``error`` is set, ``None`` when the ``"drop"`` policy leaves it
            out. Never the input as it was.
        faces: what was masked (clipped to the frame): ``track_id`` and
            ``data["source"]`` in ``{"detected", "predicted", "backfilled"}``.
        detected: the full detector ran on it and succeeded.
        error: why detection or anonymization failed on it, else ``None``.
        meta: whatever was pushed with it (e.g. pts and duration).
        searched: the detector ran on windows around the tracks (speed mode) and
            succeeded.
        kept: faces a consent list left as they are (:class:`~veil.consent.TrackConsent`),
            not in ``faces``.
        skipped: faces regions left visible in this frame (:mod:`veil.regions`), not in
            ``faces``.
        removed: faces an edit list's ``remove`` left as they are (``data["edit"]``).
        edit_changes: ``(entry, box)`` for each face an edit list changed on this frame.
    """

    index: int
    image: Image | None
    faces: Faces
    detected: bool
    error: str | None = None
    meta: Any = None
    searched: bool = False
    kept: Faces = field(default_factory=Faces.empty)
    skipped: Faces = field(default_factory=Faces.empty)
    removed: Faces = field(default_factory=Faces.empty)
    edit_changes: list[tuple[str, Box]] = field(default_factory=list)


@dataclass(frozen=True)
class Ahead:
    """A frame's full-detector pass worked out ahead of the tracker
    (:meth:`FrameAnonymizer.ahead`): ``full`` is speed mode's frame-only verdict
    (:meth:`~veil.track.SpeedMode.full_pass`); when set, ``faces`` or ``error``."""

    full: bool
    faces: Faces | None = None
    error: str | None = None


class FrameAnonymizer:
    """Stateful anonymizer for one stream of frames: tracking, speed mode, backward fill.

    ``push(image, index)`` returns the frames that leave the look-ahead buffer (0 or 1,
    ``video.lookahead`` frames late), ``flush()`` the rest at the end of the stream.
    Not thread-safe: one stream, one caller.

    With a consent list on the pipeline, the decision to keep a face is per track
    (:class:`~veil.consent.TrackConsent`), made in :meth:`finish` in frame order.
    ``edits`` (an edit list, tracked adds resolved: :mod:`veil.video.edits`) is applied
    in :meth:`finish`, after the consent list.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        video: VideoConfig | None = None,
        *,
        edits: EditList | None = None,
    ) -> None:
        self.pipeline, self.video = pipeline, video or VideoConfig()
        self.tracker = Tracker(max_age=self.video.max_age)
        self.speed = SpeedMode(
            self.tracker, every_n=self.video.detect_every, search=self.video.search
        )
        # holds frames not yet anonymized: ProcessedFrame with the input image
        self.buffer: LookaheadBuffer[ProcessedFrame] = LookaheadBuffer(self.video.lookahead)
        self._retry = False  # detect on the frame after a failure, whatever speed mode says
        consent = pipeline.consent
        self.consent = TrackConsent(consent) if consent is not None else None
        self.edits = edits
        for_stream = getattr(pipeline.target, "for_stream", None)
        if for_stream is not None:  # --target person: regions carried from frame to frame
            self.pipeline = copy.copy(pipeline)
            self.pipeline.target = for_stream()

    def push(self, image: Image, index: int, *, meta: Any = None) -> list[ProcessedFrame]:
        """Take one frame (RGB ``uint8 (H, W, 3)`` or :class:`~veil.io.yuv.YUV420`);
        return those leaving the buffer, anonymized."""
        return [self.finish(*p) for p in self.track(image, index, meta=meta)]

    def flush(self) -> list[ProcessedFrame]:
        """Return every buffered frame, anonymized; call at the end of the stream."""
        return [self.finish(*p) for p in self.track_flush()]

    def ahead(self, image: Image, index: int) -> Ahead:
        """The part of :meth:`track` that needs no tracks: speed mode's every-N-frames
        and scene-cut rule and, on those frames, the full detector. Video files run it in
        a thread of its own a few frames ahead, so full detections overlap the tracking,
        window searches and anonymization of the frames before. Call it once per frame,
        in order, and pass every result to :meth:`track`."""
        if not isinstance(image, YUV420):
            check_image(image, name=f"frame {index}")
        if not self.speed.full_pass(index, image.y if isinstance(image, YUV420) else image):
            return Ahead(False)
        try:
            return Ahead(True, self.pipeline.detect_keyframe(as_rgb(image)))
        except VeilError as exc:
            return Ahead(True, error=str(exc))

    def track(
        self, image: Image, index: int, *, meta: Any = None, ahead: Ahead | None = None
    ) -> list[Pending]:
        """:meth:`push` without the anonymization: the frames leaving the buffer with
        their final faces, for :meth:`finish` (possibly in another thread, in order).
        ``ahead``: this frame's :meth:`ahead` result, when the caller runs it."""
        if not isinstance(image, YUV420):
            check_image(image, name=f"frame {index}")
        if ahead is None:  # no faces in it: a full pass, if any, runs here
            grey = image.y if isinstance(image, YUV420) else image
            ahead = Ahead(self.speed.full_pass(index, grey))
        plan = "detect" if self._retry or ahead.full else self.speed.between()
        error = None
        try:
            if plan == "detect":
                if ahead.error is not None:
                    raise BackendError(ahead.error)
                found = ahead.faces
                if found is None:
                    found = self.pipeline.detect_keyframe(as_rgb(image))
                faces = self.tracker.update(found)
            elif plan == "search":
                ids = self.tracker.to_confirm()
                boxes = self.tracker.upcoming(ids)
                found = search_windows(self.pipeline.detect_window, image, boxes)
                faces = self.tracker.update(found, searched=ids)
            else:
                faces = self.tracker.predict_only()
        except VeilError as exc:
            log.warning("frame %d: detection failed (%s): %s", index, self.video.on_error, exc)
            error, faces = str(exc), self.tracker.predict_only()
        self._retry = error is not None
        ok = error is None
        item = ProcessedFrame(
            index,
            image,
            Faces.empty(),
            plan == "detect" and ok,
            error,
            meta,
            plan == "search" and ok,
        )
        return self.buffer.push(item, faces)

    def track_flush(self) -> list[Pending]:
        """:meth:`flush` without the anonymization (see :meth:`track`)."""
        return self.buffer.flush()

    def finish(self, item: ProcessedFrame, faces: Faces) -> ProcessedFrame:
        """Anonymize ``item.image`` (the input) with its final ``faces``, or apply the
        ``on_error`` policy; boxes are clipped to the frame here. Frames of one stream
        must be finished in order (per-track state of some anonymizers)."""
        assert item.image is not None
        source, faces, error = item.image, faces.clip(item.image.shape[:2]), item.error
        image: Image | None = None
        kept = skipped = removed = Faces.empty()
        changes: list[tuple[str, Box]] = []
        if error is None:
            try:
                faces, skipped = self.pipeline.apply_regions(faces, source.shape[:2])
                if self.consent is not None:
                    faces, kept = self.consent.split(lambda: as_rgb(source), faces)
                if self.edits is not None:
                    done = self.edits.apply(item.index, faces, shape=source.shape[:2])
                    faces, removed, changes = done.faces, done.removed, done.changes
                if isinstance(source, YUV420):
                    image = self.pipeline.anonymize_yuv(source, faces)
                else:
                    image = self.pipeline.anonymize(source, faces).image
            except VeilError as exc:
                log.warning("frame %d: anonymization failed (%s)", item.index, self.video.on_error)
                error = str(exc)
        if error is not None and self.video.on_error == "obscure":
            image = obscure(source.rgb()) if isinstance(source, YUV420) else obscure(source)
            image = YUV420.from_rgb(image) if isinstance(source, YUV420) else image
        if error is not None:
            kept = skipped = removed = Faces.empty()
            changes = []
        return dataclasses.replace(
            item,
            image=image,
            faces=faces,
            error=error,
            kept=kept,
            skipped=skipped,
            removed=removed,
            edit_changes=changes,
        )


@dataclass(frozen=True)
class VideoReport:
    """What :func:`anonymize_video` did.

    ``frames_detected``: frames the full detector ran on; ``frames_searched``: frames
    where it ran only on windows around tracks (speed mode); ``frames_tracked_only``:
    frames where at least one face was masked only by tracking (predicted or backfilled
    box, the detector did not find it there);
    ``frames_without_detection``: frames with nothing masked at all (no face detected or
    tracked); ``detection_failures``: frames obscured or dropped by the ``on_error`` policy;
    ``frames_expected``: frames the container declares (0 = it does not say).
    """

    frames_in: int
    frames_out: int
    frames_expected: int
    decode_errors: tuple[tuple[int, str], ...]
    frames_detected: int
    frames_searched: int
    frames_tracked_only: int
    frames_without_detection: int
    detection_failures: int
    tracks: int
    seconds: float
    fps: float


class _Stopped(Exception):
    """A stage noticed the stop event."""


class _Control:
    """Stop event and errors shared by the stages; queue calls that never hang."""

    def __init__(self) -> None:
        self.stop, self.errors = threading.Event(), list[BaseException]()

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Full):
                return q.put(item, timeout=_POLL)
        raise _Stopped

    def get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            with contextlib.suppress(queue.Empty):
                return q.get(timeout=_POLL)
        raise _Stopped

    def thread(self, name: str, work: Callable[[], None]) -> threading.Thread:
        """A started daemon thread running ``work``; its error stops every stage."""

        def body() -> None:
            try:
                work()
            except _Stopped:
                pass
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()

        t = threading.Thread(target=body, name=name, daemon=True)
        t.start()
        return t


_END = object()  # end-of-stream sentinel


def _decode(reader: VideoReader, out: queue.Queue[Any], ctl: _Control) -> None:
    with reader:
        for item in reader:
            ctl.put(out, item)
    ctl.put(out, _END)


def _encode(writer: VideoWriter, inbox: queue.Queue[Any], ctl: _Control) -> None:
    while (pf := ctl.get(inbox)) is not _END:
        writer.write(pf.image, *pf.meta)


def anonymize_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    config: RunConfig,
    video: VideoConfig | None = None,
    *,
    pipeline: Pipeline | None = None,
    progress: Callable[[int, int], None] | None = None,
    audit: str | os.PathLike[str] | None = None,
    edits: EditList | None = None,
) -> VideoReport:
    """Anonymize every frame of ``src`` into ``dst`` (audio copied, timing kept).

    ``pipeline`` (built from ``config`` when ``None``) may be shared; ``progress(done,
    total)`` is called after each frame, from the anonymizing thread (``total`` 0 if
    unknown);
    ``audit`` names a JSON file written after the video. Raises InputError (unreadable
    ``src``), OutputError, ConfigError; on any error or KeyboardInterrupt ``dst`` is not
    created (an existing ``dst`` is left as it was). A failing audit write raises
    OutputError but leaves the finished video.

    The audit holds input/output sha256, ``settings`` (pipeline + video), ``summary``
    (this report), ``decode_errors``, ``frame_runs`` (inclusive ``[first, last]`` index
    runs of ``tracked_only``, ``no_face`` and ``detection_failed`` frames) and ``frames``,
    one line each: ``{index, pts, detected, faces: [{box, score, track_id, source}]}``
    plus ``error`` and ``dropped`` on failed frames.

    ``edits`` (an edit list, :mod:`veil.edits`): checked against the clip, tracked adds
    followed in a pre-pass (:func:`veil.video.edits.prepare_edits`), then applied to
    every frame; the audit then has ``edits`` (each entry with the frames and boxes it
    changed), faces with ``edit``/``method`` and ``removed`` per frame. An entry past
    the last decoded frame raises InputError (no output).
    """
    src, dst, video = Path(src), Path(dst), video or VideoConfig()
    pipeline = pipeline or Pipeline.from_config(config)
    if edits is not None:
        from veil.video.edits import prepare_edits

        edits = prepare_edits(src, edits, pipeline)
    reader = VideoReader(src, yuv=video.yuv)
    start = time.perf_counter()
    writer = VideoWriter(dst, reader.info, source=src, **_writer_options(video))
    with contextlib.ExitStack() as stack:
        lines = (
            stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8")) if audit else None
        )
        tally = Tally(lines, edits=edits)
        frames = FrameAnonymizer(pipeline, video, edits=edits)
        try:
            _run_stages(reader, writer, frames, tally, progress)
            _check_complete(src, reader, video.allow_partial)
            if edits is not None:
                edits.check_media(
                    width=reader.info.width,
                    height=reader.info.height,
                    frame_count=reader.frames_read,
                )
            writer.close()
        except BaseException:
            writer.abort()
            raise
        report = _report(reader, tally, time.perf_counter() - start)
        if audit is not None:
            header = audit_header(src, dst, pipeline, video, report, tally)
            write_audit(Path(audit), header, lines)
    return report


def _check_complete(src: Path, reader: VideoReader, allow_partial: bool) -> None:
    """Lost frames are a failure: fewer frames decoded than the container declares
    raises InputError (the caller then writes nothing) unless ``allow_partial``."""
    expected, read = reader.info.frame_count, reader.frames_read
    if expected and read < expected:
        detail = f"; first error: {reader.errors[0][1]}" if reader.errors else ""
        message = f"{src}: only {read} of {expected} frames could be decoded{detail}"
        if not allow_partial:
            raise InputError(f"{message} (--allow-partial keeps the frames that were decoded)")
        log.warning("%s; writing the %d decoded frames (allow_partial)", message, read)


def _writer_options(video: VideoConfig) -> dict[str, Any]:
    keys = ("codec", "crf", "preset", "keep_audio", "keep_metadata")
    return {k: getattr(video, k) for k in keys}


def _run_stages(
    reader: VideoReader,
    writer: VideoWriter,
    frames: FrameAnonymizer,
    tally: Tally,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Five stages, four threads and this one: decode -> full detections (speed mode's
    every-N and scene-cut frames, :meth:`FrameAnonymizer.ahead`) -> tracking and window
    searches (this thread) -> anonymization -> encode. Bounded queues between them, so
    the full detection of one frame overlaps the searches, anonymization and encoding of
    the frames before it."""
    ctl, size, total = _Control(), frames.video.queue_size, reader.info.frame_count
    inbox: queue.Queue[Any] = queue.Queue(size)
    detected: queue.Queue[Any] = queue.Queue(size)
    tracked: queue.Queue[Any] = queue.Queue(size)
    outbox: queue.Queue[Any] = queue.Queue(size)

    def anonymize() -> None:
        while (pending := ctl.get(tracked)) is not _END:
            pf = frames.finish(*pending)
            tally.add(pf)
            if pf.image is not None:
                ctl.put(outbox, pf)
            if progress is not None:
                progress(tally.seen, total)
        ctl.put(outbox, _END)

    def detect_ahead() -> None:
        while (df := ctl.get(inbox)) is not _END:
            ctl.put(detected, (df, frames.ahead(df.image, df.index)))
        ctl.put(detected, _END)

    threads = [
        ctl.thread("veil-decode", lambda: _decode(reader, inbox, ctl)),
        ctl.thread("veil-detect", detect_ahead),
        ctl.thread("veil-anonymize", anonymize),
        ctl.thread("veil-encode", lambda: _encode(writer, outbox, ctl)),
    ]

    def hand_over(pending: list[Pending]) -> None:
        for item in pending:
            ctl.put(tracked, item)

    try:
        while (item := ctl.get(detected)) is not _END:
            df, ahead = item
            hand_over(frames.track(df.image, df.index, meta=(df.pts, df.duration), ahead=ahead))
        hand_over(frames.track_flush())
        ctl.put(tracked, _END)
        threads[-1].join()
    except _Stopped:
        pass
    finally:
        ctl.stop.set()
        for t in threads:
            t.join(timeout=30)
            if t.is_alive():
                log.error("thread %s did not stop within 30 s", t.name)
    if ctl.errors:
        raise ctl.errors[0]


def _report(reader: VideoReader, tally: Tally, seconds: float) -> VideoReport:
    c = tally.counts
    return VideoReport(
        frames_in=reader.frames_read,
        frames_out=c["out"],
        frames_expected=reader.info.frame_count,
        decode_errors=tuple(reader.errors),
        frames_detected=c["detected"],
        frames_searched=c["searched"],
        frames_tracked_only=c["tracked_only"],
        frames_without_detection=c["no_face"],
        detection_failures=c["failed"],
        tracks=tally.max_track,
        seconds=seconds,
        fps=c["out"] / seconds if seconds > 0 else 0.0,
    )
