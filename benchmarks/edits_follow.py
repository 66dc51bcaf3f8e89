"""How well a tracked add (an edit list's ``"track": true`` box) follows a face.

A clip from :mod:`_clips` (a real background, real LFW faces drifting, bouncing, growing
and shrinking 0.6x-1.4x, each hidden behind a grey card for six frames) is written with its
ground truth. For every face, a reviewer's box is its ground-truth box on the middle frame
of the clip (``at``), over the whole clip; :func:`veil.video.edits.resolve_tracked_adds`
follows it forward and backward. Measured on every frame where the face can be seen (not
behind its card, not half covered by a face pasted over it):

- under the mask: share of face-frames whose ground-truth box (the pasted LFW crop, forehead
  to chin) lies >= 90% under veil's default mask of the followed box (the ellipse at 1.4x:
  what gets anonymized), and the mean share;
- inside the box: the same against the followed box itself (strict), and the mean IoU;
- seconds to follow all faces (the pre-pass of ``veil video --edits``).

Rows: the detector as configured (window search, then template matching); a detector
that finds nothing (``--threshold 0.999``: template matching and growth only, the case of
a face the detector misses); and the drawn box kept fixed (``"track": false``) as the
baseline.

Example::

    python benchmarks/edits_follow.py --seconds 8 --size 1280x720
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _clips import DEFAULT_BACKGROUND, DEFAULT_FACES, Motion, make_clip
from _machine import describe
from veil.config import DetectorConfig, RunConfig
from veil.edits import EditList
from veil.mask import Masker
from veil.pipeline import Pipeline
from veil.types import Faces
from veil.video.edits import resolve_tracked_adds


def truth(
    size: tuple[int, int], frames: int, faces: int, seed: int
) -> tuple[list[list[np.ndarray | None]], int]:
    """Per face, per frame: its box ``xyxy``, or ``None`` when it cannot be seen: behind
    its grey card, or at least half covered by faces _clips pastes after it (its ground
    truth keeps those). Also how many face-frames were left out for the second reason."""
    rng = np.random.default_rng(seed)
    motions = [Motion(k, size, size[1] / 7, rng) for k in range(faces)]
    drawn = [[_xyxy(m.box(i)) for i in range(frames)] for m in motions]
    out, covered = [], 0
    for k, m in enumerate(motions):
        boxes: list[np.ndarray | None] = []
        for i in range(frames):
            box = drawn[k][i]
            hidden = i in m.hidden
            over = [drawn[j][i] for j in range(k + 1, faces) if i not in motions[j].hidden]
            if not hidden and _covered(box, over) >= 0.5:
                hidden, covered = True, covered + 1
            boxes.append(None if hidden else box)
        out.append(boxes)
    return out, covered


def _xyxy(box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], float)


def _covered(box: np.ndarray, others: list[np.ndarray]) -> float:
    """Share of ``box`` under the union of ``others``."""
    x0, y0, x1, y1 = (round(v) for v in box)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for o in others:
        a0, b0 = max(round(o[0]) - x0, 0), max(round(o[1]) - y0, 0)
        a1, b1 = min(round(o[2]) - x0, x1 - x0), min(round(o[3]) - y0, y1 - y0)
        if a1 > a0 and b1 > b0:
            mask[b0:b1, a0:a1] = True
    return float(mask.mean()) if mask.size else 0.0


def score(
    followed: dict[int, tuple[float, ...]], boxes: list[np.ndarray | None], hw: tuple[int, int]
) -> list[tuple[float, float, float]]:
    """Per visible frame: share of the face box inside the followed box, share of it inside
    veil's default mask of the followed box (the ellipse at 1.4x: what gets anonymized),
    and the boxes' IoU."""
    masker = Masker()
    out = []
    for i, face in enumerate(boxes):
        if face is None or i not in followed:
            continue
        box = np.array(followed[i], float)
        inter = np.prod(
            np.clip(np.minimum(box[2:], face[2:]) - np.maximum(box[:2], face[:2]), 0, None)
        )
        area_f, area_b = np.prod(face[2:] - face[:2]), np.prod(box[2:] - box[:2])
        mask = np.zeros(hw, bool)
        for r in masker.regions(Faces(box[None].astype(np.float32)), hw):
            mask[r.slices] |= r.alpha > 0
        x0, y0, x1, y1 = (round(v) for v in face)
        x0, y0 = max(x0, 0), max(y0, 0)
        masked = float(mask[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0
        out.append((float(inter / area_f), masked, float(inter / (area_f + area_b - inter))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--background", type=Path, default=DEFAULT_BACKGROUND)
    parser.add_argument("--face-dir", type=Path, default=DEFAULT_FACES)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        gt = make_clip(
            clip,
            size=(w, h),
            seconds=args.seconds,
            faces=args.faces,
            background=args.background,
            face_dir=args.face_dir,
            seed=args.seed,
        )
        n = len(gt)
        faces, covered = truth((w, h), n, args.faces, args.seed)
        at = n // 2
        adds = []
        for boxes in faces:
            frame = next(i for i in range(at, n) if boxes[i] is not None)
            adds.append({"frames": [0, n - 1], "box": boxes[frame].tolist(), "at": frame})
        print(describe())
        print(
            f"clip: {w}x{h}, {n} frames, {args.faces} faces, boxes drawn on frame ~{at}; "
            f"{covered} face-frames at least half covered by another face left out"
        )
        print(
            "| follower | face-frames >= 90% under the mask | mean share under the mask "
            "| face-frames >= 90% inside the box | mean IoU | s |"
        )
        print("|---|---|---|---|---|---|")
        rows = [
            ("detector (default threshold)", RunConfig(), True),
            (
                "detector finds nothing (threshold 0.999)",
                RunConfig(detector=DetectorConfig(threshold=0.999)),
                True,
            ),
            ("fixed box (track: false)", None, False),
        ]
        for name, config, track in rows:
            edits = EditList.from_dict({"version": 1, "add": [{**a, "track": track} for a in adds]})
            start = time.perf_counter()
            if config is not None:
                followed = resolve_tracked_adds(clip, edits, Pipeline.from_config(config))
            else:
                followed = {i: {f: a.box for f in range(n)} for i, a in enumerate(edits.add)}
            seconds = time.perf_counter() - start
            got = np.array(
                [s for i, boxes in enumerate(faces) for s in score(followed[i], boxes, (h, w))]
            )
            inside, masked, iou = got[:, 0], got[:, 1], got[:, 2]
            print(
                f"| {name} | {np.mean(masked >= 0.9):.3f} ({len(got)} face-frames) | "
                f"{masked.mean():.3f} | {np.mean(inside >= 0.9):.3f} | {iou.mean():.3f} "
                f"| {seconds:.1f} |"
            )


if __name__ == "__main__":
    main()
