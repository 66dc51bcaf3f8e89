"""Whole-person mode (``--target person``) on COCO images with person masks.

For every image with a (non-crowd) person annotation, veil's default detector finds the
faces and :class:`veil.target.PersonTarget` builds the regions that ``--target person``
anonymizes (person masks from MediaPipe's pose models, seeded by the faces, plus any face
region they leave uncovered). Against the union of the ground-truth person polygons
(crowd regions ignored) it prints:

* ``coverage``: share of ground-truth person pixels inside the regions (target >= 0.95),
  overall and by person height (each person's own pixels);
* ``people >= 0.95``: share of people of whom at least 95% of the pixels are covered;
* ``outside``: share of the non-person pixels the regions take (false positives; the
  polygons are coarse, so part of it is the people's own outline);
* speed: person regions per second (faces given) and the whole ``--target person``
  pipeline, with the CPU model.

With ``--pose``, COCO keypoint AP/AR before/after anonymization (MediaPipe's pose landmark
model on the ground-truth boxes, :func:`veil.evaluate.pose.evaluate_pose`) for
``--target face`` and ``--target person``: the utility cost of hiding whole people.

Example::

    python benchmarks/person_mode.py ../shared/data/coco-person-mini --pose
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from veil.config import AnonymizerConfig, RunConfig
from veil.detect.person import PersonSegmenter
from veil.io.images import read_image, write_image
from veil.mask import Masker, union_mask
from veil.pipeline import Pipeline
from veil.target import PersonTarget

sys.path.insert(0, str(Path(__file__).parent))
import _machine

BINS = ((0, 64, "< 64 px"), (64, 160, "64-160 px"), (160, 1e9, ">= 160 px"))


def _coco(annotations: Path):  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(annotations))


def measure(
    root: Path, segmenter: PersonSegmenter, limit: int | None, half: str = "", **target_options: Any
) -> dict[str, float]:
    """The figures on the images with people (``half``: ``first`` / ``second`` half only)."""
    coco = _coco(root / "annotations" / "person_keypoints_val2017.json")
    pipe = Pipeline.from_config(RunConfig())
    target, masker = PersonTarget(segmenter, **target_options), Masker()
    ids = [i for i in sorted(coco.getImgIds()) if coco.getAnnIds(imgIds=i, iscrowd=False)]
    if half:
        ids = ids[: len(ids) // 2] if half == "first" else ids[len(ids) // 2 :]
    gt_px = hit_px = out_px = bg_px = 0
    per_bin = {name: [0, 0] for _, _, name in BINS}
    people = people_ok = 0
    seg_time = total_time = 0.0
    for image_id in ids[:limit]:
        info = coco.imgs[image_id]
        image = read_image(root / "val2017" / info["file_name"]).image
        t0 = time.perf_counter()
        faces = pipe.detect(image)
        t1 = time.perf_counter()
        regions = target.regions(lambda image=image: image, faces, masker, image.shape)
        t2 = time.perf_counter()
        seg_time += t2 - t1
        total_time += t2 - t0
        hidden = union_mask(regions, image.shape)
        gt = np.zeros(image.shape[:2], bool)
        crowd = np.zeros(image.shape[:2], bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            m = coco.annToMask(ann).astype(bool)
            if ann.get("iscrowd"):
                crowd |= m
                continue
            gt |= m
            share = (m & hidden).sum() / max(m.sum(), 1)
            people += 1
            people_ok += share >= 0.95
            height = ann["bbox"][3]
            name = next(n for lo, hi, n in BINS if lo <= height < hi)
            per_bin[name][0] += int(m.sum())
            per_bin[name][1] += int((m & hidden).sum())
        gt_px += int(gt.sum())
        hit_px += int((gt & hidden).sum())
        out_px += int((hidden & ~gt & ~crowd).sum())
        bg_px += int((~gt & ~crowd).sum())
    n = len(ids[:limit])
    result = {
        "images": n,
        "people": people,
        "coverage": hit_px / max(gt_px, 1),
        "people >= 0.95": people_ok / max(people, 1),
        "outside": out_px / max(bg_px, 1),
        "person regions / s": n / max(seg_time, 1e-9),
        "detect + person regions / s": n / max(total_time, 1e-9),
    }
    for name, (px, hit) in per_bin.items():
        result[f"coverage {name}"] = hit / max(px, 1)
    return result


def anonymize_folder(  # type: ignore[no-untyped-def]
    root: Path, target: str, method: str, out: Path, ids: list[int], coco
) -> None:
    """``--target target -m method`` on the images ``ids``, written to ``out``."""
    config = RunConfig(target=target, anonymizer=AnonymizerConfig(method=method, seed=0))
    pipe = Pipeline.from_config(config)
    for image_id in ids:
        name = coco.imgs[image_id]["file_name"]
        write_image(out / name, pipe.process(read_image(root / "val2017" / name).image).image)


def utility_and_bodies(
    root: Path, limit: int | None, methods: list[str]
) -> tuple[dict[str, dict[str, float]], dict[str, object]]:
    """COCO keypoint AP/AR and body linkage before and after ``--target face`` and
    ``--target person``: the utility cost and the privacy gain of hiding whole people."""
    from veil.evaluate.body_reid import body_crops, body_linkage
    from veil.evaluate.pose import evaluate_pose
    from veil.evaluate.pose_mediapipe import MediaPipePoseEstimator

    annotations = root / "annotations" / "person_keypoints_val2017.json"
    coco = _coco(annotations)
    estimator = MediaPipePoseEstimator()
    pose: dict[str, dict[str, float]] = {}
    bodies: dict[str, object] = {}
    ids = sorted(coco.getImgIds())[:limit]
    runs = [("face", m) for m in methods] + [("person", m) for m in methods]
    for target, method in runs:
        name = f"--target {target} -m {method}"
        with tempfile.TemporaryDirectory() as tmp:
            anonymize_folder(root, target, method, Path(tmp), ids, coco)
            report = evaluate_pose(estimator, annotations, root / "val2017", tmp, limit=limit)
            crops = body_crops(root / "val2017", tmp, person_boxes=annotations, limit=limit)
            if "original" not in bodies:
                bodies["original"] = body_linkage(
                    crops.originals, crops.originals, masks=crops.masks
                )
            bodies[name] = body_linkage(crops.anonymized, crops.originals, masks=crops.masks)
        pose["original"] = report.before
        pose[name] = report.after
    return pose, bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="coco-person-mini folder")
    parser.add_argument("--limit", type=int, default=None, help="first N images")
    parser.add_argument(
        "--pose", action="store_true", help="also keypoint AP and body linkage before/after"
    )
    parser.add_argument("--threshold", type=float, default=None, help="mask probability")
    parser.add_argument("--grow", type=float, default=None, help="mask dilation (box height)")
    parser.add_argument("--methods", default="gaussian", help="--pose: methods, e.g. a,b")
    parser.add_argument("--grids", default=None, help="detector tile grids, e.g. 2,3")
    parser.add_argument("--detector-score", type=float, default=None)
    parser.add_argument("--presence", type=float, default=None, help="pose presence")
    parser.add_argument("--scan-threshold", type=float, default=None, help="scan probability")
    parser.add_argument("--no-scan", action="store_true", help="without the scan mask")
    parser.add_argument("--no-body", action="store_true", help="without the body priors")
    parser.add_argument(
        "--half", choices=("first", "second"), default="", help="half of the images only"
    )
    args = parser.parse_args()
    pairs = (
        ("threshold", args.threshold),
        ("grow", args.grow),
        ("detector_score", args.detector_score),
        ("presence", args.presence),
        ("scan_threshold", args.scan_threshold),
        ("grids", tuple(int(n) for n in args.grids.split(",") if n) if args.grids else None),
    )
    options = {k: v for k, v in pairs if v is not None}
    segmenter = PersonSegmenter(**options)
    started = time.perf_counter()
    target_options: dict[str, Any] = {"scan": not args.no_scan}
    if args.no_body:
        target_options["body"] = None
    result = measure(args.root, segmenter, args.limit, args.half, **target_options)
    print(f"## --target person on {args.root.name}: regions vs ground-truth person masks")
    print(f"segmenter {segmenter.describe()}; target {target_options}; half {args.half or 'all'}")
    print("| measure | value |")
    print("|---|---|")
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"| {key} | {shown} |")
    if args.pose:
        methods = [m for m in args.methods.split(",") if m]
        pose, bodies = utility_and_bodies(args.root, args.limit, methods)
        print("\n## COCO keypoint AP/AR (MediaPipe pose landmark model, ground-truth boxes)")
        print("| run | AP | AP50 | AR |")
        print("|---|---|---|---|")
        for name, scores in pose.items():
            ap, ap50, ar = (scores.get(k, float("nan")) for k in ("ap", "ap50", "ar"))
            print(f"| {name} | {ap:.3f} | {ap50:.3f} | {ar:.3f} |")
        first = next(iter(bodies.values()))
        print(f"\n## Body linkage: {getattr(first, 'method', '')}")
        print(
            "COCO people >= 64 px tall, their polygon pixels only; each anonymized crop "
            "against all originals"
        )
        print("| run | people | linkage@1 | linkage mAP | chance | band |")
        print("|---|---|---|---|---|---|")
        for name, r in bodies.items():
            d = r.to_dict()  # type: ignore[attr-defined]
            print(
                f"| {name} | {d['people']} | {d['linkage_rank1']:.3f} | "
                f"{d['linkage_map']:.3f} | {d['chance']:.3f} | {d['band']} |"
            )
    seconds = time.perf_counter() - started
    print(f"\n# {_machine.describe()}; measured in {seconds:.0f} s")


if __name__ == "__main__":
    main()
