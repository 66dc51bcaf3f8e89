"""Anonymize a live source (webcam, network stream, file) into a window, a file or a URL.

::

    open_source(spec) --(rgb, pts)--> FrameAnonymizer(lookahead=0) --> LiveSink / preview

Latency first: the look-ahead buffer is off (``lookahead=0``), so each frame leaves as soon
as it is anonymized; a face found late is masked from that frame on (tracking still keeps a
lost face masked for ``max_age`` frames). Speed mode (``detect_every``) works as for files.
The loop is serial (read, anonymize, encode): when it is slower than the source, a network
source's socket buffer absorbs the difference and FFmpeg may drop datagrams (UDP).

Fail closed: only :class:`~veil.video.ProcessedFrame` images are shown or written, and a
frame whose detection or anonymization fails is fully obscured (never dropped or passed
as it was). Audio is not carried over.

Timeouts: network sources are opened with PyAV's ``timeout=(open, read)`` (an interrupt
callback that works for every protocol) plus FFmpeg's ``rw_timeout`` (microseconds, any
protocol) and ``timeout`` (microseconds: UDP/TCP read timeout, RTSP socket timeout), so a
source that never sends, or stops sending, raises instead of hanging. A dropped source is
reopened up to ``reconnect`` times (backoff 0.5 s, 1 s, 2 s, ... capped at 8 s); after
that :class:`~veil.errors.InputError` names the source. A source that *ends* (end of file,
the sender closed a TCP stream) ends the run normally when no reconnects are allowed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np

from veil.config import RunConfig
from veil.errors import InputError, OutputError
from veil.io.video_writer import encoder_options
from veil.pipeline import Pipeline
from veil.video.pipeline import FrameAnonymizer, VideoConfig

__all__ = ["LiveReport", "LiveSink", "is_webcam", "open_source", "run_live"]

log = logging.getLogger(__name__)

_AV_ERRORS = (av.FFmpegError, OSError, ValueError)
_URL_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "http": "mpegts"}
_URL_FORMATS |= {"rtp": "rtp_mpegts", "rtsp": "rtsp", "rtmp": "flv", "rtmps": "flv"}
_WINDOW = "veil live (q to quit)"
_MAX_BACKOFF = 8.0


def is_webcam(spec: str | int) -> bool:
    """An ``int`` or a string of digits names a webcam index."""
    return isinstance(spec, int) or spec.strip().isdigit()


def _is_network(spec: str) -> bool:
    return "://" in spec and not spec.startswith("file:")


def open_source(spec: str | int, *, timeout: float = 10.0) -> Iterator[tuple[np.ndarray, float]]:
    """Yield ``(rgb uint8 (H, W, 3), pts seconds)`` from a webcam index or anything FFmpeg
    opens (a file path, ``rtsp://``, ``http://``, ``udp://``, ``tcp://``, ...).

    Raises InputError naming ``spec`` when it cannot be opened, when no data arrives for
    ``timeout`` seconds, or on a read error. Webcam pts are seconds since opening; stream
    pts are the source's, in seconds (they may start anywhere).
    """
    return _webcam(int(spec)) if is_webcam(spec) else _stream(str(spec), timeout)


def _webcam(index: int) -> Iterator[tuple[np.ndarray, float]]:
    cap = cv2.VideoCapture(index)
    try:
        if not cap.isOpened():
            raise InputError(f"webcam {index}: cannot open the camera")
        start = time.monotonic()
        while True:
            ok, bgr = cap.read()
            if not ok:
                raise InputError(f"webcam {index}: the camera stopped delivering frames")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic() - start
    finally:
        cap.release()


def _stream(url: str, timeout: float) -> Iterator[tuple[np.ndarray, float]]:
    options = {}
    if _is_network(url):
        micros = str(int(timeout * 1_000_000))
        options = {"rw_timeout": micros, "timeout": micros}
    try:
        container = av.open(url, "r", options=options, timeout=(timeout, timeout))
    except _AV_ERRORS as exc:
        raise InputError(f"{url}: cannot open the source: {_reason(exc, timeout)}") from exc
    with container:
        if not container.streams.video:
            raise InputError(f"{url}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = Fraction(stream.time_base or Fraction(1, 90000))
        frames = container.decode(stream)
        count, start = 0, time.monotonic()
        while True:
            try:
                vf = next(frames)
            except StopIteration:
                return
            except _AV_ERRORS as exc:
                message = f"{url}: the source dropped after {count} frames: {_reason(exc, timeout)}"
                raise InputError(message) from exc
            pts = float(vf.pts * tb) if vf.pts is not None else time.monotonic() - start
            count += 1
            yield vf.to_ndarray(format="rgb24"), pts


def _reason(exc: BaseException, timeout: float) -> str:
    """PyAV reports its timeout as FFmpeg's EXIT ("Immediate exit requested")."""
    if isinstance(exc, av.ExitError) or "Immediate exit" in str(exc):
        return f"no data for {timeout:g} s (timeout)"
    return str(exc)


class LiveSink:
    """Encode RGB frames (H.264) to a file or a network URL, opened at the first frame.

    A file's container comes from its suffix. URLs: ``udp://`` / ``tcp://`` / ``srt://`` /
    ``http://`` get MPEG-TS (``pkt_size=1316`` added to UDP), ``rtsp://`` RTSP (the server
    must accept ANNOUNCE/RECORD, e.g. MediaMTX), ``rtmp://`` FLV. Network outputs use
    ``tune=zerolatency`` and a key frame every second so a late viewer can start.
    ``write(image, seconds)``: timestamps that do not increase are moved one frame on.
    A live recording keeps what was written when the run stops early: every written frame
    is anonymized already. Raises OutputError.
    """

    def __init__(self, target: str | Path, *, fps: float = 25.0, video: VideoConfig) -> None:
        self.target, self.fps, self.video = str(target), fps or 25.0, video
        self.network = _is_network(self.target)
        self.frames_written = 0
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._last = -1
        self._size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        target, fmt = self.target, None
        if self.network:
            fmt = _URL_FORMATS.get(target.split("://", 1)[0].lower(), "mpegts")
            if target.startswith("udp://") and "pkt_size" not in target:
                target += ("&" if "?" in target else "?") + "pkt_size=1316"
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        opts = encoder_options(self.video.codec, self.video.crf, self.video.preset)
        if self.network and opts:  # x264/x265
            opts |= {"tune": "zerolatency", "g": str(max(1, round(self.fps)))}
        try:
            self._out = av.open(target, "w", format=fmt, timeout=10.0)
            rate = Fraction(self.fps).limit_denominator(1001)
            stream = cast(av.VideoStream, self._out.add_stream(self.video.codec, rate, opts))
            stream.width, stream.height, stream.pix_fmt = (
                width - width % 2,
                height - height % 2,
                "yuv420p",
            )
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
            self._stream, self._size = stream, (stream.width, stream.height)
        except _AV_ERRORS as exc:
            self.close()
            raise OutputError(f"{self.target}: cannot open the output: {exc}") from exc

    def write(self, image: np.ndarray, seconds: float) -> None:
        """Encode one anonymized RGB ``uint8 (H, W, 3)`` frame shown at ``seconds``."""
        if self._out is None:
            self._open(image.shape[1], image.shape[0])
        assert self._out is not None and self._stream is not None and self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:  # odd size, or a new source size
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        pts = round(seconds * 1000)
        if pts <= self._last:
            pts = self._last + max(1, round(1000 / self.fps))
        self._last = pts
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vf.pts, vf.time_base = pts, Fraction(1, 1000)
        try:
            self._out.mux(self._stream.encode(vf))
        except _AV_ERRORS as exc:
            raise OutputError(
                f"{self.target}: cannot write frame {self.frames_written}: {exc}"
            ) from exc
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the output (safe to call twice)."""
        out, self._out = self._out, None
        if out is None:
            return
        try:
            if self._stream is not None and self.frames_written:
                out.mux(self._stream.encode(None))
        except _AV_ERRORS as exc:
            log.warning("%s: flushing the encoder: %s", self.target, exc)
        finally:
            try:
                out.close()
            except _AV_ERRORS as exc:
                log.warning("%s: closing: %s", self.target, exc)


@dataclass(frozen=True)
class LiveReport:
    """What :func:`run_live` did. ``ended``: ``"eof"`` (the source ended), ``"max_frames"``,
    ``"stopped"`` (the stop event) or ``"quit"`` (q in the preview window)."""

    frames_in: int
    frames_out: int
    detection_failures: int
    frames_with_faces: int
    reconnects: int
    seconds: float
    fps: float
    ended: str


class _Run:
    """Counters and the outputs of one :func:`run_live` call."""

    def __init__(self, sink: LiveSink | None, preview: bool) -> None:
        self.sink, self.preview = sink, preview
        self.counts = dict.fromkeys(("in", "out", "failed", "faces", "reconnects"), 0)
        self.offset = 0.0  # added to source pts so they keep increasing across reconnects
        self.last_t = -1.0

    def emit(self, image: np.ndarray, t: float, error: str | None, faces: int) -> bool:
        """Write/show one anonymized frame; ``False`` when the viewer pressed q."""
        self.counts["out"] += 1
        self.counts["failed"] += error is not None
        self.counts["faces"] += faces > 0
        self.last_t = t
        if self.sink is not None:
            self.sink.write(image, t)
        if self.preview:
            cv2.imshow(_WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            return (cv2.waitKey(1) & 0xFF) != ord("q")
        return True


def run_live(
    source: str | int,
    config: RunConfig,
    video: VideoConfig | None = None,
    *,
    output: str | Path | None = None,
    preview: bool = False,
    max_frames: int | None = None,
    reconnect: int = 0,
    stop: threading.Event | None = None,
    timeout: float = 10.0,
    fps: float | None = None,
    pipeline: Pipeline | None = None,
) -> LiveReport:
    """Anonymize ``source`` (see :func:`open_source`) frame by frame until it ends,
    ``max_frames`` frames were processed, ``stop`` is set or q is pressed in the preview.

    ``output``: a file or URL for :class:`LiveSink` (``fps`` its nominal rate, default
    25); ``preview`` shows a window. ``video``'s ``lookahead`` is forced to 0 and its
    ``on_error`` to ``"obscure"``. ``pipeline`` defaults to one built from ``config``.
    Raises InputError (source unusable after ``reconnect`` attempts), OutputError.
    """
    # no look-ahead to backfill a face found late: detect on every frame unless told
    video = video or VideoConfig(detect_every=1)
    video = dataclasses.replace(video, lookahead=0, on_error="obscure")
    frames = FrameAnonymizer(pipeline or Pipeline.from_config(config), video)
    sink = LiveSink(output, fps=fps or 25.0, video=video) if output is not None else None
    run, start, ended = _Run(sink, preview), time.perf_counter(), "eof"
    try:
        ended = _loop(source, frames, run, max_frames, reconnect, stop, timeout)
    finally:
        if sink is not None:
            sink.close()
        if preview:
            cv2.destroyWindow(_WINDOW)
    seconds, c = time.perf_counter() - start, run.counts
    return LiveReport(
        frames_in=c["in"],
        frames_out=c["out"],
        detection_failures=c["failed"],
        frames_with_faces=c["faces"],
        reconnects=c["reconnects"],
        seconds=seconds,
        fps=c["out"] / seconds if seconds > 0 else 0.0,
        ended=ended,
    )


def _loop(
    source: str | int,
    frames: FrameAnonymizer,
    run: _Run,
    max_frames: int | None,
    reconnect: int,
    stop: threading.Event | None,
    timeout: float,
) -> str:
    """Read, anonymize and emit until the end; reopen a dropped source. Returns ``ended``."""
    attempt = 0
    while True:
        first: float | None = None
        try:
            for image, pts in open_source(source, timeout=timeout):
                if first is None:  # a reopened source may restart its clock
                    first = pts
                    run.offset = max(0.0, run.last_t + 1 / 25) - pts if run.counts["in"] else 0.0
                attempt = 0  # frames arrive again: the next drop gets the full budget
                index = run.counts["in"]
                run.counts["in"] += 1
                for pf in frames.push(image, index, meta=pts + run.offset):
                    # RGB in, RGB out; on_error="obscure" never drops
                    assert isinstance(pf.image, np.ndarray)
                    if not run.emit(pf.image, pf.meta, pf.error, len(pf.faces)):
                        return "quit"
                if max_frames is not None and run.counts["in"] >= max_frames:
                    return "max_frames"
                if stop is not None and stop.is_set():
                    return "stopped"
            if reconnect == 0 or is_webcam(source):
                return "eof"
            error: InputError = InputError(f"{source}: the source ended")
        except InputError as exc:
            error = exc
        if attempt >= reconnect:
            if reconnect == 0:
                raise error
            message = f"{source}: gave up after {reconnect} reconnect attempts: {error}"
            raise InputError(message) from error
        attempt += 1
        run.counts["reconnects"] += 1
        delay = min(_MAX_BACKOFF, 0.5 * 2 ** (attempt - 1))
        log.warning("%s; reconnecting in %.1f s (%d/%d)", error, delay, attempt, reconnect)
        if stop is not None and stop.wait(delay):
            return "stopped"
        if stop is None:
            time.sleep(delay)
