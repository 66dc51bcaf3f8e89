"""68-point face landmarks for the synthetic anonymizer: locate, check, align, smooth.

dlib's ``shape_predictor_68_face_landmarks`` (shipped in ``face_recognition_models``, the
``dlib`` extra) refines a face box into the 68 iBUG points. It was trained on boxes from
dlib's HOG detector, which sit tighter than CenterFace's and lower, and it is sensitive to
where its box sits: on a turned head a box a few pixels off often lands on another fit.
:meth:`LandmarkModel.fit` therefore tries seed boxes in turn, cheapest first, and keeps
the first whose answer passes the check (:meth:`LandmarkModel.seeds`):

1. the detector box mapped to a HOG-like box (:func:`dlib_box`, calibrated on CenterFace);
2. the HOG-like box implied by a first answer on the detector box (:func:`hog_box`);
3. dlib's own HOG detector run on the surroundings, boxes overlapping the detector box.

Plausibility (:meth:`LandmarkModel.locate` returns ``None`` when every seed fails): the
predictor always answers, even on a flat grey patch, but on a real face its answer hardly
moves when the box is shifted by 5% of its size, while on anything else the points follow
the box. The box is shifted in 8 directions; a shift "keeps" the points when they move
less than :data:`MAX_DRIFT` of it, and at least :data:`VOTES` of the 8 must keep them
(early exit both ways). The points' centre must also lie inside the detector box, so a
neighbour's face found by a later seed is never taken for this one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.boxes import box_iou
from veil.errors import BackendError, MissingExtraError

__all__ = [
    "MAX_DRIFT",
    "MIRROR",
    "VOTES",
    "LandmarkFit",
    "LandmarkModel",
    "LandmarkSmoother",
    "dlib_box",
    "hog_box",
    "inter_ocular",
    "similarity",
    "with_forehead",
]

#: index permutation that maps the 68 points of a face to those of its mirror image
_MIRROR_ROWS = (
    [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31],  # jaw brows nose
    [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40],  # eyes
    [*range(54, 47, -1), *range(59, 54, -1), *range(64, 59, -1), 67, 66, 65],  # mouth
)
MIRROR = np.concatenate(_MIRROR_ROWS)

#: a box shift "keeps" the points when they move less than this share of it (LFW faces
#: seeded by :func:`dlib_box`: median 0.1; 367 random boxes on scikit-image photos, flat
#: grey and noise: 8-direction median >= 0.44, typically ~1: the points follow the box)
MAX_DRIFT = 0.4
#: shifts (of the 8) that must keep the points for them to count as a face
VOTES = 5
_SHIFT = 0.05  # box shift for the drift test, as a share of the box size
_DIRECTIONS = ((1, 1), (-1, -1), (1, -1), (-1, 1), (1, 0), (-1, 0), (0, 1), (0, -1))
_HOG_FACE = 100  # px: the window is scaled so the face is this big for the HOG seed
_HOG_MIN_IOU = 0.3  # HOG boxes overlapping the detector's mapped box less are ignored


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the two eye centres of ``points (68, 2)``, in pixels."""
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def with_forehead(points: np.ndarray, height: float = 0.3) -> np.ndarray:
    """``(68, 2)`` -> ``(78, 2)``: the 68 points plus 10 forehead points above the brows.

    Each brow point is pushed up along the chin -> brow axis by ``height`` times its length,
    so the replaced area covers the forehead, whose shape the 68 points leave out.
    """
    up = points[17:27].mean(0) - points[8]
    return np.concatenate([points, points[17:27] + height * up]).astype(np.float32)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``float64 (2, 3)`` that maps points ``src (n, 2)`` onto ``dst``."""
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    sm, dm = s.mean(0), d.mean(0)
    sc, dc = s - sm, d - dm
    norm = (sc**2).sum()
    a = (sc * dc).sum() / norm
    b = (sc[:, 0] * dc[:, 1] - sc[:, 1] * dc[:, 0]).sum() / norm
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (dm - rot @ sm)[:, None]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points ``(n, 2)`` mapped by a ``(2, 3)`` affine matrix."""
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def hog_box(points: np.ndarray) -> np.ndarray:
    """The dlib-HOG-like square box ``(x0, y0, x1, y1)`` that the 68 ``points`` imply.

    Measured on 40 LFW faces: the landmarks span 0.92 x 0.90 of a HOG box, whose centre
    sits 0.12 box sizes above the landmarks' centre.
    """
    lo, hi = points.min(0), points.max(0)
    side = float(((hi - lo) / (0.92, 0.90)).mean())
    cx, cy = (lo + hi) / 2 - (0.0, 0.12 * side)
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def dlib_box(box: Sequence[float] | np.ndarray) -> np.ndarray:
    """The dlib-HOG-like square box ``(x0, y0, x1, y1)`` for a detector box.

    Calibrated on CenterFace: on 174 LFW faces (people 101-158 of identity-lfw158) dlib's
    HOG box has the same horizontal centre, sits 0.05 box heights lower and has a side of
    0.83 box heights (1.08 widths). Seeding the predictor here rather than with
    :func:`hog_box` of a first answer left 3% of faces without landmarks instead of 7%
    (people 1-100, checked as in :meth:`LandmarkModel.check`).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    h = y1 - y0
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2 + 0.05 * h, 0.83 * h / 2
    return np.array([cx - r, cy - r, cx + r, cy + r])


def _clip_window(
    box: np.ndarray, margin: float, shape: tuple[int, ...]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(x0, y0), (x1, y1)``: ``box`` grown by ``margin`` px per side, clipped to ``shape``."""
    x0, y0 = (max(0, int(v - margin)) for v in box[:2])
    x1 = min(int(shape[1]), int(box[2] + margin) + 1)
    y1 = min(int(shape[0]), int(box[3] + margin) + 1)
    return (x0, y0), (max(x1, x0), max(y1, y0))


def _load_dlib() -> tuple[Any, Path]:
    try:
        import dlib
    except ImportError as exc:
        raise MissingExtraError("dlib-bin", "dlib", "the synthetic anonymizer") from exc
    try:
        import face_recognition_models
    except ImportError as exc:
        raise MissingExtraError(
            "face_recognition_models", "dlib", "the synthetic anonymizer"
        ) from exc
    return dlib, Path(face_recognition_models.pose_predictor_model_location())


@dataclass(frozen=True)
class LandmarkFit:
    """Checked landmarks: ``points float32 (68, 2)`` and the seed ``box`` they were found in."""

    points: np.ndarray
    box: np.ndarray


class LandmarkModel:
    """dlib's 68-point predictor (and HOG detector), one instance per thread.

    Args:
        model_path: the ``.dat`` model; default the one in ``face_recognition_models``.
    """

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._dlib, default = _load_dlib()
        self.model_path = Path(model_path) if model_path is not None else default
        if not self.model_path.is_file():
            raise BackendError(f"landmark model file not found: {self.model_path}")
        self._local = threading.local()
        self._predictor()  # fail now, not on the first face

    def _predictor(self) -> Any:
        predictor = getattr(self._local, "predictor", None)
        if predictor is None:
            try:
                predictor = self._dlib.shape_predictor(str(self.model_path))
            except RuntimeError as exc:
                raise BackendError(f"dlib could not load {self.model_path}: {exc}") from exc
            self._local.predictor = predictor
        return predictor

    def _hog(self) -> Any:
        hog = getattr(self._local, "hog", None)
        if hog is None:
            hog = self._local.hog = self._dlib.get_frontal_face_detector()
        return hog

    def predict(self, image: np.ndarray, box: Sequence[float] | np.ndarray) -> np.ndarray:
        """The 68 points ``float32 (68, 2)`` the predictor finds in ``box (x0, y0, x1, y1)``."""
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, max(x1, x0 + 1) - 1, max(y1, y0 + 1) - 1)
        shape = self._predictor()(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def hog_faces(self, image: np.ndarray, face_size: float) -> np.ndarray:
        """dlib HOG face boxes ``float64 (n, 4)`` in ``image``, scaled up first so a face of
        ``face_size`` px is :data:`_HOG_FACE` px (HOG finds nothing under 80 px)."""
        scale = max(1.0, _HOG_FACE / max(face_size, 1.0))
        if scale > 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        rects = self._hog()(np.ascontiguousarray(image), 0)
        boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
        return np.array(boxes, np.float64).reshape(-1, 4) / scale

    def seeds(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray, *, hog: bool = False
    ) -> Iterator[np.ndarray]:
        """Seed boxes for the predictor, cheapest first (see the module docstring); with
        ``hog`` the box comes from dlib's HOG detector and is itself the first seed."""
        box = np.asarray(box, np.float64)
        mapped = box if hog else dlib_box(box)
        yield mapped
        yield hog_box(self.predict(image, box))
        side = float(mapped[2] - mapped[0])
        (wx0, wy0), (wx1, wy1) = _clip_window(mapped, side, image.shape)
        found = self.hog_faces(image[wy0:wy1, wx0:wx1], side) + np.array([wx0, wy0, wx0, wy0])
        if len(found):
            overlap = box_iou(found, mapped[None])[:, 0]
            for i in np.argsort(-overlap):
                if overlap[i] >= _HOG_MIN_IOU:
                    yield found[i]

    def check(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The predictor's points in ``box`` if they pass the shift test, else ``None``."""
        points = self.predict(image, box)
        side = float(box[2] - box[0])
        if side < 8 or inter_ocular(points) < 0.15 * side:
            return None
        shift, kept, lost = _SHIFT * side, 0, 0
        for dx, dy in _DIRECTIONS:
            offset = shift * np.array([dx, dy, dx, dy])
            moved = self.predict(image, box + offset)
            drift = float(np.linalg.norm(moved - points, axis=1).mean())
            if drift <= MAX_DRIFT * shift * np.hypot(dx, dy):
                kept += 1
            else:
                lost += 1
            if kept >= VOTES:
                return points
            if lost > len(_DIRECTIONS) - VOTES:
                return None
        return None

    def fit(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray, *, hog: bool = False
    ) -> LandmarkFit | None:
        """Checked landmarks of the face in the detector's ``box``, or ``None``.

        ``image`` is RGB ``uint8 (H, W, 3)`` and C-contiguous; ``box`` comes from any face
        detector (``dlib_box`` is calibrated on CenterFace; the other seeds are not
        detector-specific; ``hog=True`` for boxes from dlib's HOG detector). Tries
        :meth:`seeds` in turn; the first answer that passes :meth:`check` and whose centre
        lies inside ``box`` wins.
        """
        x0, y0, x1, y1 = (float(v) for v in box)
        for seed in self.seeds(image, box, hog=hog):
            points = self.check(image, seed)
            if points is None:
                continue
            cx, cy = points.mean(0)
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                return LandmarkFit(points, seed)
        return None

    def locate(
        self, image: np.ndarray, box: Sequence[float] | np.ndarray, *, hog: bool = False
    ) -> np.ndarray | None:
        """Checked landmarks ``float32 (68, 2)`` of the face in ``box``, or ``None`` (see
        :meth:`fit`)."""
        found = self.fit(image, box, hog=hog)
        return None if found is None else found.points


class LandmarkSmoother:
    """Temporal smoothing of landmarks per track: an exponential moving average.

    The weight of a new measurement grows with how far the face moved (like the
    one-euro filter): still faces lose their jitter, moving faces do not lag, and a face
    that jumped (a cut, another image) replaces the old state at once. Thread-safe.

    Args:
        smoothing: weight of the old state for a still face, in ``[0, 1)``; 0 turns it off.
        capacity: tracks remembered; the least recently seen is forgotten first, so memory
            stays bounded on endless streams.
    """

    def __init__(self, smoothing: float = 0.6, capacity: int = 256) -> None:
        self.smoothing = float(smoothing)
        self.capacity = int(capacity)
        self._state: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, key: int, points: np.ndarray) -> np.ndarray:
        """Smoothed ``float32 (68, 2)`` for track ``key`` given this frame's ``points``."""
        if self.smoothing <= 0:
            return points
        with self._lock:
            old = self._state.pop(key, None)
            if old is not None:
                motion = float(np.linalg.norm(points - old, axis=1).mean())
                keep = self.smoothing * max(0.0, 1.0 - motion / (0.1 * inter_ocular(points)))
                # old + (1 - keep) * change: exactly ``old`` again when the face did not move
                points = (old + (1 - keep) * (points - old)).astype(np.float32)
            self._state[key] = points
            while len(self._state) > self.capacity:
                self._state.popitem(last=False)
        return points
