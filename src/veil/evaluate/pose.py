"""Human pose before and after anonymization: COCO keypoint AP/AR with pycocotools.

A pose estimator is anything with ``estimate(image_rgb) -> list[keypoints]``: one
``float32 (17, 3)`` array per person, rows in COCO keypoint order, columns ``x, y`` in
pixels of the image and a confidence in ``[0, 1]`` (:class:`PoseEstimator`).
:func:`evaluate_pose` runs it on the originals and on the anonymized images listed in a
COCO person-keypoints file and scores both with ``COCOeval(..., "keypoints")``: if
anonymization harms pose estimation, AP drops from "before" to "after".

:class:`OnnxPoseEstimator` runs a pose model from an ``.onnx`` file (ONNX Runtime). The
conventions, kept deliberately simple:

* input: the model's first input, ``float32 (1, 3, H, W)``, RGB scaled to ``[0, 1]``, then
  ``(x - mean) / std`` (ImageNet statistics by default; ``mean=(0,0,0), std=(1,1,1)`` turns
  that off). ``H, W`` are read from the model, or ``input_size`` when they are dynamic.
* output: the first output, either
  - **heatmaps** ``(1, 17, h, w)`` (top-down, e.g. SimpleBaseline/HRNet): the image (or
    each box of ``person_boxes(image)``) is resized to ``H x W``; each keypoint is the
    arg-max of its heatmap (cell centre), its confidence the heatmap's maximum; or
  - **keypoints** ``(1, n, 17, 3)`` or ``(1, n, 51)`` (bottom-up): ``x, y`` in input pixels
    and a score, for ``n`` people; the whole image is resized to ``H x W``.

MediaPipe's pose landmark model (``.tflite``, run by OpenVINO) is in
:mod:`veil.evaluate.pose_mediapipe`; :func:`load_pose_estimator` picks the estimator from a
path or ``"mediapipe"``. A :class:`TopDownPoseEstimator` is given the ground-truth person
boxes by :func:`evaluate_pose`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from veil.errors import BackendError, InputError, MissingExtraError
from veil.types import check_image

__all__ = [
    "COCO_KEYPOINTS",
    "OnnxPoseEstimator",
    "PoseEstimator",
    "PoseReport",
    "TopDownPoseEstimator",
    "evaluate_pose",
    "load_pose_estimator",
]

COCO_KEYPOINTS = 17
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PoseEstimator(Protocol):
    """Anything that finds people's 17 COCO keypoints in an RGB ``uint8 (H, W, 3)`` image."""

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """One ``float32 (17, 3)`` array (x, y, confidence) per person."""
        ...


@runtime_checkable
class TopDownPoseEstimator(Protocol):
    """A pose estimator that can be told where the people are (``xyxy`` boxes, pixels)."""

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]: ...

    def estimate_in_boxes(self, image_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
        """One ``float32 (17, 3)`` array per box, in the order of the boxes."""
        ...


class OnnxPoseEstimator:
    """A heat-map (top-down) or keypoint (bottom-up) ONNX pose model; see the module docs.

    Args:
        path: the ``.onnx`` file.
        person_boxes: for heat-map models, ``person_boxes(image) -> xyxy (n, 4)``; each box
            is one person. ``None``: the whole image is one person.
        input_size: ``(H, W)`` when the model's input size is dynamic.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        person_boxes: Callable[[np.ndarray], np.ndarray] | None = None,
        input_size: tuple[int, int] = (256, 192),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"pose model {self.path}: no such file")
        try:
            self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendError(f"pose model {self.path}: cannot load: {exc}") from exc
        inp = self._session.get_inputs()[0]
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        self._input = inp.name
        self.size = (dims[2] or input_size[0], dims[3] or input_size[1])
        self.person_boxes = person_boxes
        self._mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self._std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)

    def _run(self, crop: np.ndarray) -> np.ndarray:
        h, w = self.size
        x = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        x = (x.transpose(2, 0, 1)[None] - self._mean) / self._std
        try:
            out = self._session.run(None, {self._input: x.astype(np.float32)})[0]
        except Exception as exc:
            raise BackendError(f"pose model {self.path}: inference failed: {exc}") from exc
        return np.asarray(out, np.float32)

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """One ``float32 (17, 3)`` per person, in pixels of ``image_rgb``."""
        image = check_image(image_rgb)
        ih, iw = image.shape[:2]
        whole = np.array([[0, 0, iw, ih]], np.float32)
        boxes = whole if self.person_boxes is None else self.person_boxes(image)
        people = []
        for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4).round().astype(int):
            c0, r0, c1, r1 = max(x0, 0), max(y0, 0), min(x1, iw), min(y1, ih)
            if c1 - c0 < 2 or r1 - r0 < 2:
                continue
            out = self._run(np.ascontiguousarray(image[r0:r1, c0:c1]))
            if out.ndim != 4 or out.shape[1] != COCO_KEYPOINTS:
                return self._keypoints(out, iw, ih) if boxes is whole else self._bad(out)
            people.append(_decode_heatmaps(out[0], (c0, r0, c1 - c0, r1 - r0)))
        return people

    def _keypoints(self, out: np.ndarray, iw: int, ih: int) -> list[np.ndarray]:
        if out.ndim not in (3, 4) or out.shape[-1] not in (3, 51):
            self._bad(out)
        kp = out.reshape(-1, COCO_KEYPOINTS, 3).copy()
        kp[..., 0] *= iw / self.size[1]
        kp[..., 1] *= ih / self.size[0]
        return [k.astype(np.float32) for k in kp]

    def _bad(self, out: np.ndarray) -> list[np.ndarray]:
        raise BackendError(
            f"pose model {self.path}: output shape {out.shape}; expected heatmaps "
            f"(1, {COCO_KEYPOINTS}, h, w) or keypoints (1, n, {COCO_KEYPOINTS}, 3) / (1, n, 51)"
        )


def _decode_heatmaps(maps: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``(17, h, w)`` heatmaps of a crop at ``box (x, y, w, h)`` -> ``(17, 3)`` in image px."""
    k, h, w = maps.shape
    flat = maps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    ys, xs = np.divmod(idx, w)
    x0, y0, bw, bh = box
    out = np.empty((k, 3), np.float32)
    out[:, 0] = x0 + (xs + 0.5) * bw / w
    out[:, 1] = y0 + (ys + 0.5) * bh / h
    out[:, 2] = np.clip(flat.max(axis=1), 0, 1)
    return out


# --- COCO evaluation -------------------------------------------------------------------------


@dataclass
class PoseReport:
    """COCO keypoint AP/AR on originals ("before") and anonymized images ("after")."""

    images: int = 0
    people: int = 0  # GT people with at least one labelled keypoint
    person_boxes: str = "estimator"  # "ground truth": top-down on the GT person boxes
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # no anonymized file
    unusable: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "people": self.people,
            "person_boxes": self.person_boxes,
            "before": self.before,
            "after": self.after,
            "missing_anonymized": self.missing,
            "unusable": [{"file": f, "error": e} for f, e in self.unusable],
        }


def _coco_modules() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as exc:
        raise MissingExtraError("pycocotools", "coco", "COCO keypoint AP/AR") from exc
    return COCO, COCOeval


def _score(gt: Any, results: list[dict[str, Any]], image_ids: list[int]) -> dict[str, float]:
    """AP, AP50, AP75, AR of ``results`` on ``image_ids`` (0 when there is no result)."""
    _, COCOeval = _coco_modules()
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ar": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [max(0.0, round(float(v), 6)) for v in ev.stats]
    return {"ap": s[0], "ap50": s[1], "ap75": s[2], "ar": s[5]}


def _results(image_id: int, people: list[np.ndarray]) -> list[dict[str, Any]]:
    out = []
    for kp in people:
        kp = np.asarray(kp, np.float64).reshape(COCO_KEYPOINTS, 3)
        out.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                "score": float(kp[:, 2].mean()),
            }
        )
    return out


def _gt_boxes(gt: Any, image_id: int) -> np.ndarray:
    """``xyxy (n, 4)``: the image's non-crowd people with at least one labelled keypoint."""
    anns = gt.loadAnns(gt.getAnnIds(imgIds=[image_id], catIds=[1], iscrowd=False))
    xywh = [a["bbox"] for a in anns if a.get("num_keypoints", 0) > 0]
    boxes = np.asarray(xywh, np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def _estimate(
    estimator: PoseEstimator, image: np.ndarray, boxes: np.ndarray | None
) -> list[np.ndarray]:
    if boxes is not None and isinstance(estimator, TopDownPoseEstimator):
        return estimator.estimate_in_boxes(image, boxes)
    return estimator.estimate(image)


def evaluate_pose(
    estimator: PoseEstimator,
    annotations: str | Path,
    original_dir: str | Path,
    anonymized_dir: str | Path,
    *,
    limit: int | None = None,
    gt_boxes: bool = True,
) -> PoseReport:
    """COCO keypoint AP/AR of ``estimator`` on originals and anonymized images.

    ``annotations`` is a COCO person-keypoints JSON whose ``file_name`` entries are relative
    to ``original_dir``; anonymized files have the same relative path (another image suffix
    is accepted). Images without an anonymized file or unreadable are listed and left out
    of BOTH scores, so before and after stay comparable.

    With ``gt_boxes`` and a :class:`TopDownPoseEstimator`, the estimator gets the
    ground-truth person boxes (non-crowd, at least one labelled keypoint), the usual
    "with ground-truth boxes" protocol: the same boxes before and after, so the scores
    measure the keypoints alone. Otherwise the estimator finds the people itself.
    """
    from veil.evaluate.detection import find_output
    from veil.io.images import read_image

    COCO, _ = _coco_modules()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            gt = COCO(str(annotations))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{annotations}: not a COCO keypoints file ({exc!r})") from exc
    top_down = gt_boxes and isinstance(estimator, TopDownPoseEstimator)
    report = PoseReport(person_boxes="ground truth" if top_down else "estimator")
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    ids = []
    for image_id in sorted(gt.getImgIds())[:limit]:
        rel = str(gt.imgs[image_id]["file_name"])
        found = find_output(Path(anonymized_dir), rel)
        if found is None:
            report.missing.append(rel)
            continue
        try:
            original = read_image(Path(original_dir) / rel).image
            anonymized = read_image(found).image
        except InputError as exc:
            report.unusable.append((rel, str(exc)))
            continue
        ids.append(image_id)
        boxes = _gt_boxes(gt, image_id) if top_down else None
        before += _results(image_id, _estimate(estimator, original, boxes))
        after += _results(image_id, _estimate(estimator, anonymized, boxes))
    report.images = len(ids)
    anns = gt.loadAnns(gt.getAnnIds(imgIds=ids, catIds=[1], iscrowd=False))
    report.people = sum(1 for a in anns if a.get("num_keypoints", 0) > 0)
    if ids:
        report.before, report.after = _score(gt, before, ids), _score(gt, after, ids)
    return report


def load_pose_estimator(spec: str | Path) -> PoseEstimator:
    """A pose estimator from ``PATH.onnx``, ``PATH.tflite`` (MediaPipe pose landmark) or
    ``"mediapipe"`` (the model inside the installed mediapipe package, not imported)."""
    from veil.evaluate.pose_mediapipe import MediaPipePoseEstimator

    if str(spec) == "mediapipe":
        return MediaPipePoseEstimator()
    path = Path(spec)
    if path.suffix.lower() == ".tflite":
        return MediaPipePoseEstimator(path)
    if path.suffix.lower() == ".onnx":
        return OnnxPoseEstimator(path)
    raise InputError(f"pose model {spec}: expected a .onnx file, a .tflite file or 'mediapipe'")
