"""Whole-person masks from MediaPipe's BlazePose models, run by OpenVINO.

The ``mediapipe`` wheel ships ``modules/pose_detection/pose_detection.tflite`` (a person
detector, 224 x 224) and ``modules/pose_landmark/pose_landmark_full.tflite`` (33 body
landmarks plus a 256 x 256 **segmentation** of the person in its crop), both Apache-2.0.
OpenVINO reads ``.tflite`` files directly; mediapipe itself is never imported
(``pip install --no-deps mediapipe==0.10.14`` only places the files). The wheel's selfie
segmentation models use an operation OpenVINO cannot read (checked with 2026.x), so they
are not used.

:class:`PersonSegmenter` finds people two ways, so a person is found when either works:

* the pose detector on the whole image (letterboxed to 224 px) and, on images larger than
  ``tile_above`` px, on 2 x 2 overlapping tiles (smaller people);
* a region of interest below each detected **face** (``seeds``): a standing person's hips
  lie about 3.5 face heights below the face centre.

Each region of interest is a square (MediaPipe's convention: centred on the hips, 2.5 x
the hips-to-head distance) given to the landmark model, re-centred twice from its own
landmarks 33 (hips) and 34 (body scale), as MediaPipe's tracking does from frame to frame.
A crop whose pose presence is under ``presence`` holds no person. The final crop's
segmentation (a logit per pixel) is mapped back to the image, thresholded at ``threshold``
(probability) and dilated by ``grow`` of the person's size, so the mask errs on the side
of covering. Regions that converge onto the same person (box IoU >= 0.5) are merged.

No rotation: regions are upright squares, as for the evaluation estimator in
:mod:`veil.evaluate.pose_mediapipe`.

:meth:`PersonSegmenter.scan_mask` is the fail-safe part for people the detector does not
see (cut-off torsos at the frame edge, backs, seated, crowded): the landmark model's
segmentation on a fixed set of windows (:data:`SCAN`, :func:`scan_windows`), kept where
the person probability reaches ``scan_threshold`` (0.8: lower takes much more background)
or, in a window whose pose presence reaches ``presence``, ``threshold`` as the person
masks. It is no person detector (one mask for the image, no rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.boxes import nms
from veil.errors import BackendError, InputError, MissingExtraError
from veil.evaluate.pose_mediapipe import INSTALL_HINT, crop_roi, find_mediapipe_pose_model
from veil.types import Faces, check_image

__all__ = [
    "SCAN",
    "PersonSegmenter",
    "detector_anchors",
    "find_pose_detector_model",
    "scan_windows",
]

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
ROI_SCALE = 1.25
#: ``(side, inset)`` window sets of :meth:`PersonSegmenter.scan_mask`: squares of ``side``
#: times the image's longer side, centres from ``inset`` of a side inside each edge (0.25:
#: windows hang a quarter off the frame, so people cut by its edge are seen whole-ish)
SCAN: tuple[tuple[float, float], ...] = ((0.9, 0.25), (2 / 3, 0.5))


def find_pose_detector_model() -> Path:
    """``pose_detection.tflite`` of the installed mediapipe package (not imported)."""
    landmark = find_mediapipe_pose_model()  # InputError naming the install command
    path = landmark.parent.parent / "pose_detection" / "pose_detection.tflite"
    if not path.is_file():
        raise InputError(f"person segmenter: {path} not found in mediapipe; {INSTALL_HINT}")
    return path


@cache
def detector_anchors() -> np.ndarray:
    """``float32 (2254, 2)`` anchor centres (x, y in [0, 1]) of the pose detector: SSD
    anchors with strides 8, 16, 32, 32, 32 on 224 px, two per cell per layer, fixed size."""
    rows = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        n = DETECTOR_SIZE // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        rows.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(rows).astype(np.float32)


class _TfliteModel:
    """One ``.tflite`` model compiled once by OpenVINO; an infer request per thread."""

    def __init__(self, path: Path) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise MissingExtraError("openvino", "openvino", "the person segmenter") from exc
        self.path = path
        try:
            core = ov.Core()
            self._compiled = core.compile_model(core.read_model(str(path)), "CPU")
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise BackendError(f"person model {path}: cannot load: {exc}") from exc
        self._local = threading.local()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        try:
            out = request.infer({0: x})
            return [np.array(out[o]) for o in self._compiled.outputs]
        except Exception as exc:
            raise BackendError(f"person model {self.path}: inference failed: {exc}") from exc


Roi = tuple[float, float, float]  # centre x, centre y, side (image pixels)
#: ``model(x) -> outputs``: a ``.tflite`` model's outputs for input ``x`` (NHWC float32)
Model = Callable[[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class _Person:
    roi: Roi
    presence: float
    prob: np.ndarray  # float32 (256, 256) person probability in the roi's crop


class PersonSegmenter:
    """Per-person masks (see the module docs).

    Args:
        presence: pose presence under which a crop holds no person.
        threshold: segmentation probability from which a pixel belongs to the person.
        grow: dilation of each mask, as a fraction of the person's box height (>= 2 px).
        detector_score: pose detector score threshold.
        grids: tile grids for the detector (see :meth:`detect_rois`).
        steps: landmark model passes per region (each re-centres it from the last).
        scan: window sets of :meth:`scan_mask` (:data:`SCAN`; ``()``: no scan).
        scan_threshold: person probability from which a scanned pixel is taken.
        models: ``(detector, landmark)`` callables replacing the OpenVINO models (tests):
            ``f(x) -> list of outputs`` as the ``.tflite`` files answer.
    """

    name = "mediapipe-pose"

    def __init__(
        self,
        *,
        presence: float = 0.3,
        threshold: float = 0.3,
        grow: float = 0.02,
        detector_score: float = 0.3,
        grids: tuple[int, ...] = (2, 3),
        steps: int = 3,
        scan: tuple[tuple[float, float], ...] = SCAN,
        scan_threshold: float = 0.8,
        models: tuple[Model, Model] | None = None,
    ) -> None:
        if models is None:
            try:
                landmark, detector = find_mediapipe_pose_model(), find_pose_detector_model()
            except InputError as exc:
                raise InputError(
                    f"person masks (--target person) need MediaPipe's models: {exc}"
                ) from exc
            models = (_TfliteModel(detector), _TfliteModel(landmark))
        self.detector: Model = models[0]
        self.landmark: Model = models[1]
        self.presence = presence
        self.threshold = threshold
        self.grow = grow
        self.detector_score = detector_score
        self.grids = grids
        self.steps = max(1, steps)
        self.scan = tuple(scan)
        self.scan_threshold = scan_threshold

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "presence": self.presence,
            "threshold": self.threshold,
            "grow": self.grow,
            "detector_score": self.detector_score,
            "grids": list(self.grids),
            "scan": [list(w) for w in self.scan],
            "scan_threshold": self.scan_threshold,
        }

    def scan_mask(self, image_rgb: np.ndarray) -> np.ndarray:
        """``bool (H, W)``: pixels the landmark model's segmentation gives to a person
        (probability >= ``scan_threshold``, or >= ``threshold`` in a window with pose
        presence >= ``presence``) in any window of :func:`scan_windows` for each set of
        ``scan`` (see the module docs)."""
        image = check_image(image_rgb)
        h, w = image.shape[:2]
        prob = np.zeros((h, w), np.float32)
        for side, inset in self.scan:
            for roi in scan_windows(h, w, side, inset):
                _, presence, seg = self._landmarks(image, roi)
                part = _warp_back(_sigmoid(seg), roi, (h, w))
                if presence >= self.presence:  # a person there: the masks' own threshold
                    part *= self.scan_threshold / self.threshold
                np.maximum(prob, part, out=prob)
        return prob >= self.scan_threshold

    def segment(
        self, image_rgb: np.ndarray, seeds: Faces | None = None, *, rois: Sequence[Roi] = ()
    ) -> Faces:
        """Each person in an RGB ``uint8`` image as a row: ``xyxy`` the mask's box,
        ``scores`` the pose presence, ``masks`` ``bool (n, H, W)``, ``data["roi"]`` the
        final region ``(cx, cy, side)``; ``seeds`` are face boxes around which people are
        also looked for, ``rois`` regions tried too (the previous frame's, in video)."""
        image = check_image(image_rgb)
        rois = [*self.detect_rois(image), *rois]
        if seeds is not None:
            rois += [face_roi(b) for b in seeds.xyxy]
        return self._to_faces(self._refine(image, rois), image.shape[:2])

    def detect_rois(self, image: np.ndarray) -> list[Roi]:
        """Regions of interest from the pose detector on the whole image and on square
        tiles of ``1 / n`` of its longer side for each ``n`` of ``grids`` (overlapping
        by a third), so smaller people are seen at the detector's scale."""
        h, w = image.shape[:2]
        windows = [(0, 0, w, h)]
        for n in self.grids:
            side = min(int(np.ceil(max(h, w) / n * 4 / 3)), max(h, w))
            if side < 64:
                continue
            xs = np.linspace(0, max(w - side, 0), max(1, int(np.ceil(w / side * 1.5)))).astype(int)
            ys = np.linspace(0, max(h - side, 0), max(1, int(np.ceil(h / side * 1.5)))).astype(int)
            windows += [(int(x), int(y), side, side) for y in ys for x in xs]
        rois: list[Roi] = []
        for x, y, tw, th in windows:
            tile = image[y : y + th, x : x + tw]
            rois += [(cx + x, cy + y, s) for cx, cy, s in self._detect(tile)]
        return rois

    def _detect(self, image: np.ndarray) -> list[Roi]:
        h, w = image.shape[:2]
        side = max(h, w)
        crop = crop_roi(image, (w / 2, h / 2, side), DETECTOR_SIZE) * 2 - 1
        raw, logits = self.detector(crop[None].astype(np.float32))
        raw = np.asarray(raw, np.float32).reshape(-1, 12)
        scores = _sigmoid(np.asarray(logits, np.float32).reshape(-1))
        keep = np.flatnonzero(scores >= self.detector_score)
        anchors = detector_anchors()[keep]
        kp = raw[keep, 4:8].reshape(-1, 2, 2) / DETECTOR_SIZE + anchors[:, None, :]
        boxes = raw[keep, :4] / DETECTOR_SIZE
        boxes[:, :2] += anchors
        xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
        order = nms(xyxy, scores[keep], 0.3)
        rois = []
        for i in order:
            hips, top = kp[i, 0] * side, kp[i, 1] * side  # normalized -> letterbox px
            ox, oy = (side - w) / 2, (side - h) / 2
            radius = float(np.hypot(*(top - hips)))
            rois.append((float(hips[0] - ox), float(hips[1] - oy), 2 * radius * ROI_SCALE))
        return rois

    def _landmarks(self, image: np.ndarray, roi: Roi) -> tuple[np.ndarray, float, np.ndarray]:
        outs = self.landmark(crop_roi(image, roi, LANDMARK_SIZE)[None])
        by_size = {int(np.asarray(o).size): np.asarray(o, np.float32) for o in outs}
        landmarks = by_size[195].reshape(39, 5)
        presence = float(by_size[1].reshape(-1)[0])
        seg = by_size[LANDMARK_SIZE * LANDMARK_SIZE].reshape(LANDMARK_SIZE, LANDMARK_SIZE)
        return landmarks, presence, seg

    def _refine(self, image: np.ndarray, rois: list[Roi]) -> list[_Person]:
        """Every region through the landmark model ``steps`` times, re-centred from its
        landmarks in between; after the first pass, regions that reach the same person are
        run once (the most present first)."""
        people: list[_Person] = []
        for step in range(self.steps):
            found = []
            for roi in _distinct(rois) if step else rois:  # the first pass ranks them all
                landmarks, presence, seg = self._landmarks(image, roi)
                if presence >= self.presence:
                    found.append((presence, roi, landmarks, seg))
            found.sort(key=lambda f: -f[0])
            if step == self.steps - 1:
                people = [_Person(roi, pr, _sigmoid(seg)) for pr, roi, _, seg in found]
            else:
                side = min(image.shape[:2])
                rois = [_roi_from_landmarks(lm, roi, side) for _, roi, lm, _ in found]
        return people

    def _to_faces(self, people: list[_Person], hw: tuple[int, int]) -> Faces:
        """Masks of ``people`` (most present first). A person the same as an earlier one
        (:func:`_distinct` regions, or a mask lying more than 70% on one earlier mask) is
        merged into it; a doubtful one (presence under 0.5) whose mask lies more than 30%
        on earlier people is left out (a second guess at someone already there)."""
        masks: list[np.ndarray] = []
        scores: list[float] = []
        kept: list[Roi] = []
        rois = _distinct([p.roi for p in people])
        for p in people:
            if p.roi not in rois:
                continue
            mask = self._mask(p, hw)
            area = int(mask.sum())
            if area == 0:
                continue
            overlaps = [int((mask & m).sum()) / area for m in masks]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] > 0.7:
                masks[best] |= mask
            elif not (p.presence < 0.5 and sum(overlaps) > 0.3):
                masks.append(mask)
                scores.append(p.presence)
                kept.append(p.roi)
        if not masks:
            return Faces.empty()
        boxes = []
        for m in masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return Faces(
            xyxy=np.array(boxes, np.float32),
            scores=np.array(scores, np.float32),
            masks=np.stack(masks),
            data={"kind": np.array(["person"] * len(masks)), "roi": kept},
        )

    def _mask(self, person: _Person, hw: tuple[int, int]) -> np.ndarray:
        """The person's probability warped back into the image, thresholded and grown."""
        h, w = hw
        cx, cy, side = person.roi
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
        out = np.zeros(hw, bool)
        if x1 <= x0 or y1 <= y0:
            return out
        s = LANDMARK_SIZE / side  # image -> crop, as crop_roi
        tx = s * (0.5 - (cx - side / 2) + x0) - 0.5
        ty = s * (0.5 - (cy - side / 2) + y0) - 0.5
        m = np.array([[s, 0, tx], [0, s, ty]], np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        part = cv2.warpAffine(person.prob, m, (x1 - x0, y1 - y0), flags=flags)
        sub = part >= self.threshold
        ys = np.flatnonzero(sub.any(1))
        if len(ys) and self.grow > 0:
            r = max(2, round(self.grow * (ys[-1] - ys[0] + 1)))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            pad = cv2.copyMakeBorder(sub.view(np.uint8), r, r, r, r, cv2.BORDER_CONSTANT)
            grown = cv2.dilate(pad, kernel)
            gx0, gy0 = max(0, x0 - r), max(0, y0 - r)
            gx1, gy1 = min(w, x1 + r), min(h, y1 + r)
            out[gy0:gy1, gx0:gx1] = grown[
                gy0 - y0 + r : gy1 - y0 + r, gx0 - x0 + r : gx1 - x0 + r
            ].astype(bool)
        else:
            out[y0:y1, x0:x1] = sub
        return out


def scan_windows(h: int, w: int, side: float, inset: float) -> list[Roi]:
    """Square windows ``(cx, cy, side)`` of ``side`` x ``max(h, w)`` covering an image:
    centres from ``inset`` x the window side inside each edge to the same inside the
    other, spaced at most 2/3 of a side apart (one centred window along a side the window
    spans, when ``inset`` is 0.5)."""
    s = side * max(h, w)
    axes = []
    for n in (w, h):
        lo, hi = inset * s, n - inset * s
        if hi <= lo:
            axes.append(np.array([n / 2]))
            continue
        count = int(np.ceil(n / s * 1.5)) + (1 if inset < 0.5 else 0)
        axes.append(np.linspace(lo, hi, max(2 if inset < 0.5 else 1, count)))
    return [(float(x), float(y), float(s)) for y in axes[1] for x in axes[0]]


def _warp_back(prob: np.ndarray, roi: Roi, hw: tuple[int, int]) -> np.ndarray:
    """A crop's ``(256, 256)`` map of ``roi`` in image coordinates (0 outside it)."""
    cx, cy, side = roi
    s = LANDMARK_SIZE / side
    m = np.array(
        [[s, 0, s * (0.5 - (cx - side / 2)) - 0.5], [0, s, s * (0.5 - (cy - side / 2)) - 0.5]]
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(prob, m, (hw[1], hw[0]), flags=flags)


def face_roi(face_xyxy: np.ndarray) -> Roi:
    """A region of interest for the person below a face box: hips ~3.5 face heights below
    the face centre, the square 2.5 x the hips-to-head-top distance."""
    x0, y0, x1, y1 = (float(v) for v in face_xyxy)
    fh = max(y1 - y0, x1 - x0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hips = cy + 3.5 * fh
    return cx, hips, 2 * (hips - (cy - fh)) * ROI_SCALE


def _roi_from_landmarks(landmarks: np.ndarray, roi: Roi, min_side: float) -> Roi:
    """MediaPipe's next region from landmarks 33 (hips centre) and 34 (body scale point),
    given in crop pixels of ``roi``."""
    cx, cy, side = roi
    scale = side / LANDMARK_SIZE
    hips = np.array([cx - side / 2, cy - side / 2]) + landmarks[33, :2] * scale
    top = np.array([cx - side / 2, cy - side / 2]) + landmarks[34, :2] * scale
    radius = float(np.hypot(*(top - hips)))
    new_side = max(2 * radius * ROI_SCALE, 0.05 * min_side, 8.0)
    return float(hips[0]), float(hips[1]), new_side


def _distinct(rois: list[Roi]) -> list[Roi]:
    """``rois`` without those that repeat an earlier one (centres within 15% of the larger
    side, sides within a third of each other): two people side by side stay two."""
    kept: list[Roi] = []
    for cx, cy, side in rois:
        same = any(
            np.hypot(cx - kx, cy - ky) < 0.15 * max(side, ks) and 0.75 <= side / ks <= 4 / 3
            for kx, ky, ks in kept
        )
        if not same:
            kept.append((cx, cy, side))
    return kept


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-np.clip(x, -60, 60)))).astype(np.float32)
