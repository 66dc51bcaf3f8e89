"""OpenCV Haar-cascade ensemble: the classic pre-deep-learning face finder.

Three frontal cascades (``default``, ``alt``, ``alt2``) and the profile cascade run on a
contrast-equalized grayscale copy of the image; the profile cascade also runs on the
mirrored image (it only knows one side of the head). Every (cascade, scale factor,
mirrored) combination is one *pass*. Boxes from all passes are clustered with
:func:`veil.boxes.fuse_boxes` and each cluster becomes one face; a face lying mostly
inside a better-scored one (a cascade firing on part of a face) is dropped.

**Score = agreement.** Cascade level weights are not comparable between cascades, so the
score of a face is the fraction of passes of its *view* that found it, the best view
winning. The views are ``frontal`` (3 cascades x scale factors), ``profile`` and
``profile-flipped`` (1 cascade x scale factors each). A frontal face found by every
frontal cascade at every scale scores 1.0; a box found by one frontal pass out of six
scores 1/6. ``threshold`` drops faces scoring below it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import cv2.data
import numpy as np

from veil.boxes import fuse_boxes
from veil.detect.base import Detector
from veil.errors import BackendError, ConfigError
from veil.types import Faces, check_image

__all__ = ["FRONTAL_CASCADES", "PROFILE_CASCADE", "HaarCascade"]

FRONTAL_CASCADES = (
    "haarcascade_frontalface_default.xml",
    "haarcascade_frontalface_alt.xml",
    "haarcascade_frontalface_alt2.xml",
)
PROFILE_CASCADE = "haarcascade_profileface.xml"
#: a fused box lying this much inside a better-scored one is a part of that face
CONTAINED = 0.8


@dataclass(frozen=True)
class _Pass:
    """One run of one cascade at one scale factor, on the image or its mirror."""

    cascade: str
    scale_factor: float
    flipped: bool
    view: str


class HaarCascade(Detector):
    """Ensemble of OpenCV Haar cascades; boxes fused, scored by agreement of passes.

    Args:
        threshold: minimum agreement score in ``[0, 1]`` a face needs to be kept.
        scale_factors: image pyramid steps; each one is a separate set of passes.
        min_neighbors: OpenCV ``minNeighbors``: overlapping raw hits a box needs.
        min_size: smallest face ``(width, height)`` in pixels searched for.
        equalize: apply CLAHE to the grayscale image first (helps in uneven light).
        profile: also run the profile cascade.
        flip: also run the profile cascade on the mirrored image (other side of the head).
        nms_iou: IoU at which boxes of different passes are fused into one face.
        cascade_dir: folder of the cascade XML files; default ``cv2.data.haarcascades``.

    Thread-safe: each thread gets its own ``cv2.CascadeClassifier`` objects.
    """

    name = "haar"

    def __init__(
        self,
        *,
        threshold: float = 0.0,
        scale_factors: Sequence[float] = (1.1, 1.05),
        min_neighbors: int = 4,
        min_size: tuple[int, int] = (20, 20),
        equalize: bool = True,
        profile: bool = True,
        flip: bool = True,
        nms_iou: float = 0.3,
        cascade_dir: str | Path | None = None,
    ) -> None:
        _validate(threshold, scale_factors, min_neighbors, min_size, nms_iou)
        self.threshold = float(threshold)
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.min_neighbors = int(min_neighbors)
        self.min_size = (int(min_size[0]), int(min_size[1]))
        self.equalize = bool(equalize)
        self.profile = bool(profile)
        self.flip = bool(flip) and self.profile
        self.nms_iou = float(nms_iou)
        folder = Path(cv2.data.haarcascades if cascade_dir is None else cascade_dir)
        names = FRONTAL_CASCADES + ((PROFILE_CASCADE,) if self.profile else ())
        self._paths = {n: folder / n for n in names}
        self._passes = self._build_passes()
        self._view_totals = Counter(p.view for p in self._passes)
        self._local = threading.local()
        self._classifiers()  # load now so that a bad file fails here, not mid-run

    def _build_passes(self) -> tuple[_Pass, ...]:
        passes = []
        for sf in self.scale_factors:
            passes += [_Pass(c, sf, False, "frontal") for c in FRONTAL_CASCADES]
            if self.profile:
                passes.append(_Pass(PROFILE_CASCADE, sf, False, "profile"))
            if self.flip:
                passes.append(_Pass(PROFILE_CASCADE, sf, True, "profile-flipped"))
        return tuple(passes)

    def _classifiers(self) -> dict[str, cv2.CascadeClassifier]:
        """This thread's classifiers, loaded on first use in the thread."""
        cached: dict[str, cv2.CascadeClassifier] | None = getattr(self._local, "clf", None)
        if cached is None:
            cached = {name: _load_cascade(path) for name, path in self._paths.items()}
            self._local.clf = cached
        return cached

    def _gray(self, image: np.ndarray) -> np.ndarray:
        """RGB ``uint8 (H, W, 3)`` -> equalized grayscale ``uint8 (H, W)``."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if not self.equalize:
            return gray
        clahe = getattr(self._local, "clahe", None)
        if clahe is None:
            clahe = self._local.clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        return np.asarray(clahe.apply(gray))

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in an RGB ``uint8 (H, W, 3)`` image; ``xyxy float32 (n, 4)``, scores in [0, 1]."""
        check_image(image)
        boxes, pass_ids = self._run_passes(self._gray(image))
        faces = self._fuse(boxes, pass_ids)
        faces = faces[faces.scores >= self.threshold]  # type: ignore[operator]
        return faces.clip(image.shape[:2])

    def _run_passes(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All raw boxes ``float32 (m, 4)`` and the index of the pass that found each."""
        classifiers = self._classifiers()
        mirrored = np.ascontiguousarray(gray[:, ::-1]) if self.flip else gray
        width = gray.shape[1]
        boxes, ids = [], []
        for i, p in enumerate(self._passes):
            found = self._detect_one(classifiers[p.cascade], mirrored if p.flipped else gray, p)
            if p.flipped:
                found[:, [0, 2]] = width - found[:, [2, 0]]
            boxes.append(found)
            ids.append(np.full(len(found), i, np.int64))
        return np.concatenate(boxes), np.concatenate(ids)

    def _detect_one(self, clf: cv2.CascadeClassifier, gray: np.ndarray, p: _Pass) -> np.ndarray:
        """One pass; returns ``xyxy float32 (k, 4)``."""
        try:
            rects = clf.detectMultiScale(
                gray,
                scaleFactor=p.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=self.min_size,
            )
        except cv2.error as exc:
            raise BackendError(f"Haar cascade {p.cascade} failed: {exc}") from exc
        xywh = np.asarray(rects, np.float32).reshape(-1, 4)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)

    def _fuse(self, boxes: np.ndarray, pass_ids: np.ndarray) -> Faces:
        """Cluster raw boxes; score each cluster by the agreement of distinct passes."""
        xyxy, _, members = fuse_boxes(boxes, np.ones(len(boxes), np.float32), self.nms_iou)
        scores = np.asarray([self._agreement(set(pass_ids[m].tolist())) for m in members])
        keep = _drop_contained(xyxy, scores, CONTAINED)
        return Faces(xyxy=xyxy[keep], scores=scores[keep].astype(np.float32))

    def _agreement(self, passes: set[int]) -> float:
        """Best, over views, of the fraction of that view's passes among ``passes``."""
        hits = Counter(self._passes[i].view for i in passes)
        return max(hits[v] / self._view_totals[v] for v in hits)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "scale_factors": list(self.scale_factors),
            "min_neighbors": self.min_neighbors,
            "min_size": list(self.min_size),
            "equalize": self.equalize,
            "profile": self.profile,
            "flip": self.flip,
            "nms_iou": self.nms_iou,
            "cascades": sorted(self._paths),
            "score": "agreement",
        }


def _load_cascade(path: Path) -> cv2.CascadeClassifier:
    """Load one cascade XML; a missing or unreadable file raises ``BackendError``."""
    if not path.is_file():
        raise BackendError(f"Haar cascade file not found: {path}")
    try:
        clf = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError) as exc:  # cv2 4.x wraps its parse error in SystemError
        raise BackendError(f"Haar cascade file could not be loaded: {path}") from exc
    if clf.empty():
        raise BackendError(f"Haar cascade file could not be loaded: {path}")
    return clf


def _drop_contained(xyxy: np.ndarray, scores: np.ndarray, frac: float) -> np.ndarray:
    """Indices of boxes ``(n, 4)`` to keep, best first: a box lying at least ``frac`` inside
    an already kept box (a cascade firing on part of a face) is dropped."""
    keep: list[int] = []
    area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    for i in np.argsort(-scores, kind="stable"):
        if keep:
            tl = np.maximum(xyxy[keep, :2], xyxy[i, :2])
            br = np.minimum(xyxy[keep, 2:], xyxy[i, 2:])
            inter = np.prod(np.clip(br - tl, 0, None), axis=1)
            if np.any(inter >= frac * max(float(area[i]), 1e-9)):
                continue
        keep.append(int(i))
    return np.asarray(keep, np.int64)


def _validate(
    threshold: float,
    scale_factors: Sequence[float],
    min_neighbors: int,
    min_size: tuple[int, int],
    nms_iou: float,
) -> None:
    """Raise ``ConfigError`` naming the first option out of range."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"haar: threshold must be in [0, 1], got {threshold}")
    if not scale_factors or any(not s > 1.0 for s in scale_factors):
        raise ConfigError(f"haar: scale_factors must be non-empty and > 1, got {scale_factors}")
    if min_neighbors < 0:
        raise ConfigError(f"haar: min_neighbors must be >= 0, got {min_neighbors}")
    if len(min_size) != 2 or min(min_size) < 1:
        raise ConfigError(f"haar: min_size must be (width, height) >= 1, got {min_size}")
    if not 0.0 < nms_iou <= 1.0:
        raise ConfigError(f"haar: nms_iou must be in (0, 1], got {nms_iou}")
