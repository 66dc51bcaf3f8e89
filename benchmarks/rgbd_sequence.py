"""RGB-D sequences: tracking off, tracking on, speed mode, on synthetic walking people.

Each of ``--sequences`` synthetic sequences (:func:`veil.rgbd.synth.make_scene`,
``--frames`` frames of ``--people`` people walking in front of a wall, 640x480, ground
truth per frame) runs through :class:`veil.rgbd.RGBDAnonymizer` (CenterFace, gaussian,
depth-refined head masks, heads without a face from depth, depth flattened) in three
modes, as ``veil rgbd`` runs them:

- ``off``: every frame on its own (``--no-tracking``);
- ``tracking``: detection on every frame, tracking fills misses (``--max-age 15``) and the
  look-ahead fills the frames before a first detection (``--lookahead 8``): the default;
- ``speed``: ``VideoConfig()``'s speed mode, full detection every 8 frames, window search
  around uncertain tracks in between (``--detect-every 8``).

Reported per mode, over head-frames (one person's visible head in one frame, >= 30 px):

- full(face), full(behind): share of head-frames with >= 99 % of their pixels masked,
  for heads with a visible face and heads seen from behind;
- over-mask: masked pixels that belong to no head / image pixels, mean per frame;
- det/frame: full-frame detector runs per frame;
- frames/s: ``push`` + ``flush`` of every frame in process (detect, track, depth masks,
  heads, anonymize, depth policy); rendering and file I/O are not timed;
- CPU ms/frame: process CPU time (all threads) over the same calls, which a shared,
  loaded machine distorts less than wall-clock frames/s.

``--drop P`` makes the detector lose each face it finds with probability P per call
(seeded), a stand-in for a weaker detector or harder footage: what tracking recovers.

Examples::

    python benchmarks/rgbd_sequence.py --sequences 5 --frames 60
    python benchmarks/rgbd_sequence.py --sequences 5 --frames 60 --drop 0.3
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from veil.config import RunConfig
from veil.detect.base import Detector
from veil.mask import union_mask
from veil.pipeline import Pipeline
from veil.rgbd import RGBDAnonymizer, RGBDConfig, RGBDResult, SynthFrame, make_scene
from veil.types import Faces
from veil.video import VideoConfig

MODES: dict[str, VideoConfig | None] = {
    "off": None,
    "tracking": VideoConfig(detect_every=1),
    "speed": VideoConfig(),
}


class Dropping(Detector):
    """Wraps a detector; each face it returns is dropped with probability ``p``."""

    name = "dropping"

    def __init__(self, inner: Detector, p: float, seed: int) -> None:
        self.inner, self.p, self.rng = inner, p, np.random.default_rng(seed)
        self.calls = 0

    def detect(self, image: np.ndarray) -> Faces:
        self.calls += 1
        return self._drop(self.inner.detect(image))

    def detect_window(self, image: np.ndarray) -> Faces:
        return self._drop(self.inner.detect_window(image))

    def _drop(self, faces: Faces) -> Faces:
        return faces[self.rng.random(len(faces)) >= self.p] if self.p > 0 else faces


@dataclass
class Score:
    face: list[bool] = field(default_factory=list)
    behind: list[bool] = field(default_factory=list)
    over: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    frames: int = 0
    detections: int = 0

    def add(self, result: RGBDResult, f: SynthFrame, pipe: Pipeline) -> None:
        assert result.error is None, result.error
        shape = f.depth.shape
        mask = union_mask(pipe.masker.regions(result.faces, shape), shape)
        heads = f.head_masks.any(axis=0)
        self.over.append(float((mask & ~heads).sum() / mask.size))
        for i, h in enumerate(f.head_masks):
            if h.sum() >= 30:
                full = bool((mask & h).sum() >= 0.99 * h.sum())
                (self.face if f.face_visible[i] else self.behind).append(full)


def run_mode(
    frames: list[SynthFrame], pipe: Pipeline, video: VideoConfig | None, heads: bool
) -> tuple[list[RGBDResult], float, float]:
    """All ``frames`` through one RGBDAnonymizer: results in order, wall and CPU seconds."""
    stream = RGBDAnonymizer(pipe, RGBDConfig(heads=heads), video, intrinsics=frames[0].intrinsics)
    results: list[RGBDResult] = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i, f in enumerate(frames):
        results += stream.push(f.color, f.depth, i)
    results += stream.flush()
    return results, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=5)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--drop", type=float, default=0.0, help="detector loses each face w.p. P")
    ap.add_argument("--no-heads", dest="heads", action="store_false", help="no --heads")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    base = Pipeline.from_config(RunConfig())
    base.detect(np.zeros((480, 640, 3), np.uint8))  # warm up
    scores = {name: Score() for name in MODES}
    for s in range(args.sequences):
        frames = make_scene(args.seed + s, people=args.people, frames=args.frames)
        for name, video in MODES.items():
            det = Dropping(base.detector, args.drop, seed=args.seed + s)
            pipe = Pipeline(det, base.anonymizer, base.masker)
            results, seconds, cpu = run_mode(frames, pipe, video, args.heads)
            assert [r.index for r in results] == list(range(len(frames)))
            sc = scores[name]
            for r in results:
                sc.add(r, frames[r.index], pipe)
            sc.seconds += seconds
            sc.cpu += cpu
            sc.frames += len(frames)
            sc.detections += det.calls
    first = scores["off"]
    print(
        f"{args.sequences} sequences x {args.frames} frames 640x480, {args.people} people "
        f"each, CenterFace{f' losing {args.drop:.0%} of faces per call' if args.drop else ''}"
        f", heads without a face {'on' if args.heads else 'off'}: {len(first.face)} "
        f"head-frames with a visible face, {len(first.behind)} seen from behind"
    )
    print(
        f"{'mode':9} {'det/frame':>9} {'full(face)':>10} {'full(behind)':>12} "
        f"{'over-mask':>9} {'frames/s':>8} {'CPU ms/frame':>12}"
    )
    for name, sc in scores.items():
        behind = np.mean(sc.behind) if sc.behind else float("nan")
        print(
            f"{name:9} {sc.detections / sc.frames:9.2f} {np.mean(sc.face):10.3f} "
            f"{behind:12.3f} {np.mean(sc.over):9.4f} {sc.frames / sc.seconds:8.1f} "
            f"{1000 * sc.cpu / sc.frames:12.1f}"
        )


if __name__ == "__main__":
    main()
