"""Video reading with PyAV: decode every frame, in order, with its timestamps.

Reading streams packet by packet (threaded decoding, bounded memory). Frames come as RGB
``uint8 (H, W, 3)``, or, when asked (``yuv=True``), yuv420p frames stay
:class:`~veil.io.yuv.YUV420` (no colour conversion; see :mod:`veil.io.yuv`). Pixels stay
as stored: the display rotation is reported, not applied (the writer in
:mod:`veil.io.video_writer` copies the display matrix so players turn the output like the
input). Corrupt packets are skipped and listed in :attr:`VideoReader.errors`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from veil.errors import InputError
from veil.io.suffixes import VIDEO_SUFFIXES
from veil.io.yuv import YUV420
from veil.types import Frame

__all__ = ["VIDEO_SUFFIXES", "DecodedFrame", "VideoInfo", "VideoReader", "probe_video"]

logger = logging.getLogger(__name__)


_AV_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a file's first video stream.

    Attributes:
        frame_count: frames the container declares; 0 when it does not say (MKV, TS).
        fps: average frame rate; 0.0 when unknown.
        time_base: unit of the stream's timestamps, in seconds.
        duration: seconds, or ``None`` when unknown.
        rotation: counter-clockwise display rotation in degrees (as FFmpeg and
            ``VideoFrame.rotation`` report it), 0 if none. Pixels are stored unrotated.
        display_matrix: the raw 3x3 display matrix (9 ints) the writer copies.
    """

    path: Path
    width: int
    height: int
    frame_count: int
    fps: float
    time_base: Fraction
    duration: float | None
    rotation: int
    codec: str
    has_audio: bool
    has_subtitles: bool
    pix_fmt: str
    display_matrix: tuple[int, ...] | None = None


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame.

    Attributes:
        image: RGB ``uint8 (H, W, 3)``, or :class:`~veil.io.yuv.YUV420` when the reader
            was asked for ``yuv`` frames and this one is yuv420p.
        index: position in the stream, from 0.
        timestamp: ``pts`` in seconds from the stream start (``None``: unknown).
        pts, duration: in ``time_base`` units (``None``: unknown).
    """

    image: np.ndarray | YUV420
    index: int
    timestamp: float | None
    pts: int | None
    time_base: Fraction
    duration: int | None = None

    @property
    def frame(self) -> Frame:
        """The frame as a :class:`~veil.types.Frame` (RGB; converted if it was YUV)."""
        rgb = self.image.rgb() if isinstance(self.image, YUV420) else self.image
        return Frame(rgb, index=self.index, timestamp=self.timestamp)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe the first video stream of ``path`` (decoding its first frame).

    Raises InputError (naming the file) for a missing or empty file, a file FFmpeg cannot
    read, no video stream (e.g. audio only), an undecodable codec or no decodable frame.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(path, container)
        first = next(iter(_decode(container, stream, lambda message: None)), None)
        if first is None:
            raise InputError(f"{path}: the video stream has no decodable frame")
        tb = Fraction(stream.time_base or Fraction(1, 90000))
        rate = stream.average_rate or stream.guessed_rate
        duration = float(stream.duration * tb) if stream.duration else None
        if duration is None and container.duration:
            duration = container.duration / 1_000_000
        matrix = _display_matrix(first)
        return VideoInfo(
            path=path,
            width=first.width,
            height=first.height,
            frame_count=int(stream.frames or 0),
            fps=float(rate or 0),
            time_base=tb,
            duration=duration,
            rotation=round(first.rotation) if matrix else 0,
            codec=stream.codec.name,
            has_audio=bool(container.streams.audio),
            has_subtitles=bool(container.streams.subtitles),
            pix_fmt=first.format.name,
            display_matrix=matrix,
        )


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise InputError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    try:
        return av.open(str(path), "r")
    except _AV_ERRORS as exc:
        raise InputError(f"{path}: not a video file FFmpeg can read ({exc})") from exc


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    cover = av.stream.Disposition.attached_pic  # album art in an audio file is no video
    streams = [s for s in container.streams.video if not s.disposition & cover]
    if not streams:
        found = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise InputError(f"{path}: no video stream (found: {found})")
    if streams[0].codec_context is None:  # FFmpeg has no decoder for this codec
        raise InputError(f"{path}: the video codec is unknown to FFmpeg or cannot be decoded")
    return streams[0]


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    side_data = cast(Any, frame.side_data)
    for item in side_data:  # PyAV <= 18.1.0 yields SideData, 18.1.1 yields the Type keys
        sd = item if hasattr(item, "type") else side_data[item]
        if sd.type.name == "DISPLAYMATRIX":
            return tuple(int(v) for v in np.frombuffer(bytes(sd), np.int32)[:9])
    return None


def _decode(
    container: av.container.InputContainer, stream: av.VideoStream, error: Callable[[str], None]
) -> Iterator[av.VideoFrame]:
    """Yield decoded frames; a packet the demuxer or decoder rejects is reported and skipped."""
    packets = container.demux(stream)
    while True:
        try:
            packet: av.Packet | None = next(packets)
        except StopIteration:
            return
        except _AV_ERRORS as exc:  # the demuxer cannot go on: truncated or broken container
            error(f"container unreadable after this point: {exc}")
            packet = None  # flush the decoder
        if packet is not None and packet.is_corrupt:
            error("the container marks a packet as corrupt")
        try:
            yield from stream.decode(packet)
        except _AV_ERRORS as exc:
            error(f"corrupt packet skipped: {exc}")
        if packet is None:
            return


class VideoReader:
    """Iterate a video's frames as :class:`DecodedFrame` (index from 0, timestamps).

    Frames are RGB unless ``yuv``: then yuv420p frames of even size come as
    :class:`~veil.io.yuv.YUV420` (others still RGB). ``errors`` lists ``(index,
    message)`` for skipped corrupt packets and concealed frames, ``index`` being that of
    the next decoded frame. Iterating when no frame at all can be decoded raises
    InputError. Leaving the ``with`` block ends an unfinished iteration.
    """

    def __init__(self, path: str | os.PathLike[str], *, yuv: bool = False) -> None:
        self.path, self.yuv = Path(path), yuv
        self.info = probe_video(self.path)
        self.errors: list[tuple[int, str]] = []
        self.frames_read = 0
        self._iteration: Generator[DecodedFrame, None, None] | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._iteration is not None:
            self._iteration.close()

    def __iter__(self) -> Iterator[DecodedFrame]:
        self._iteration = self._frames()
        return self._iteration

    def _frames(self) -> Generator[DecodedFrame, None, None]:
        self.errors, self.frames_read = [], 0
        with _open_input(self.path) as container:
            stream = _video_stream(self.path, container)
            stream.thread_type = "AUTO"
            tb = Fraction(stream.time_base or self.info.time_base)
            start: int | None = stream.start_time
            for vf in _decode(container, stream, self._error):
                if vf.is_corrupt:
                    self._error("frame decoded with errors (concealed)")
                start = vf.pts if start is None else start
                t = float((vf.pts - (start or 0)) * tb) if vf.pts is not None else None
                yield DecodedFrame(
                    self._pixels(vf), self.frames_read, t, vf.pts, tb, vf.duration or None
                )
                self.frames_read += 1
        if self.frames_read == 0:
            detail = f": {self.errors[0][1]}" if self.errors else ""
            raise InputError(f"{self.path}: no video frame could be decoded{detail}")

    def _pixels(self, vf: av.VideoFrame) -> np.ndarray | YUV420:
        if self.yuv and vf.format.name == "yuv420p" and not (vf.width % 2 or vf.height % 2):
            return YUV420(vf.to_ndarray(format="yuv420p"))
        return vf.to_ndarray(format="rgb24")

    def _error(self, message: str) -> None:
        logger.warning("%s: frame %d: %s", self.path, self.frames_read, message)
        self.errors.append((self.frames_read, message))
