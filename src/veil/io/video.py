"""Video I/O with PyAV: decode every frame to RGB ``uint8 (H, W, 3)``, re-encode in order.

Reading streams packet by packet (threaded decoding, bounded memory). Pixels stay as
stored: the display rotation is reported, not applied, and the writer copies the display
matrix so players turn the output like the input. Corrupt packets are skipped and listed in
:attr:`VideoReader.errors`. Writing keeps every frame's source pts in the source time base
(frame count, VFR timing, duration), copies audio/subtitle packets without re-encoding and
is atomic (a hidden ``.name.<hex>.partial.ext`` sibling, deleted on any exception, Ctrl-C
included). Metadata: by default no container metadata (location atoms, serials, titles,
comments, creation times) and only each stream's ``language``; data streams (GPS
telemetry), attachments and chapters are never copied.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from veil.errors import ConfigError, InputError, OutputError
from veil.types import Frame, check_image

__all__ = ["VIDEO_SUFFIXES", "DecodedFrame", "TranscodeReport", "VideoInfo", "VideoReader"]
__all__ += ["VideoWriter", "probe_video", "transcode"]

logger = logging.getLogger(__name__)

_SUFFIXES = ".mp4 .mov .mkv .avi .webm .m4v .mpg .mpeg .ts .wmv .flv"
VIDEO_SUFFIXES: frozenset[str] = frozenset(_SUFFIXES.split())
"""Lower-case file suffixes veil treats as videos (FFmpeg reads many more)."""

_AV_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError)
_X264_PRESETS = "ultrafast superfast veryfast faster fast medium slow slower veryslow placebo"
_CRF_CODECS = ("libx264", "libx265")


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
    """A frame plus its ``pts`` and ``duration`` in ``time_base`` units (``None``: unknown);
    ``frame.timestamp`` is ``pts`` in seconds from the stream start."""

    frame: Frame
    pts: int | None
    time_base: Fraction
    duration: int | None = None


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
    for sd in cast(Any, frame.side_data):  # a Mapping whose iteration yields SideData
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
    """Iterate a video's frames as :class:`DecodedFrame` (RGB, index from 0, timestamps).

    ``errors`` lists ``(index, message)`` for skipped corrupt packets and concealed frames,
    ``index`` being that of the next decoded frame. Iterating when no frame at all can be
    decoded raises InputError. Leaving the ``with`` block ends an unfinished iteration.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
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
                frame = Frame(vf.to_ndarray(format="rgb24"), index=self.frames_read, timestamp=t)
                yield DecodedFrame(frame, vf.pts, tb, vf.duration or None)
                self.frames_read += 1
        if self.frames_read == 0:
            detail = f": {self.errors[0][1]}" if self.errors else ""
            raise InputError(f"{self.path}: no video frame could be decoded{detail}")

    def _error(self, message: str) -> None:
        logger.warning("%s: frame %d: %s", self.path, self.frames_read, message)
        self.errors.append((self.frames_read, message))


class VideoWriter:
    """Encode RGB frames to ``path`` with the source's timing; copy its audio/subtitles.

    In a ``with`` block a clean exit calls :meth:`close` (the file appears at ``path``), an
    exception :meth:`abort` (nothing appears). Odd sizes are encoded ``yuv444p`` with x264/
    x265 (H.264 4:2:0 cannot hold them): exact size, but players need High 4:4:4 support.
    ``crf``/``preset`` apply to x264/x265; AVI gets no B-frames (AVI stores no pts).
    Audio/subtitle packets are demuxed from ``source`` again and interleaved by time.
    Raises OutputError (``path`` is ``source``, unwritable, codec not storable, encoding
    failure) or ConfigError (bad ``codec``, ``crf``, ``preset``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        info: VideoInfo,
        *,
        source: str | os.PathLike[str],
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "veryfast",
        keep_audio: bool = True,
        keep_subtitles: bool = True,
        keep_metadata: bool = False,
    ) -> None:
        self.path, self.info, self.source = Path(path), info, Path(source)
        _check_options(codec, crf, preset)
        _refuse_overwriting_source(self.path, self.source)
        self.frames_written = self.retimed = 0
        self.errors: list[str] = []  # audio/subtitle packets that could not be copied
        self._last_pts: int | None = None
        self._durations: dict[int, int] = {}  # pts -> duration of frames inside the encoder
        self._step = max(1, round(1 / (info.fps or 25) / info.time_base))
        hidden = f".{self.path.stem}.{secrets.token_hex(4)}.partial{self.path.suffix}"
        self._tmp = self.path.with_name(hidden)
        self._side: av.container.InputContainer | None = None
        self._side_packets: Iterator[av.Packet] = iter(())
        self._pending: av.Packet | None = None
        self._stream_map: dict[int, av.stream.Stream] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            options = {"movflags": "use_metadata_tags"} if keep_metadata else {}
            self._out: av.container.OutputContainer | None = av.open(
                str(self._tmp), "w", options=options
            )
            self._stream = self._add_video(self._out, codec, crf, preset)
            self._add_side_streams(self._out, keep_audio, keep_subtitles, keep_metadata)
            self._out.start_encoding()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, _AV_ERRORS):
                hint = "try .mkv, or drop audio/subtitles" if self._stream_map else "try .mkv"
                raise OutputError(
                    f"{self.path}: cannot write {codec} video: {exc}; {hint}"
                ) from exc
            raise

    def _add_video(
        self, out: av.container.OutputContainer, codec: str, crf: int, preset: str
    ) -> av.VideoStream:
        info = self.info
        opts = {"crf": str(crf), "preset": preset} if codec in _CRF_CODECS else {}
        rate = Fraction(info.fps).limit_denominator(1001000) if info.fps else None
        stream = cast(av.VideoStream, out.add_stream(codec, rate=rate, options=opts))
        stream.width, stream.height = info.width, info.height
        odd = info.width % 2 or info.height % 2
        stream.pix_fmt = "yuv444p" if odd and codec in _CRF_CODECS else "yuv420p"
        stream.time_base = stream.codec_context.time_base = info.time_base
        if out.format.name == "avi":  # AVI stores no pts: B-frames would scramble them
            stream.codec_context.max_b_frames = 0
        if info.display_matrix:
            stream.set_display_matrix(info.display_matrix)
        return stream

    def _add_side_streams(
        self, out: av.container.OutputContainer, audio: bool, subtitles: bool, keep_meta: bool
    ) -> None:
        kinds = {kind for kind, on in (("audio", audio), ("subtitle", subtitles)) if on}
        if not kinds or not (self.info.has_audio or self.info.has_subtitles):
            return
        self._side = _open_input(self.source)
        wanted = [s for s in self._side.streams if s.type in kinds]
        for s in wanted:
            copy = out.add_stream_from_template(s)
            copy.metadata.clear()
            copy.metadata.update(dict(s.metadata) if keep_meta else {})
            if s.language:
                copy.metadata["language"] = s.language
            copy.disposition = s.disposition
            self._stream_map[s.index] = copy
        if keep_meta:
            out.metadata.update(self._side.metadata)
        if wanted:
            self._side_packets = self._side.demux(wanted)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, tp: type[BaseException] | None, *exc: object) -> None:
        if tp is None:
            self.close()
        else:
            self.abort()

    def write(self, image: np.ndarray, pts: int | None = None, duration: int | None = None) -> None:
        """Encode one RGB ``uint8 (H, W, 3)`` frame shown at ``pts`` for ``duration``.

        Both are in ``info.time_base`` units, as :class:`DecodedFrame` has them. A missing
        or non-increasing ``pts`` becomes the previous one plus one frame (``retimed``).
        """
        if self._out is None:
            raise OutputError(f"{self.path}: the writer is closed")
        check_image(image, name=f"{self.path} frame {self.frames_written}")
        if image.shape[:2] != (self.info.height, self.info.width):
            raise InputError(
                f"{self.path}: frame {self.frames_written} has shape {image.shape}, "
                f"expected {(self.info.height, self.info.width, 3)}"
            )
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            self.retimed += pts is not None
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        self._last_pts = pts
        if duration:
            self._durations[pts] = duration
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vf.pts, vf.time_base = pts, self.info.time_base
        try:
            self._mux_side(self._out, pts * self.info.time_base)
            self._mux_video(self._out, self._stream.encode(vf))
        except _AV_ERRORS as exc:
            message = f"{self.path}: cannot encode frame {self.frames_written}: {exc}"
            raise OutputError(message) from exc
        self.frames_written += 1

    def _mux_video(self, out: av.container.OutputContainer, packets: list[av.Packet]) -> None:
        for packet in packets:  # x264 does not carry the frame duration over to the packet
            packet.duration = self._durations.pop(packet.pts or 0, None) or packet.duration
            out.mux(packet)

    def _mux_side(self, out: av.container.OutputContainer, until: Fraction | None) -> None:
        """Copy audio/subtitle packets up to ``until`` seconds (all when ``None``)."""
        while (packet := self._pending or self._next_side_packet()) is not None:
            self._pending = None
            ts = packet.dts if packet.dts is not None else packet.pts
            if ts is None or packet.stream.index not in self._stream_map:
                continue  # the demuxer's end-of-stream marker
            if until is not None and ts * (packet.time_base or 0) > until:
                self._pending = packet
                return
            packet.stream = self._stream_map[packet.stream.index]
            try:
                out.mux(packet)
            except _AV_ERRORS as exc:  # e.g. a corrupt source packet with a bad timestamp
                self._warn(f"audio/subtitle packet dropped: {exc}")

    def _next_side_packet(self) -> av.Packet | None:
        try:
            return next(self._side_packets, None)
        except _AV_ERRORS as exc:
            self._warn(f"audio/subtitle copy stopped, source unreadable: {exc}")
            self._side_packets = iter(())
            return None

    def _warn(self, message: str) -> None:
        logger.warning("%s: %s", self.source, message)
        self.errors.append(message)

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio, and move the file into place."""
        if self._out is None:
            return
        if self.frames_written == 0:
            self.abort()
            raise OutputError(f"{self.path}: no frame was written; nothing to save")
        try:
            self._mux_video(self._out, self._stream.encode(None))
            self._mux_side(self._out, None)
            self._out.close()
            self._out = None
            os.replace(self._tmp, self.path)
        except _AV_ERRORS as exc:
            raise OutputError(f"{self.path}: cannot finish the video: {exc}") from exc
        finally:
            self.abort()  # after success only closes the source again

    def abort(self) -> None:
        """Close everything and delete the partial file; ``path`` is left untouched."""
        out, self._out = getattr(self, "_out", None), None
        try:
            if out is not None:
                out.close()
        except _AV_ERRORS as exc:  # the partial file is deleted anyway
            logger.debug("%s: closing partial output: %s", self._tmp, exc)
        finally:
            if self._side is not None:
                self._side.close()
                self._side = None
            self._tmp.unlink(missing_ok=True)


def _check_options(codec: str, crf: int, preset: str) -> None:
    try:
        if av.Codec(codec, "w").type != "video":
            raise ConfigError(f"codec={codec!r} is not a video codec")
    except av.codec.codec.UnknownCodecError as exc:
        raise ConfigError(f"codec={codec!r} is not an encoder this FFmpeg has") from exc
    if codec in _CRF_CODECS and not 0 <= crf <= 51:
        raise ConfigError(f"crf={crf} is out of range; expected 0..51")
    if codec in _CRF_CODECS and preset not in _X264_PRESETS.split():
        raise ConfigError(f"preset={preset!r} is unknown; valid: {_X264_PRESETS}")


def _refuse_overwriting_source(path: Path, source: Path) -> None:
    same = path.resolve() == source.resolve()
    if not same and path.exists() and source.exists():
        same = os.path.samefile(path, source)
    if same:
        raise OutputError(f"{path}: refusing to overwrite the source video; choose another path")


@dataclass(frozen=True)
class TranscodeReport:
    """What :func:`transcode` did: frame counts and the decode problems it skipped."""

    frames_in: int
    frames_out: int
    decode_errors: tuple[tuple[int, str], ...] = ()


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    process: Callable[[Frame], np.ndarray],
    **writer_opts: Any,
) -> TranscodeReport:
    """Decode ``src``, call ``process`` on every frame, encode what it returns to ``dst``.

    Serial; ``writer_opts`` go to :class:`VideoWriter`. On error nothing is left at ``dst``.
    """
    with VideoReader(src) as reader, VideoWriter(dst, reader.info, source=src, **writer_opts) as w:
        for item in reader:
            w.write(process(item.frame), item.pts, item.duration)
    return TranscodeReport(reader.frames_read, w.frames_written, tuple(reader.errors))
