"""``veil eval utility | video | compare``: added to the ``eval`` group by the CLI.

The lead registers them with ``eval_group.add_command(utility)`` etc.; tables and JSON
follow ``veil eval detection`` / ``privacy``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from veil.commands.eval import (
    EXIT_NOTHING_MEASURED,
    _fail,
    _listed,
    _names,
    _pct,
    _table,
    _write_json,
)
from veil.errors import VeilError

__all__ = ["compare", "utility", "video"]


def _f(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _utility_table(d: dict[str, Any]) -> None:
    rows = [
        ["SSIM outside mask", _f(d["ssim_outside"], 4)],
        ["PSNR outside mask (dB, cap 100)", _f(d["psnr_outside"], 1)],
        ["SSIM inside mask", _f(d["ssim_inside"])],
        ["PSNR inside mask (dB)", _f(d["psnr_inside"], 1)],
        [f"landmark error / IOD (n={d['landmark_pairs']})", _f(d["landmark_error"])],
        ["face re-detected", _pct(d["redetection"])],
        ["person agreement (HOG)", _pct(d["people_agreement"])],
    ]
    _table(["measure", "value"], rows)


@click.command()
@click.option("--original", required=True, type=click.Path(path_type=Path))
@click.option("--anonymized", required=True, type=click.Path(path_type=Path))
@click.option("--detector", default="centerface", show_default=True, help="Face locator.")
@click.option("--no-landmarks", is_flag=True, help="Skip the dlib 68-point landmark error.")
@click.option("--no-people", is_flag=True, help="Skip the HOG person-detection agreement.")
@click.option(
    "--pose-model",
    default=None,
    help="PATH.onnx, PATH.tflite (MediaPipe pose landmark) or 'mediapipe' (the model in "
    "the installed mediapipe package).",
)
@click.option("--coco", type=click.Path(path_type=Path), default=None, help="COCO keypoints GT.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="First N pairs only.")
def utility(
    original: Path,
    anonymized: Path,
    detector: str,
    no_landmarks: bool,
    no_people: bool,
    pose_model: str | None,
    coco: Path | None,
    json_out: Path | None,
    limit: int | None,
) -> None:
    """What survives anonymization: SSIM/PSNR outside and inside the face mask, landmark
    error, face re-detection, person detection agreement, COCO keypoint AP/AR.

    The mask is veil's default region around the faces found on each original. COCO
    keypoint AP/AR (before/after) needs --pose-model and --coco (file_name entries
    relative to --original); top-down models (MediaPipe) get the ground-truth person
    boxes. '--pose-model mediapipe' needs the files of
    'pip install --no-deps mediapipe==0.10.14' (veil never downloads a model).
    """
    from veil.evaluate.utility import UtilityConfig, evaluate_utility

    if (pose_model is None) != (coco is None):
        _fail("--pose-model and --coco go together")
    try:
        from veil.evaluate.pose import evaluate_pose, load_pose_estimator

        # the pose model first: a missing one fails before the long face measurements
        estimator = None if pose_model is None else load_pose_estimator(pose_model)
        config = UtilityConfig(
            detector=detector, landmarks=not no_landmarks, people=not no_people, limit=limit
        )
        report = evaluate_utility(original, anonymized, config)
        pose = None
        if estimator is not None and coco is not None:
            pose = evaluate_pose(estimator, coco, original, anonymized, limit=limit)
    except VeilError as exc:
        _fail(str(exc))
        return
    d = report.to_dict()
    click.echo(f"pairs: {d['pairs']}, measured: {d['measured']}")
    _listed("missing in the anonymized folder", report.missing)
    _listed("missing in the original folder", report.extra)
    _listed("unusable", [f"{f}: {e}" for f, e in report.unusable])
    _listed("no face found on the original", report.no_face)
    _listed("no landmarks on the original", report.no_landmarks)
    _listed("unavailable", [f"{k}: {v}" for k, v in report.unavailable.items()])
    _utility_table(d)
    data: dict[str, Any] = {"kind": "utility", **d}
    if pose is not None:
        click.echo(
            f"\nCOCO keypoints ({pose.images} images, {pose.people} people, "
            f"person boxes: {pose.person_boxes}):"
        )
        rows = [[k, _f(pose.before.get(k)), _f(pose.after.get(k))] for k in ("ap", "ap50", "ar")]
        _table(["measure", "originals", "anonymized"], rows)
        _listed("pose: missing anonymized", pose.missing)
        data["pose"] = pose.to_dict()
    _write_json(json_out, data)
    if not report.measured:
        click.echo("veil: no pair could be measured", err=True)
        sys.exit(EXIT_NOTHING_MEASURED)


@click.command()
@click.option("--original", required=True, type=click.Path(path_type=Path))
@click.option("--anonymized", required=True, type=click.Path(path_type=Path))
@click.option("--audit", type=click.Path(path_type=Path), default=None, help="veil audit JSON.")
@click.option("--gt", type=click.Path(path_type=Path), default=None, help="Per-frame GT JSON.")
@click.option("--no-identity", is_flag=True, help="Skip identity drift (dlib embeddings).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def video(
    original: Path,
    anonymized: Path,
    audit: Path | None,
    gt: Path | None,
    no_identity: bool,
    json_out: Path | None,
) -> None:
    """Mask flicker, identity drift along tracks and bare frames of an anonymized clip.

    Tracks come from --audit (veil's audit JSON) or from CenterFace + tracking on the
    original. Ground truth: {"frames": [{"index": i, "faces": [[x, y, w, h], ...]}]}.
    """
    from veil.evaluate.video_metrics import evaluate_video

    try:
        result = evaluate_video(original, anonymized, audit=audit, gt=gt, identity=not no_identity)
    except VeilError as exc:
        _fail(str(exc))
        return
    d = result.to_dict()
    click.echo(f"frames: {d['frames']}, only in one video: {d['frame_mismatch']}")
    rows = [
        ["tracks", str(d["tracks"])],
        ["mask IoU between frames (mean)", _f(d["mask_iou_mean"])],
        ["mask IoU between frames (min)", _f(d["mask_iou_min"])],
        ["identity drift (mean to track centroid)", _f(d["identity_drift_mean"])],
        ["bare frames", "-" if d["bare_frames"] is None else str(d["bare_frame_count"])],
    ]
    _table(["measure", "value"], rows)
    _listed("bare frames", d["bare_frames"] or [])
    _listed("unavailable", [f"{k}: {v}" for k, v in result.unavailable.items()])
    _write_json(
        json_out, {"kind": "video", "original": str(original), "anonymized": str(anonymized), **d}
    )
    if not d["frames"]:
        sys.exit(EXIT_NOTHING_MEASURED)


def _externals(values: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            _fail(f"--external {v!r}: expected NAME=DIR")
        out[name] = Path(folder)
    return out


COMPARE_COLUMNS = [
    ("method", "anonymization method"),
    ("recall", "coverage set: share of faces covered (>= 90% of the face ellipse changed)"),
    ("recall<10px", "the same for faces under 10 px"),
    ("outside", "share of pixels changed outside the faces (collateral)"),
    ("leak", "identity set: share of faces within dlib distance 0.6 of their original"),
    ("leak worst", "the same after the strongest of the four attacks"),
    ("band", "privacy band from the worst leak (DeepPrivacy2's bands)"),
    ("SSIM out", "structural similarity outside the masks (1 = untouched)"),
    ("SSIM in", "structural similarity inside the masks"),
    ("LM err", "landmark error / inter-ocular distance (lower = pose and expression kept)"),
    ("re-detect", "share of anonymized faces CenterFace still finds (a face is still there)"),
    ("people kept", "HOG person detections agreeing before/after (people still findable)"),
    ("s/img", "seconds per image"),
]


@click.command()
@click.option(
    "--methods", default="gaussian,pixelate", show_default=True, help="Comma-separated, or 'all'."
)
@click.option("--external", "externals", multiple=True, help="NAME=DIR of another tool's outputs.")
@click.option(
    "--coverage-set",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with annotations.json.",
)
@click.option(
    "--identity-set", type=click.Path(path_type=Path), default=None, help="<person>/<image> folder."
)
@click.option(
    "--attacks", default="all", show_default=True, help="Comma-separated, 'all' or 'none'."
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="N images of each set: the first N of the coverage set; of the identity set, two "
    "images of each person in turn, so N spreads over N/2 people.",
)
@click.option(
    "--work-dir", type=click.Path(path_type=Path), default=None, help="Outputs (default: temp)."
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processes for the privacy measures (same numbers, faster on several cores).",
)
@click.option("-q", "--quiet", is_flag=True)
def compare(
    methods: str,
    externals: tuple[str, ...],
    coverage_set: Path | None,
    identity_set: Path | None,
    attacks: str,
    limit: int | None,
    work_dir: Path | None,
    json_out: Path | None,
    workers: int,
    quiet: bool,
) -> None:
    """Run several methods on the same images and detections; one table of all metrics.

    \b
    Example:
      veil eval compare --methods gaussian,pixelate,synthetic --coverage-set faces/ \\
          --identity-set people/ --limit 60 --json compare.json
    """
    from veil.anonymize.base import ANONYMIZERS
    from veil.evaluate.attacks import ATTACKS
    from veil.evaluate.compare import compare_methods, flat_row

    names = _names(methods, ANONYMIZERS.names(), "method")
    attack_names = _names(attacks, list(ATTACKS), "attack")
    say = (lambda _: None) if quiet else (lambda m: click.echo(f"veil: {m}", err=True))
    try:
        with tempfile.TemporaryDirectory(prefix="veil-compare-") as tmp:
            result = compare_methods(
                names,
                coverage_set=coverage_set,
                identity_set=identity_set,
                limit=limit,
                attacks=attack_names,
                work_dir=work_dir or Path(tmp),
                externals=_externals(externals),
                progress=say,
                workers=workers,
            )
    except VeilError as exc:
        _fail(str(exc))
        return
    data = result.to_dict()
    click.echo(", ".join(f"{k}: {v}" for k, v in result.sets.items() if v is not None))
    header = [h for h, _ in COMPARE_COLUMNS]
    rows = []
    for r in result.rows:
        f = flat_row(r.to_dict())
        pcts = [_pct(f[k]) for k in ("recall", "recall_0-10", "outside_changed")]
        pcts += [_pct(f[k]) for k in ("within_0.6", "within_0.6_worst")]
        util = [_f(f["ssim_outside"], 4), _f(f["ssim_inside"]), _f(f["landmark_error"])]
        util += [_pct(f["redetection"]), _pct(f["people_agreement"])]
        rows.append([f["method"], *pcts, f["band"] or "-", *util, _f(f["seconds_per_image"])])
    _table(header, rows)
    click.echo("\n".join(f"  {h:<12} {meaning}" for h, meaning in COMPARE_COLUMNS))
    _listed(
        "methods that could not run", [f"{r.method}: {r.error}" for r in result.rows if r.error]
    )
    _write_json(json_out, data)
