"""Benchmark clips with per-frame ground truth, shared by video_speed.py and video_coverage.py.

A real clip (``../shared/data/videos``) is scaled to the target size and looped back and
forth (ping-pong, no jump cut) to the wanted length; real face crops (LFW photos, one per
person) are pasted onto it with known boxes: each face drifts and bounces, grows and shrinks
(0.6x-1.4x) and is hidden behind a grey card for a few frames (those frames hold no
ground truth for it). A 440 Hz tone is added as AAC audio. Ground truth is one list of
``[x, y, w, h]`` boxes per frame.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

DEFAULT_BACKGROUND = Path("../shared/data/videos/demo_skeleton.mp4")
DEFAULT_FACES = Path("../shared/data/identity-lfw158")
#: the face inside a 250 x 250 LFW photo, x0, y0, x1, y1 (the photos are centred on it)
LFW_FACE = (78, 70, 172, 186)


def face_crops(folder: Path, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB face crops from different people of an LFW-style ``person/*.jpg`` folder."""
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = LFW_FACE
    crops = []
    for person in rng.choice(people, size=n, replace=False):
        photo = cv2.imread(str(sorted(person.glob("*.jpg"))[0]))[:, :, ::-1]
        crops.append(np.ascontiguousarray(photo[y0:y1, x0:x1]))
    return crops


def background_frames(path: Path, size: tuple[int, int], limit: int = 150) -> list[np.ndarray]:
    """Up to ``limit`` frames of ``path`` scaled to ``size = (w, h)`` (RGB)."""
    out = []
    with av.open(str(path)) as c:
        for vf in c.decode(video=0):
            out.append(
                cv2.resize(vf.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
            )
            if len(out) >= limit:
                break
    return out


class Motion:
    """One face's path: position, size and occlusion as functions of the frame index."""

    def __init__(self, k: int, size: tuple[int, int], base: float, rng: np.random.Generator):
        w, h = size
        self.w, self.h, self.base = w, h, base
        self.start = rng.uniform([0.1 * w, 0.1 * h], [0.8 * w, 0.7 * h])
        self.speed = rng.uniform(-1, 1, 2) * base * 0.04  # px per frame
        self.phase, self.period = rng.uniform(0, 2 * math.pi), rng.uniform(60, 120)
        self.hidden = set(range(40 + 37 * k, 46 + 37 * k))  # six frames behind a card

    def box(self, i: int) -> tuple[int, int, int, int]:
        scale = 1.0 + 0.4 * math.sin(self.phase + 2 * math.pi * i / self.period)
        fw, fh = round(self.base * scale * 0.81), round(self.base * scale)
        x, y = self.start + self.speed * i
        x = _bounce(x, self.w - fw)
        y = _bounce(y, self.h - fh)
        return int(x), int(y), fw, fh


def _bounce(v: float, span: float) -> float:
    span = max(span, 1.0)
    v = v % (2 * span)
    return v if v <= span else 2 * span - v


def make_clip(
    dst: Path,
    *,
    size: tuple[int, int],
    seconds: float,
    fps: int = 25,
    faces: int = 4,
    background: Path = DEFAULT_BACKGROUND,
    face_dir: Path = DEFAULT_FACES,
    face_height: float | None = None,
    seed: int = 0,
    synthetic: bool = False,
) -> list[list[list[int]]]:
    """Write the clip to ``dst`` (H.264 crf 18 + AAC) and ``dst.gt.json``; return the GT.

    ``synthetic``: a flat slowly changing colour instead of the real clip (cheap long clips).
    """
    rng = np.random.default_rng(seed)
    crops = face_crops(face_dir, faces, seed)
    w, h = size
    bgs = [] if synthetic else background_frames(background, size)
    motions = [Motion(k, size, face_height or h / 7, rng) for k in range(faces)]
    n = round(seconds * fps)
    gt: list[list[list[int]]] = []
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", fps, {"preset": "ultrafast", "crf": "18"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        aus = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(n):
            img, boxes = _frame(i, bgs, size, crops, motions)
            gt.append(boxes)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        _tone(out, aus, n / fps)
    dst.with_suffix(".gt.json").write_text(json.dumps(gt))
    return gt


def _frame(
    i: int,
    bgs: list[np.ndarray],
    size: tuple[int, int],
    crops: list[np.ndarray],
    motions: list[Motion],
) -> tuple[np.ndarray, list[list[int]]]:
    w, h = size
    if bgs:
        period = 2 * len(bgs) - 2 if len(bgs) > 1 else 1
        j = i % period
        img = bgs[j if j < len(bgs) else period - j].copy()
    else:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (60 + i // 10 % 100, 90, 120)
    boxes = []
    for crop, m in zip(crops, motions, strict=True):
        x, y, fw, fh = m.box(i)
        img[y : y + fh, x : x + fw] = cv2.resize(crop, (fw, fh), interpolation=cv2.INTER_AREA)
        if i in m.hidden:
            img[y - 4 : y + fh + 4, max(x - 4, 0) : x + fw + 4] = 128
        else:
            boxes.append([x, y, fw, fh])
    return img, boxes


def _tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 44100, 1024
    total = int(rate * seconds)
    for start in range(0, total, chunk):
        t = np.arange(start, min(start + chunk, total)) / rate
        part = (np.sin(2 * np.pi * 440 * t) * 0.2).astype(np.float32)[None, :]
        af = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
        af.sample_rate, af.pts, af.time_base = rate, start, Fraction(1, rate)
        out.mux(stream.encode(af))
    out.mux(stream.encode(None))


def load_gt(clip: Path) -> list[list[list[int]]]:
    return json.loads(clip.with_suffix(".gt.json").read_text())
