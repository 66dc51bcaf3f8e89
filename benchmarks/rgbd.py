"""RGB-D head-mask benchmark on synthetic scenes with ground truth (``veil.rgbd.synth``).

Every method masks the same CenterFace detections (or, with ``--oracle``, the ground-truth
face boxes); they differ only in the mask: depth-refined heads (with and without
``--heads``), the plain ellipse and the box of :class:`veil.mask.Masker` (scale 1.5).
Reported per method:

- head IoU: |mask ∩ heads| / |mask ∪ heads| per frame (all heads, union), mean;
- over-masking: masked pixels that belong to no head / image pixels, mean;
- fully covered: share of ground-truth heads with >= 99 % of their pixels masked, for
  heads with a visible face and heads seen from behind;
- frames/s of detect + mask + anonymize (gaussian) at the scene size, and of the mask
  step alone (``--no-speed`` skips them);
- with ``--distractors N``: N non-person objects per scene (a lamp, a door post, a
  speaker on a stand, a box on a cabinet) and how many heads the depth head finder
  puts on them (a found head whose mask covers more object than head pixels).

``--real`` runs the PCL Kinect frame; ``--save`` writes the anonymized colour frame with
the outline of every mask drawn on it (red: depth-refined face masks, yellow: heads
without a face), downscaled to ``--save-width`` pixels.

Examples::

    python benchmarks/rgbd.py --scenes 20
    python benchmarks/rgbd.py --scenes 20 --distractors 4 --no-speed
    python benchmarks/rgbd.py --real ../shared/data/rgbd/pcl-five-people --depth-shift=-16,0 \
        --save docs/img/rgbd-pcl-five-people.png
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from veil.config import RunConfig
from veil.mask import Masker, union_mask
from veil.pipeline import Pipeline
from veil.rgbd.depthmask import DepthMasker
from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.synth import SynthFrame, make_scene
from veil.types import Faces

MaskFn = Callable[[Faces, np.ndarray, dict[str, float]], np.ndarray]


def _methods(pipe: Pipeline) -> dict[str, MaskFn]:
    dm = DepthMasker()

    def depth_heads(faces: Faces, depth: np.ndarray, k: dict[str, float]) -> np.ndarray:
        refined = dm.refine(faces, depth, k)
        both = Faces.merge([refined, find_heads_without_faces(depth, k, refined)])
        return union_mask(pipe.masker.regions(both, depth.shape), depth.shape)

    def depth_only(faces: Faces, depth: np.ndarray, k: dict[str, float]) -> np.ndarray:
        refined = dm.refine(faces, depth, k)
        return union_mask(pipe.masker.regions(refined, depth.shape), depth.shape)

    def shape(name: str) -> MaskFn:
        masker = Masker(shape=name, scale=1.5)
        return lambda faces, depth, k: union_mask(masker.regions(faces, depth.shape), depth.shape)

    return {
        "depth+heads": depth_heads,
        "depth": depth_only,
        "ellipse 1.5": shape("ellipse"),
        "box 1.5": shape("box"),
    }


def _score(mask: np.ndarray, f: SynthFrame) -> tuple[float, float, list[tuple[bool, bool]]]:
    heads = f.head_masks.any(axis=0)
    iou = float((mask & heads).sum() / max(1, (mask | heads).sum()))
    over = float((mask & ~heads).sum() / mask.size)
    per_head = []
    for i, h in enumerate(f.head_masks):
        if h.sum() >= 30:
            per_head.append((bool(f.face_visible[i]), bool((mask & h).sum() >= 0.99 * h.sum())))
    return iou, over, per_head


def run_synthetic(args: argparse.Namespace, pipe: Pipeline) -> None:
    methods = _methods(pipe)
    scenes = [
        f
        for s in range(args.scenes)
        for f in make_scene(args.seed + s, people=args.people, distractors=args.distractors)
    ]
    detections = []
    for f in scenes:
        faces = Faces(f.face_boxes[f.face_visible]) if args.oracle else pipe.detect(f.color)
        detections.append(faces)
    n_vis = sum(int(f.face_visible.sum()) for f in scenes)
    print(
        f"{len(scenes)} scenes {scenes[0].color.shape[1]}x{scenes[0].color.shape[0]}, "
        f"{args.people} people each ({n_vis} faces visible), "
        f"{'ground-truth boxes' if args.oracle else 'CenterFace detections'}: "
        f"{sum(len(d) for d in detections)} faces"
    )
    print(
        f"{'method':12} {'head IoU':>8} {'over-mask':>9} {'full(face)':>10} "
        f"{'full(behind)':>12}" + (f" {'fps all':>8} {'fps mask':>9}" if args.speed else "")
    )
    for name, fn in methods.items():
        ious, overs, heads = [], [], []
        for f, faces in zip(scenes, detections, strict=True):
            iou, over, per = _score(fn(faces, f.depth, f.intrinsics), f)
            ious.append(iou)
            overs.append(over)
            heads.extend(per)
        face = [full for vis, full in heads if vis]
        behind = [full for vis, full in heads if not vis]
        fps_all, fps_mask = _speed(pipe, fn, scenes, detections) if args.speed else (0.0, 0.0)
        print(
            f"{name:12} {np.mean(ious):8.3f} {np.mean(overs):9.4f} "
            f"{np.mean(face):10.3f} {np.mean(behind) if behind else float('nan'):12.3f} "
            + (f" {fps_all:8.1f} {fps_mask:9.0f}" if args.speed else "")
        )
    print(f"heads: {len(face)} with a visible face, {len(behind)} seen from behind")
    if args.distractors:
        _false_heads(scenes, detections)


def _false_heads(scenes: list[SynthFrame], detections: list[Faces]) -> None:
    """Heads found without a face that lie mostly on a distractor object, per kind."""
    dm = DepthMasker()
    found: dict[str, int] = {}
    total = 0
    for f, faces in zip(scenes, detections, strict=True):
        refined = dm.refine(faces, f.depth, f.intrinsics)
        heads = find_heads_without_faces(f.depth, f.intrinsics, refined)
        people = f.head_masks.any(axis=0)
        total += int((f.objects.sum(axis=(1, 2)) >= 30).sum())
        for mask in heads.masks if len(heads) else []:
            on = [int((mask & o).sum()) for o in f.objects]
            if max(on) > (mask & people).sum():
                kind = f.object_kinds[int(np.argmax(on))]
                found[kind] = found.get(kind, 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(found.items())) or "none"
    print(f"false heads on {total} visible objects: {sum(found.values())} ({kinds})")


def _speed(
    pipe: Pipeline, fn: MaskFn, scenes: list[SynthFrame], detections: list[Faces]
) -> tuple[float, float]:
    """Frames/s of detect+mask+anonymize, and of the mask step alone (same detections)."""
    dm = DepthMasker()
    t0 = time.perf_counter()
    for f in scenes:
        faces = pipe.detect(f.color)
        if fn.__name__.startswith("depth"):
            faces = dm.refine(faces, f.depth, f.intrinsics)
            if fn.__name__ == "depth_heads":
                extra = find_heads_without_faces(f.depth, f.intrinsics, faces)
                faces = Faces.merge([faces, extra])
        pipe.anonymize(f.color, faces)
    t1 = time.perf_counter()
    for f, faces in zip(scenes, detections, strict=True):
        fn(faces, f.depth, f.intrinsics)
    t2 = time.perf_counter()
    return len(scenes) / (t1 - t0), len(scenes) / (t2 - t1)


def run_real(args: argparse.Namespace, pipe: Pipeline) -> None:
    from veil.io.images import read_image
    from veil.io.rgbd import read_depth, read_intrinsics
    from veil.rgbd.register import parse_shift, shift_depth

    root = Path(args.real)
    image = read_image(next(root.glob("*_color.png"))).image
    depth = read_depth(next(root.glob("*_depth_mm.png")))
    k = read_intrinsics(root / "meta.json")
    shift = parse_shift(args.depth_shift)
    depth = shift_depth(depth, *shift)
    print(f"depth shifted by {shift} px onto the colour image")
    t0 = time.perf_counter()
    faces = pipe.detect(image)
    t1 = time.perf_counter()
    refined = DepthMasker().refine(faces, depth, k)
    heads = find_heads_without_faces(depth, k, refined, margin=args.head_margin)
    t2 = time.perf_counter()
    both = Faces.merge([refined, heads])
    out = pipe.anonymize(image, both).image
    t3 = time.perf_counter()
    masked = union_mask(pipe.masker.regions(both, image.shape), image.shape)
    print(
        f"real frame {root.name}: {image.shape[1]}x{image.shape[0]}, valid depth "
        f"{(depth > 0).mean():.2f}; faces detected {len(faces)}, heads without a face "
        f"{len(heads)}, masked share of pixels {masked.mean():.4f}"
    )
    print(
        f"  detect {1000 * (t1 - t0):.1f} ms, refine+heads {1000 * (t2 - t1):.1f} ms, "
        f"anonymize {1000 * (t3 - t2):.1f} ms"
    )
    for i, box in enumerate(both.xyxy):
        src = both.data.get("mask_source", ["?"] * len(both))[i]
        print(f"  {src:10} box {[round(float(v)) for v in box]}")
    if args.save:
        size = _save_outlined(args.save, out, both, args.save_width)
        print(f"  wrote the anonymized frame with mask outlines to {args.save} ({size} bytes)")


def _save_outlined(path: str, anonymized: np.ndarray, faces: Faces, width: int) -> int:
    """The anonymized frame (never the original) with each mask's outline, downscaled to
    ``width`` px and stored as a 256-colour PNG; returns the file size."""
    import cv2
    from PIL import Image

    canvas = anonymized.copy()
    sources = faces.data.get("mask_source", ["?"] * len(faces))
    for mask, src in zip(faces.masks if faces.masks is not None else [], sources, strict=True):
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        colour = (255, 220, 0) if src == "depth-head" else (255, 40, 40)
        cv2.drawContours(canvas, contours, -1, colour, 2, cv2.LINE_AA)
    h, w = canvas.shape[:2]
    if width < w:
        canvas = cv2.resize(canvas, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).quantize(256).save(path, optimize=True)
    return Path(path).stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--oracle", action="store_true", help="ground-truth face boxes")
    ap.add_argument("--real", default=None, help="folder of the PCL five-people frame")
    ap.add_argument(
        "--save", default=None, help="for --real: PNG of the anonymized frame with mask outlines"
    )
    ap.add_argument(
        "--head-margin", type=float, default=0.0, help="for --real: metres around depth heads"
    )
    ap.add_argument("--save-width", type=int, default=640, help="width of the --save image")
    ap.add_argument("--distractors", type=int, default=0, help="non-person objects per scene")
    ap.add_argument(
        "--no-speed", dest="speed", action="store_false", help="skip the frames/s columns"
    )
    ap.add_argument(
        "--depth-shift",
        default="0,0",
        help="for --real: move depth DX,DY px onto colour (-16,0 fits the PCL frame)",
    )
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    pipe = Pipeline.from_config(RunConfig())
    pipe.detect(np.zeros((480, 640, 3), np.uint8))  # warm up
    if args.real:
        run_real(args, pipe)
    else:
        run_synthetic(args, pipe)


if __name__ == "__main__":
    main()
