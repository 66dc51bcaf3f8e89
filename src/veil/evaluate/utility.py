"""Utility of an anonymized image: what is kept outside the faces, and of the face itself.

Per pair ``(original, anonymized)`` with a face region ``mask`` (``bool (H, W)``, the pixels
the anonymizer was allowed to change) and the face box on the original:

* **SSIM / PSNR outside** the mask: should be lossless (SSIM 1, PSNR capped at
  :data:`PSNR_CAP`). SSIM (scikit-image, 7x7 window, ``data_range=255``, mean over the RGB
  channels) is averaged over outside pixels at least :data:`SSIM_RADIUS` px (Chebyshev)
  from the mask, whose window does not see a masked pixel, and rounded to 9 decimals (the
  filters' float noise), so a change confined to the mask scores exactly 1; PSNR uses
  every outside pixel.
* **SSIM / PSNR inside** the mask: how much of the face's appearance survives (low for a
  blur or fill; context, not a goal).
* **landmark error**: dlib's 68 points on the original (checked, see
  :class:`veil.anonymize._landmarks.LandmarkModel`), then the 68 points predicted on the
  anonymized image in the same box; mean point distance / inter-ocular distance of the
  original. Meaningful for methods meant to keep pose and expression (``synthetic``).
* **re-detection**: the face is still found by a detector (IoU >= ``redetect_iou``): a
  utility for pose-keeping methods, a privacy residual for the others.
* **person agreement**: OpenCV's HOG people detector on both images; ``2 M / (n0 + n1)``
  with ``M`` boxes matched one-to-one at IoU >= 0.5 (1 when neither image has a person).

Pairs that cannot be measured (missing, unreadable, different sizes, no face on the
original, no landmarks on the original) are counted and listed, never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.boxes import box_iou
from veil.errors import ConfigError, InputError, VeilError
from veil.mask import Masker, union_mask
from veil.types import Faces, check_image

__all__ = [
    "PSNR_CAP",
    "SSIM_RADIUS",
    "PairUtility",
    "PeopleDetector",
    "RegionScores",
    "UtilityConfig",
    "UtilityMeter",
    "UtilityReport",
    "evaluate_utility",
    "landmark_error",
    "match_count",
    "psnr",
    "region_scores",
]

log = logging.getLogger(__name__)

PSNR_CAP = 100.0
"""PSNR of identical pixels (infinite in theory) in dB, so that means stay finite."""

SSIM_RADIUS = 3
"""Half the SSIM window (7x7): outside pixels this close to the mask are not averaged."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two equal-shape ``uint8`` arrays, capped at :data:`PSNR_CAP`; NaN if empty."""
    if a.size == 0:
        return float("nan")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10 * float(np.log10(255.0**2 / mse)))


@dataclass(frozen=True)
class RegionScores:
    """SSIM (0-1, may dip below 0) and PSNR (dB) inside and outside a mask; NaN if empty."""

    ssim_inside: float
    ssim_outside: float
    psnr_inside: float
    psnr_outside: float


def region_scores(original: np.ndarray, anonymized: np.ndarray, mask: np.ndarray) -> RegionScores:
    """SSIM and PSNR inside and outside ``mask`` (``bool (H, W)``), see the module docs."""
    from skimage.metrics import structural_similarity

    check_image(original, name="original")
    check_image(anonymized, name="anonymized")
    if original.shape != anonymized.shape or mask.shape != original.shape[:2]:
        raise InputError(
            f"shapes differ: original {original.shape}, anonymized {anonymized.shape}, "
            f"mask {mask.shape}"
        )
    h, w = mask.shape
    if min(h, w) < 7:
        raise InputError(f"image {w}x{h} is smaller than the 7x7 SSIM window")
    _, smap = structural_similarity(original, anonymized, channel_axis=2, data_range=255, full=True)
    smap = np.asarray(smap, np.float64).mean(axis=2)
    k = 2 * SSIM_RADIUS + 1
    near = cv2.dilate(mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    far = ~near

    def mean(values: np.ndarray) -> float:  # rounded: scipy's running sums leave ~1e-15 noise
        return round(float(values.mean()), 9) if values.size else float("nan")

    return RegionScores(
        ssim_inside=mean(smap[mask]),
        ssim_outside=mean(smap[far]),
        psnr_inside=psnr(original[mask], anonymized[mask]),
        psnr_outside=psnr(original[~mask], anonymized[~mask]),
    )


def landmark_error(
    original: np.ndarray, anonymized: np.ndarray, box_xyxy: Any, model: Any = None
) -> float | None:
    """Mean 68-point distance / inter-ocular distance; ``None`` without landmarks on the original.

    ``model`` is a :class:`veil.anonymize._landmarks.LandmarkModel` (built when ``None``;
    needs the ``dlib`` extra).
    """
    from veil.anonymize._landmarks import LandmarkModel, inter_ocular

    model = model or LandmarkModel()
    original = np.ascontiguousarray(check_image(original, name="original"))
    anonymized = np.ascontiguousarray(check_image(anonymized, name="anonymized"))
    found = model.fit(original, np.asarray(box_xyxy, np.float64))
    if found is None:
        return None
    points = found.points
    moved = model.predict(anonymized, found.box)  # the box the original's points came from
    return float(np.linalg.norm(moved - points, axis=1).mean() / max(inter_ocular(points), 1e-6))


def match_count(a: np.ndarray, b: np.ndarray, iou: float = 0.5) -> int:
    """Boxes of ``a`` and ``b`` (``xyxy``) matched one-to-one, greedily by IoU >= ``iou``."""
    if len(a) == 0 or len(b) == 0:
        return 0
    m = box_iou(np.asarray(a, np.float32), np.asarray(b, np.float32)).copy()
    count = 0
    while m.size and m.max() >= iou:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        m[i, :], m[:, j] = -1, -1
        count += 1
    return count


class PeopleDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal-Triggs, 64x128 window). Not thread-safe."""

    def __init__(self, *, min_weight: float = 0.3) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))
        self.min_weight = min_weight

    def detect(self, image: np.ndarray) -> np.ndarray:
        """People boxes ``float32 (n, 4)`` ``xyxy`` in an RGB ``uint8`` image."""
        grey = cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY)
        if grey.shape[0] < 128 or grey.shape[1] < 64:
            return np.zeros((0, 4), np.float32)
        rects, weights = self._hog.detectMultiScale(grey, winStride=(8, 8), scale=1.05)
        boxes = np.asarray(rects, np.float32).reshape(-1, 4)
        boxes = boxes[np.asarray(weights, np.float32).reshape(-1) >= self.min_weight]
        return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


@dataclass(frozen=True)
class UtilityConfig:
    """What :func:`evaluate_utility` and :class:`UtilityMeter` measure."""

    detector: str = "centerface"  # locates the face on originals and re-detects it
    landmarks: bool = True
    people: bool = True
    redetect_iou: float = 0.3
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.redetect_iou < 1:
            raise ConfigError(f"redetect_iou must be within (0, 1), got {self.redetect_iou}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")


@dataclass(frozen=True)
class PairUtility:
    """Everything measured on one pair; ``None`` where a measure was off or impossible."""

    scores: RegionScores
    landmark_error: float | None
    redetected: bool | None
    people: tuple[int, int, int] | None  # (matched, on original, on anonymized)


def _nanmean(values: list[float]) -> float | None:
    arr = np.asarray([v for v in values if v == v], np.float64)
    return round(float(arr.mean()), 6) if arr.size else None


@dataclass
class UtilityReport:
    """Per-pair results and every pair that could not be measured (with why)."""

    pairs: int = 0
    measured: list[tuple[str, PairUtility]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # no anonymized file
    extra: list[str] = field(default_factory=list)  # anonymized file without an original
    unusable: list[tuple[str, str]] = field(default_factory=list)  # unreadable, sizes
    no_face: list[str] = field(default_factory=list)  # no face found on the original
    no_landmarks: list[str] = field(default_factory=list)  # landmarks refused on original
    unavailable: dict[str, str] = field(default_factory=dict)  # measure -> why

    def summary(self) -> dict[str, float | None]:
        """Means over measured pairs (NaN-free); ``people_agreement`` pools all boxes."""
        rows = [u for _, u in self.measured]
        lm = [u.landmark_error for u in rows if u.landmark_error is not None]
        red = [float(u.redetected) for u in rows if u.redetected is not None]
        people = np.asarray([u.people for u in rows if u.people is not None], np.float64)
        agree = None
        if len(people):
            total = people[:, 1].sum() + people[:, 2].sum()
            agree = round(float(2 * people[:, 0].sum() / total), 6) if total else 1.0
        return {
            "ssim_outside": _nanmean([u.scores.ssim_outside for u in rows]),
            "psnr_outside": _nanmean([u.scores.psnr_outside for u in rows]),
            "ssim_inside": _nanmean([u.scores.ssim_inside for u in rows]),
            "psnr_inside": _nanmean([u.scores.psnr_inside for u in rows]),
            "landmark_error": _nanmean(lm),
            "redetection": _nanmean(red),
            "people_agreement": agree,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON; skipped pairs listed by reason."""
        return {
            "pairs": self.pairs,
            "measured": len(self.measured),
            **self.summary(),
            "landmark_pairs": sum(u.landmark_error is not None for _, u in self.measured),
            "people_boxes": [  # HOG people boxes on originals, on anonymized images
                sum(u.people[1] for _, u in self.measured if u.people is not None),
                sum(u.people[2] for _, u in self.measured if u.people is not None),
            ],
            "missing_anonymized": self.missing,
            "missing_original": self.extra,
            "unusable": [{"file": f, "error": e} for f, e in self.unusable],
            "no_face_on_original": self.no_face,
            "no_landmarks_on_original": self.no_landmarks,
            "unavailable": self.unavailable,
            "psnr_cap_db": PSNR_CAP,
        }


class UtilityMeter:
    """Measures pairs one by one; models are built once, failures to build are recorded.

    Results that depend on the original only (face box, landmarks, people) are cached by
    ``key`` so that several methods on one set pay for them once.
    """

    def __init__(self, config: UtilityConfig | None = None) -> None:
        from veil.detect.base import DETECTORS

        self.config = config or UtilityConfig()
        self.detector = DETECTORS.create(self.config.detector)
        self.masker = Masker()
        self.unavailable: dict[str, str] = {}
        self._landmarks: Any = self._optional("landmarks", self.config.landmarks, _landmarks)
        self._people: Any = self._optional("people", self.config.people, PeopleDetector)
        self._cache: dict[tuple[str, str], Any] = {}

    def _optional(self, what: str, wanted: bool, build: Any) -> Any:
        if not wanted:
            return None
        try:
            return build()
        except VeilError as exc:
            log.warning("utility: %s unavailable: %s", what, exc)
            self.unavailable[what] = str(exc)
            return None

    def set_faces(self, key: str, faces: Faces) -> None:
        """Use ``faces`` (detected elsewhere) as the faces of the original ``key``."""
        self._cache["faces", key] = faces

    def face(self, key: str, original: np.ndarray) -> Faces:
        """Faces on the original (cached): the detector's boxes."""
        if ("faces", key) not in self._cache:
            self._cache["faces", key] = self.detector.detect(original)
        faces: Faces = self._cache["faces", key]
        return faces

    def region(self, key: str, original: np.ndarray) -> np.ndarray:
        """Union of veil's default mask regions of the faces found on the original."""
        return union_mask(
            self.masker.regions(self.face(key, original), original.shape), original.shape
        )

    def measure(
        self,
        key: str,
        original: np.ndarray,
        anonymized: np.ndarray,
        *,
        mask: np.ndarray | None = None,
    ) -> PairUtility | None:
        """Measure one pair; ``None`` if no face is found on the original."""
        faces = self.face(key, original)
        if len(faces) == 0:
            return None
        box = faces.xyxy[int(np.argmax(np.prod(faces.xyxy[:, 2:] - faces.xyxy[:, :2], 1)))]
        mask = self.region(key, original) if mask is None else mask
        scores = region_scores(original, anonymized, mask)
        lm = None
        if self._landmarks is not None:
            lm = landmark_error(original, anonymized, box, self._landmarks)
        found = self.detector.detect(anonymized)
        redetected = bool(
            len(found) and box_iou(found.xyxy, box[None]).max() >= self.config.redetect_iou
        )
        people = None
        if self._people is not None:
            if ("people", key) not in self._cache:
                self._cache["people", key] = self._people.detect(original)
            before, after = self._cache["people", key], self._people.detect(anonymized)
            people = (match_count(before, after), len(before), len(after))
        return PairUtility(scores, lm, redetected, people)


def _landmarks() -> Any:
    from veil.anonymize._landmarks import LandmarkModel

    return LandmarkModel()


def evaluate_utility(
    original_dir: str | Path,
    anonymized_dir: str | Path,
    config: UtilityConfig | None = None,
    *,
    meter: UtilityMeter | None = None,
) -> UtilityReport:
    """Utility of an anonymized folder paired with its originals by relative path.

    The face region is veil's default mask around the faces the detector finds on the
    original (the tool's own mask is not known). Raises ``InputError`` for a missing or
    empty folder.
    """
    from veil.evaluate.privacy import pair_folders
    from veil.io.images import read_image

    meter = meter or UtilityMeter(config)
    pairs = pair_folders(original_dir, anonymized_dir)
    report = UtilityReport(
        pairs=len(pairs.pairs), missing=pairs.missing_anonymized, extra=pairs.missing_original
    )
    for rel, src, dst in pairs.pairs[: meter.config.limit]:
        try:
            original, anonymized = read_image(src).image, read_image(dst).image
            if original.shape != anonymized.shape:
                raise InputError(f"sizes differ: {original.shape} vs {anonymized.shape}")
            result = meter.measure(rel, original, anonymized)
        except InputError as exc:
            report.unusable.append((rel, str(exc)))
            continue
        if result is None:
            report.no_face.append(rel)
            continue
        wanted = meter.config.landmarks and "landmarks" not in meter.unavailable
        if wanted and result.landmark_error is None:
            report.no_landmarks.append(rel)
        report.measured.append((rel, result))
    report.unavailable = dict(meter.unavailable)
    return report
