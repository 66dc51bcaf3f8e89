"""What keeps reviewing a long video fast: a small proxy of the source, a thumbnail strip
and the scene cuts, all made in one decoding pass and written once to the work folder.

The proxy is H.264 at :data:`PROXY_WIDTH` px wide with a key frame every
:data:`PROXY_GOP` frames and frame ``i`` at pts ``i`` (rate :data:`PROXY_RATE`), so any
frame costs one seek and at most ``PROXY_GOP`` small decodes (:class:`ProxyReader`).
Memory stays bounded: frames are streamed, only the thumbnails (a few MB) are held.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from veil.errors import InputError, OutputError
from veil.io.video import VideoReader
from veil.io.yuv import YUV420
from veil.track.tracker import scene_cut

__all__ = ["PROXY_GOP", "PROXY_WIDTH", "ProxyInfo", "ProxyReader", "build_proxy", "jpeg"]

PROXY_WIDTH = 640
PROXY_GOP = 10
PROXY_RATE = 25
THUMB_WIDTH = 120
MAX_THUMBS = 200


@dataclass(frozen=True)
class ProxyInfo:
    """What :func:`build_proxy` found: the source's size and frame rate, frames decoded,
    the proxy's size, scene cuts (first frame of each new shot) and the thumbnail strip's
    layout (one tile every ``thumb_every`` frames, ``thumb_size`` = (w, h) px each)."""

    width: int
    height: int
    fps: float
    frames: int
    proxy_size: tuple[int, int]
    cuts: tuple[int, ...]
    thumb_every: int
    thumb_size: tuple[int, int]
    thumbs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProxyInfo:
        tupled: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**tupled)


def even_size(width: int, height: int, target: int) -> tuple[int, int]:
    """``(w, h)`` no wider than ``target``, ``height/width`` kept, both even (>= 2)."""
    w = min(target, width)
    w -= w % 2
    h = max(2, round(height * w / width / 2) * 2)
    return max(w, 2), h


def build_proxy(
    src: Path, folder: Path, *, progress: Callable[[int, int], None] | None = None
) -> ProxyInfo:
    """Decode ``src`` once; write ``folder/proxy.mp4`` and ``folder/thumbs.jpg``
    (temp names, renamed when complete). Raises InputError for an unreadable video."""
    reader = VideoReader(src, yuv=True)
    info = reader.info
    size = even_size(info.width, info.height, PROXY_WIDTH)
    thumb = even_size(info.width, info.height, THUMB_WIDTH)
    every = max(1, math.ceil(info.frame_count / MAX_THUMBS)) if info.frame_count else 25
    tmp = folder / f".proxy.{os.getpid()}.mp4"
    tiles: list[np.ndarray] = []
    cuts: list[int] = []
    prev: np.ndarray | None = None
    try:
        with av.open(str(tmp), "w") as out, reader:
            stream = _proxy_stream(out, size)
            for df in reader:
                small = _shrink(df.image, size)
                if prev is not None and scene_cut(prev, small):
                    cuts.append(df.index)
                prev = small
                if df.index % every == 0 and len(tiles) < MAX_THUMBS:
                    tiles.append(cv2.resize(small, thumb, interpolation=cv2.INTER_AREA))
                vf = av.VideoFrame.from_ndarray(small, format="rgb24")
                vf.pts, vf.time_base = df.index, Fraction(1, PROXY_RATE)
                out.mux(stream.encode(vf))
                if progress is not None:
                    progress(df.index + 1, info.frame_count)
            out.mux(stream.encode(None))
        _write_strip(folder / "thumbs.jpg", tiles, thumb)
        os.replace(tmp, folder / "proxy.mp4")
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the review proxy: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ProxyInfo(
        info.width,
        info.height,
        info.fps,
        reader.frames_read,
        size,
        tuple(cuts),
        every,
        thumb,
        len(tiles),
    )


def _proxy_stream(out: Any, size: tuple[int, int]) -> Any:
    stream = out.add_stream("libx264", rate=PROXY_RATE, options={"preset": "ultrafast"})
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = PROXY_GOP
    stream.codec_context.options = {"preset": "ultrafast", "crf": "26", "sc_threshold": "0"}
    stream.codec_context.time_base = Fraction(1, PROXY_RATE)
    return stream


def _shrink(image: np.ndarray | YUV420, size: tuple[int, int]) -> np.ndarray:
    """RGB ``uint8 (h, w, 3)`` at ``size`` from a decoded frame: a YUV420 frame is
    shrunk plane by plane first (a quarter of the pixels to convert)."""
    if isinstance(image, YUV420):
        w, h = size
        y, u, v = image.planes()
        planes = [
            cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA).ravel(),
            cv2.resize(u, (w // 2, h // 2), interpolation=cv2.INTER_AREA).ravel(),
            cv2.resize(v, (w // 2, h // 2), interpolation=cv2.INTER_AREA).ravel(),
        ]
        i420 = np.concatenate(planes).reshape(h * 3 // 2, w)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _write_strip(path: Path, tiles: list[np.ndarray], size: tuple[int, int]) -> None:
    strip = np.hstack(tiles) if tiles else np.zeros((size[1], size[0], 3), np.uint8)
    path.write_bytes(jpeg(strip, quality=80))


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB ``uint8 (H, W, 3)`` image."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [1, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise OutputError("cannot encode a JPEG")
    return bytes(data)


class ProxyReader:
    """Frame ``i`` of a proxy written by :func:`build_proxy`: seek to the key frame at or
    before it, decode forward (at most :data:`PROXY_GOP` frames). Opens the file per call,
    so it is safe from any thread."""

    def __init__(self, path: Path, frames: int) -> None:
        self.path, self.frames = path, frames

    def rgb(self, index: int) -> np.ndarray:
        if not 0 <= index < self.frames:
            raise InputError(f"frame {index} is outside 0..{self.frames - 1}")
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            tb = Fraction(stream.time_base or Fraction(1, PROXY_RATE))
            container.seek(int(Fraction(index, PROXY_RATE) / tb), stream=stream, backward=True)
            for vf in container.decode(stream):
                at = round(Fraction(vf.pts or 0) * tb * PROXY_RATE)
                if at >= index:
                    return np.asarray(vf.to_ndarray(format="rgb24"))
        raise InputError(f"{self.path}: frame {index} not found in the review proxy")

    def jpeg(self, index: int) -> bytes:
        return jpeg(self.rgb(index))
