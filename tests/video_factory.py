"""Tiny synthetic video clips for the video I/O tests, made with PyAV (no binary fixtures).

``make_video`` writes a moving textured square on a gradient background, optionally with a
sine-tone audio track, a subtitle track, identifying container metadata (a GPS location,
a comment, a device serial), a display rotation and variable frame timing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SECRET_COMMENT = "VEIL-SECRET-COMMENT"
SECRET_LOCATION = "+51.5074-000.1278/"
SECRET_SERIAL = "VEIL-SERIAL-0042"
SECRET_METADATA = {
    "location": SECRET_LOCATION,
    "com.apple.quicktime.location.ISO6709": SECRET_LOCATION,
    "comment": SECRET_COMMENT,
    "title": "VEIL-SECRET-TITLE",
    "serial_number": SECRET_SERIAL,
}
VFR_STEPS_MS = (40, 40, 80, 20, 120, 40)
"""Frame durations (ms) cycled by ``make_video(vfr=True)``."""


def frame_image(i: int, size: tuple[int, int], moving_square: bool = True) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)``: a gradient with a checkered square that moves with ``i``."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    img = np.dstack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 96)])
    if moving_square:
        s = max(min(w, h) // 3, 4)
        x0 = (i * 3) % max(w - s, 1)
        y0 = (i * 2) % max(h - s, 1)
        checker = ((y[:s, :s] // 4 + x[:s, :s] // 4) % 2) * 200 + 40
        img[y0 : y0 + s, x0 : x0 + s] = checker[..., None]
    return img.astype(np.uint8)


def frame_pts(n: int, fps: int, vfr: bool) -> tuple[list[int], Fraction]:
    """Presentation timestamps and their time base for ``n`` frames."""
    if not vfr:
        return list(range(n)), Fraction(1, fps)
    pts, t = [], 0
    for i in range(n):
        pts.append(t)
        t += VFR_STEPS_MS[i % len(VFR_STEPS_MS)]
    return pts, Fraction(1, 1000)


def make_video(
    path: str | Path,
    *,
    frames: int = 30,
    size: tuple[int, int] = (160, 120),
    fps: int = 25,
    audio: bool = True,
    moving_square: bool = True,
    codec: str = "libx264",
    vfr: bool = False,
    rotation: int = 0,
    metadata: bool = True,
    subtitles: bool = False,
    video: bool = True,
) -> Path:
    """Write a clip of ``frames`` frames of ``size = (width, height)`` to ``path``.

    Audio is a 440 Hz tone (AAC, or PCM for ``.avi``) lasting as long as the video.
    ``metadata`` adds :data:`SECRET_METADATA` to the container; ``rotation`` sets a
    display matrix (counter-clockwise degrees); ``video=False`` makes an audio-only file.
    """
    path = Path(path)
    pts, tb = frame_pts(frames, fps, vfr)
    duration = float((pts[-1] + (pts[-1] - pts[-2] if frames > 1 else 1)) * tb) if frames else 1.0
    opts = {"movflags": "use_metadata_tags"} if path.suffix in (".mp4", ".mov", ".m4v") else {}
    with av.open(str(path), "w", options=opts) as out:
        if metadata:
            out.metadata.update(SECRET_METADATA)
        vs = _add_video(out, codec, size, fps, tb, rotation) if video else None
        aus = _add_audio(out, path.suffix) if audio else None
        sub = out.add_mux_stream("subrip") if subtitles else None
        out.start_encoding()  # writes the header even when there is no frame
        if vs is not None:
            for i, p in enumerate(pts):
                vf = av.VideoFrame.from_ndarray(frame_image(i, size, moving_square), format="rgb24")
                vf.pts, vf.time_base = p, tb
                out.mux(vs.encode(vf))
            out.mux(vs.encode(None))
        if aus is not None:
            _write_tone(out, aus, duration)
        if sub is not None:
            _write_subtitles(out, sub, duration)
    return path


def _add_video(
    out: av.container.OutputContainer,
    codec: str,
    size: tuple[int, int],
    fps: int,
    tb: Fraction,
    rotation: int,
) -> av.VideoStream:
    odd = size[0] % 2 or size[1] % 2
    options = {"preset": "ultrafast"} if codec == "libx264" else {}
    vs = out.add_stream(codec, rate=fps, options=options)
    vs.width, vs.height = size
    vs.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
    vs.time_base = tb
    vs.codec_context.time_base = tb
    if rotation:
        vs.set_display_rotation(rotation)
    return vs


def _add_audio(out: av.container.OutputContainer, suffix: str) -> av.AudioStream:
    codec = "pcm_s16le" if suffix == ".avi" else "aac"
    return out.add_stream(codec, rate=16000, layout="mono")


def _write_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 16000, 1024
    n = int(rate * seconds)
    t = np.arange(n) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    for start in range(0, n, chunk):
        part = tone[start : start + chunk][None, :]
        af = av.AudioFrame.from_ndarray(part, format="s16", layout="mono")
        af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
        out.mux(stream.encode(af))
    out.mux(stream.encode(None))


def _write_subtitles(out: av.container.OutputContainer, stream: av.Stream, seconds: float) -> None:
    tb = stream.time_base or Fraction(1, 1000)
    for k, text in enumerate((b"first line", b"second line")):
        pkt = av.Packet(text)
        start = Fraction(seconds) * k / 2
        pkt.pts = pkt.dts = int(start / tb)
        pkt.duration = int(Fraction(seconds) / 2 / tb)
        pkt.stream = stream
        out.mux(pkt)


def face_video(
    path: str | Path,
    *,
    frames: int = 8,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    audio: bool = True,
) -> tuple[Path, list[np.ndarray]]:
    """A clip with a real face (the astronaut photo, moving right 4 px per frame) over
    noise; returns the path and each frame's face box ``xyxy int (4,)``, so a test of an
    outer layer can check the face itself changed, not only that frames were re-encoded.
    """
    path = Path(path)
    w, h = size
    boxes: list[np.ndarray] = []
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "12"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = _add_audio(out, path.suffix) if audio else None
        for i in range(frames):
            img, box = _face_frame(i, size)
            boxes.append(box)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if aus is not None:
            _write_tone(out, aus, frames / fps)
    return path, boxes


def _face_frame(i: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from factories import face_on_canvas

    w, h = size
    img, box = face_on_canvas(scale=0.6 * h / 240, offset=(10 + 4 * i, 0), canvas=(h, w))
    return img, box.astype(int)


def face_video_boxes(frames: int = 8, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """The face boxes of ``face_video(frames=frames, size=size)`` without writing it."""
    return [_face_frame(i, size)[1] for i in range(frames)]


def face_change(src: str | Path, out: str | Path, boxes: list[np.ndarray]) -> list[float]:
    """Mean absolute grey-level change inside each frame's face box, ``src`` vs ``out``
    decoded in lockstep (one value per frame of ``boxes``; fails if frames are missing)."""

    def frames(p: str | Path) -> list[np.ndarray]:
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]

    a, b = frames(src), frames(out)
    assert len(a) == len(b) == len(boxes), (len(a), len(b), len(boxes))
    return [
        float(np.abs(x[y0:y1, x0:x1] - y[y0:y1, x0:x1]).mean())
        for (x0, y0, x1, y1), x, y in zip(boxes, a, b, strict=True)
    ]
