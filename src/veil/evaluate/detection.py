"""Detection quality against ground truth: precision, recall, AP@0.5 and recall by face size.

Two ways to judge a method on the same ground truth (see :func:`load_ground_truth`):

* a **detector** (:func:`evaluate_detector`): its boxes are matched to the ground truth
  greedily by score (:func:`match_detections`), WIDER-FACE style: a prediction that matches an
  *ignore* region is neither a true nor a false positive, and ignore regions are never misses;
* the **output folder of any tool** (:func:`evaluate_outputs`): no boxes, only pixels; each
  face is measured with :func:`veil.evaluate.coverage.evaluate_pair` (changed-pixel coverage
  and collateral change outside faces).

Ground-truth boxes are ``(x, y, w, h)``; predictions are ``xyxy`` like :class:`veil.types.Faces`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.boxes import box_iou
from veil.detect.base import Detector
from veil.errors import InputError, VeilError
from veil.evaluate.coverage import SIZE_BINS, CoverageReport, GTImage, evaluate_pair, size_bin
from veil.io.images import IMAGE_SUFFIXES, read_image

__all__ = [
    "DetectionReport",
    "ImageMatch",
    "OutputsReport",
    "average_precision",
    "evaluate_detector",
    "evaluate_outputs",
    "find_output",
    "match_detections",
]

IGNORE_COVERED = 0.5
"""A prediction lying at least this share inside an ignore region is ignored (COCO crowd)."""


def _xywh_to_xyxy(boxes: Any) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


@dataclass(frozen=True)
class ImageMatch:
    """Predictions of one image matched to its ground truth.

    ``tp``, ``ignored`` and ``scores`` have one entry per prediction (a prediction that is
    neither ``tp`` nor ``ignored`` is a false positive); ``gt_hit`` one per ground-truth face.
    """

    scores: np.ndarray  # float64 (n,)
    tp: np.ndarray  # bool (n,)
    ignored: np.ndarray  # bool (n,)
    gt_hit: np.ndarray  # bool (m,)

    @property
    def n_tp(self) -> int:
        return int(self.tp.sum())

    @property
    def n_fp(self) -> int:
        return int((~self.tp & ~self.ignored).sum())


def _ignored(pred: np.ndarray, ignore: np.ndarray, iou: float) -> np.ndarray:
    """Predictions matching an ignore box: IoU >= ``iou`` or mostly inside it."""
    if len(ignore) == 0 or len(pred) == 0:
        return np.zeros(len(pred), bool)
    tl = np.maximum(pred[:, None, :2], ignore[None, :, :2])
    br = np.minimum(pred[:, None, 2:], ignore[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = np.maximum(np.prod(pred[:, 2:] - pred[:, :2], axis=1), 1e-9)
    inside = (inter / area[:, None]).max(axis=1) >= IGNORE_COVERED
    return np.asarray(inside | (box_iou(pred, ignore).max(axis=1) >= iou))


def match_detections(
    pred_xyxy: Any,
    scores: Any,
    gt_xywh: Any,
    ignore_xywh: Any = (),
    *,
    iou: float = 0.5,
) -> ImageMatch:
    """Match predictions to ground-truth faces greedily, highest score first.

    Each prediction takes the unmatched face it overlaps most; with IoU >= ``iou`` it is a
    true positive. Otherwise it is *ignored* when it matches an ignore region (IoU >= ``iou``,
    or at least :data:`IGNORE_COVERED` of its area inside one), else it is a false positive
    (duplicates of an already matched face are false positives, as in PASCAL VOC).
    """
    pred = np.asarray(pred_xyxy, np.float64).reshape(-1, 4)
    score = np.asarray(scores, np.float64).reshape(-1)
    if len(score) != len(pred):
        raise InputError(f"match_detections: {len(pred)} boxes but {len(score)} scores")
    gt = _xywh_to_xyxy(gt_xywh)
    overlap = box_iou(pred, gt) if len(gt) else np.zeros((len(pred), 0), np.float32)
    tp = np.zeros(len(pred), bool)
    hit = np.zeros(len(gt), bool)
    for i in np.argsort(-score, kind="stable"):
        if not len(gt):
            break
        candidates = np.where(hit, -1.0, overlap[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou:
            tp[i], hit[j] = True, True
    ignored = ~tp & _ignored(pred, _xywh_to_xyxy(ignore_xywh), iou)
    return ImageMatch(scores=score, tp=tp, ignored=ignored, gt_hit=hit)


def average_precision(matches: Sequence[ImageMatch]) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+, WIDER FACE) over a whole dataset.

    Predictions of every image are ranked by score; ignored ones are left out. Precision is
    made monotone from the right and integrated over recall: ``sum (r_k - r_{k-1}) p_k``.
    Returns NaN when there is no ground-truth face.
    """
    n_gt = sum(len(m.gt_hit) for m in matches)
    if n_gt == 0:
        return float("nan")
    keep = [(m.scores[~m.ignored], m.tp[~m.ignored]) for m in matches]
    scores = np.concatenate([s for s, _ in keep]) if keep else np.zeros(0)
    tp = np.concatenate([t for _, t in keep]) if keep else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    ctp = np.cumsum(tp[order])
    precision = ctp / np.arange(1, len(order) + 1)
    recall = ctp / n_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def _num(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 6)


@dataclass
class DetectionReport:
    """One detector on one ground-truth set."""

    detector: str
    matches: list[ImageMatch] = field(default_factory=list)
    bins: list[tuple[str, ...]] = field(default_factory=list)  # size bin of each GT face
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, error)
    seconds: float = 0.0

    @property
    def images(self) -> int:
        return len(self.matches)

    def _sum(self, attr: str) -> int:
        return sum(getattr(m, attr) for m in self.matches)

    @property
    def n_faces(self) -> int:
        return sum(len(m.gt_hit) for m in self.matches)

    @property
    def precision(self) -> float:
        tp, fp = self._sum("n_tp"), self._sum("n_fp")
        return tp / (tp + fp) if tp + fp else float("nan")

    @property
    def recall(self) -> float:
        return self._sum("n_tp") / self.n_faces if self.n_faces else float("nan")

    @property
    def ap(self) -> float:
        return average_precision(self.matches)

    def recall_by_bin(self) -> dict[str, tuple[float, int]]:
        """``{bin: (recall, faces)}`` by ground-truth box height; NaN for an empty bin."""
        hits = dict.fromkeys(SIZE_BINS, 0)
        total = dict.fromkeys(SIZE_BINS, 0)
        for m, bins in zip(self.matches, self.bins, strict=True):
            for b, hit in zip(bins, m.gt_hit, strict=True):
                total[b] += 1
                hits[b] += int(hit)
        return {b: (hits[b] / n if (n := total[b]) else float("nan"), n) for b in SIZE_BINS}

    def per_image(self, attr: str) -> float:
        return self._sum(attr) / self.images if self.images else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON (NaN becomes None)."""
        n_pred = sum(len(m.scores) for m in self.matches)
        return {
            "detector": self.detector,
            "images": self.images,
            "failed": [{"file": f, "error": e} for f, e in self.failed],
            "faces": self.n_faces,
            "precision": _num(self.precision),
            "recall": _num(self.recall),
            "ap50": _num(self.ap),
            "recall_by_bin": {
                b: {"recall": _num(r), "faces": n} for b, (r, n) in self.recall_by_bin().items()
            },
            "detections_per_image": _num(n_pred / self.images if self.images else float("nan")),
            "false_positives_per_image": _num(self.per_image("n_fp")),
            "seconds_per_image": _num(self.seconds / self.images if self.images else float("nan")),
        }


def _resolve(gt: GTImage, images_root: Path | None) -> Path:
    return gt.path if images_root is None else images_root / gt.file


def evaluate_detector(
    detector: Detector,
    gt_images: Sequence[GTImage],
    *,
    images_root: str | Path | None = None,
    iou: float = 0.5,
) -> DetectionReport:
    """Run ``detector`` on every ground-truth image and match its boxes (see module docs).

    AP is computed over the boxes the detector returns, so it reflects the detector's own
    score threshold; lower the threshold for the full curve. ``images_root`` replaces the
    folder the GT files are relative to. Unreadable images are listed in ``failed``.
    """
    root = None if images_root is None else Path(images_root)
    report = DetectionReport(detector=detector.name or type(detector).__name__)
    for gt in gt_images:
        try:
            image = read_image(_resolve(gt, root)).image
            start = time.perf_counter()
            faces = detector.detect(image)
            report.seconds += time.perf_counter() - start
        except VeilError as exc:
            report.failed.append((gt.file, str(exc)))
            continue
        report.matches.append(
            match_detections(faces.xyxy, faces.scores, gt.faces, gt.ignore, iou=iou)
        )
        report.bins.append(tuple(size_bin(h) for h in gt.faces[:, 3]))
    return report


def find_output(outputs_dir: Path, rel: str) -> Path | None:
    """The file for ``rel`` under ``outputs_dir``: same relative path, else the same path
    with another image suffix (a tool that writes PNG for JPEG input); None if absent."""
    exact = outputs_dir / rel
    if exact.is_file():
        return exact
    base = exact.with_suffix("")
    for suffix in sorted(IMAGE_SUFFIXES):
        for candidate in (base.with_suffix(suffix), base.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


@dataclass
class OutputsReport:
    """Coverage of another tool's outputs; missing and unusable outputs are listed."""

    coverage: CoverageReport = field(default_factory=CoverageReport)
    missing: list[str] = field(default_factory=list)  # GT files without an output
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, why unusable)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.coverage.to_dict(),
            "missing_files": self.missing,
            "failed": [{"file": f, "error": e} for f, e in self.failed],
        }


def evaluate_outputs(
    gt_images: Sequence[GTImage],
    outputs_dir: str | Path,
    *,
    images_root: str | Path | None = None,
) -> OutputsReport:
    """Coverage of ground-truth faces in a folder of anonymized images made by any tool.

    Outputs are matched to GT files by relative path (``file`` of the GT JSON, see
    :func:`find_output`). A missing output, an unreadable one or one whose size differs from
    its original counts as an image whose faces were all missed, and is listed.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        raise InputError(f"{outputs_dir}: not a folder")
    root = None if images_root is None else Path(images_root)
    report = OutputsReport()
    for gt in gt_images:
        out = find_output(outputs_dir, gt.file)
        if out is None:
            report.missing.append(gt.file)
            report.coverage.add_missing(gt.faces[:, 3].tolist())
            continue
        try:
            original = read_image(_resolve(gt, root)).image
            result = evaluate_pair(original, read_image(out).image, gt.faces, gt.ignore)
        except VeilError as exc:
            report.failed.append((gt.file, str(exc)))
            report.coverage.add_missing(gt.faces[:, 3].tolist())
            continue
        report.coverage.add(result)
    return report
