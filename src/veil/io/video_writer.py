"""Video writing with PyAV: encode frames in order with the source's timing, copy its
audio and subtitles, atomically (see :mod:`veil.io.video` for reading).

Frames come as RGB ``uint8 (H, W, 3)`` arrays or as :class:`~veil.io.yuv.YUV420` (passed
to a yuv420p encoder without any conversion). The output is a hidden
``.name.<hex>.partial.ext`` sibling until :meth:`VideoWriter.close` renames it, deleted on
any exception, Ctrl-C included. Metadata: by default no container metadata (location
atoms, serials, titles, comments, creation times) and only each stream's ``language``;
data streams (GPS telemetry), attachments and chapters are never copied.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from veil.errors import ConfigError, InputError, OutputError
from veil.io.video import _AV_ERRORS, VideoInfo, VideoReader, _open_input
from veil.io.yuv import YUV420
from veil.types import Frame, check_image

__all__ = ["TranscodeReport", "VideoWriter", "check_writer_options", "encoder_options"]
__all__ += ["transcode"]

logger = logging.getLogger(__name__)

_X264_PRESETS = "ultrafast superfast veryfast faster fast medium slow slower veryslow placebo"
_CRF_CODECS = ("libx264", "libx265")


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
        check_writer_options(codec, crf, preset)
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
        opts = encoder_options(codec, crf, preset)
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

    def write(
        self, image: np.ndarray | YUV420, pts: int | None = None, duration: int | None = None
    ) -> None:
        """Encode one RGB ``uint8 (H, W, 3)`` or :class:`~veil.io.yuv.YUV420` frame shown
        at ``pts`` for ``duration``.

        Both are in ``info.time_base`` units, as :class:`DecodedFrame` has them. A missing
        or non-increasing ``pts`` becomes the previous one plus one frame (``retimed``).
        A YUV420 frame goes to a yuv420p encoder as it is (converted for any other).
        """
        if self._out is None:
            raise OutputError(f"{self.path}: the writer is closed")
        if not isinstance(image, YUV420):
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
        vf = self._video_frame(image)
        vf.pts, vf.time_base = pts, self.info.time_base
        try:
            self._mux_side(self._out, pts * self.info.time_base)
            self._mux_video(self._out, self._stream.encode(vf))
        except _AV_ERRORS as exc:
            message = f"{self.path}: cannot encode frame {self.frames_written}: {exc}"
            raise OutputError(message) from exc
        self.frames_written += 1

    def _video_frame(self, image: np.ndarray | YUV420) -> av.VideoFrame:
        if isinstance(image, YUV420):
            if self._stream.pix_fmt == "yuv420p":
                return av.VideoFrame.from_ndarray(image.data, format="yuv420p")
            image = image.rgb()
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")

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


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """FFmpeg encoder options for ``codec``: CRF and preset for x264/x265 (none for other
    encoders), and for x264 on an AVX-512 CPU its AVX2 code only (see :func:`_has_avx512`)."""
    opts = {"crf": str(crf), "preset": preset} if codec in _CRF_CODECS else {}
    if codec == "libx264" and _has_avx512():
        opts["x264-params"] = "asm=AVX2"  # reproducible output
    return opts


@functools.cache
def _has_avx512() -> bool:
    """Whether the CPU has AVX-512, whose x264 routines (macroblock-tree rate control)
    make libx264 output depend on what was in memory before: the same frames gave one of
    several encodings at many frame widths (96, 176, 320, 720, 856, 1080 px; not 128,
    160, 640, 1280, 1920). x264 is then limited to its AVX2 code (every AVX-512 CPU has
    AVX2), which is reproducible; forcing AVX2 on any other CPU could crash it."""
    import importlib

    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # 2.x, 1.x
        try:
            features = importlib.import_module(name).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    else:
        return False
    return bool(features.get("AVX512F"))


def check_writer_options(codec: str, crf: int, preset: str) -> None:
    """Raise ConfigError unless ``codec`` is a video encoder here and ``crf``/``preset``
    are valid for it (x264/x265)."""
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
