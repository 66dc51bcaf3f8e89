"""Tool-agnostic face coverage: compare an original image with its anonymized version.

No detector output is needed: a face counts as *covered* when at least 90% of the ellipse
inscribed in its ground-truth box changed. Any anonymizer (veil, deface, a person with an
image editor) can be measured the same way.

Blurring a flat surgical mask or uniform skin changes almost no pixel, so before measuring,
flat areas enclosed by changed pixels are counted as changed: within a crop around the face,
the changed mask is closed with an elliptical kernel about a quarter of the face size, then
its holes are filled.

Boxes are ``(x, y, w, h)`` in pixels of the stored image; pixel ``(row, col)`` covers
``[col, col + 1) x [row, row + 1)``, so its centre is ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.errors import InputError
from veil.types import check_image

__all__ = [
    "COVERED_THRESHOLD",
    "SIZE_BINS",
    "CoverageReport",
    "GTImage",
    "ImageCoverage",
    "changed_mask",
    "evaluate_pair",
    "face_coverage",
    "false_alarms",
    "load_ground_truth",
    "outside_change",
    "size_bin",
]

COVERED_THRESHOLD = 0.9
"""A face is covered when at least this share of its ellipse changed."""

SIZE_BINS: tuple[str, ...] = ("0-10", "10-20", "20-40", "40-80", "80+")
"""Face-size bins by box height in pixels: lower edge included, upper edge excluded."""
_BIN_EDGES = (10.0, 20.0, 40.0, 80.0)


# --- pixel masks -----------------------------------------------------------------------------


def changed_mask(
    original: np.ndarray, anonymized: np.ndarray, *, tol: int = 8, sigma: float = 1.0
) -> np.ndarray:
    """Return a ``bool (H, W)`` mask of pixels whose largest channel difference exceeds ``tol``.

    Both inputs are RGB ``uint8 (H, W, 3)`` arrays of the same shape, else ``InputError``.
    Both are first smoothed with a Gaussian of ``sigma`` px (0 disables it): re-encoding a
    JPEG at quality 75 (what deface does) moves pixels by more than 8 levels in textured
    areas, and without smoothing that noise alone "covers" most faces once the closing fills
    it in. With the defaults (``tol=8``, ``sigma=1``) a bare quality-75 re-encode covers no
    face of faces-street and changes ~1% of the outside area.
    """
    check_image(original, name="original")
    check_image(anonymized, name="anonymized")
    if original.shape != anonymized.shape:
        raise InputError(
            f"original and anonymized images differ in shape: {original.shape} vs "
            f"{anonymized.shape}"
        )
    pair = [np.asarray(x, dtype=np.float32) for x in (original, anonymized)]
    if sigma > 0:
        pair = [np.asarray(cv2.GaussianBlur(x, (0, 0), sigma), dtype=np.float32) for x in pair]
    return np.asarray(np.abs(pair[0] - pair[1]).max(axis=2) > tol)


def _check_changed(changed: np.ndarray) -> np.ndarray:
    if not isinstance(changed, np.ndarray) or changed.ndim != 2 or changed.dtype != bool:
        shape = getattr(changed, "shape", None)
        raise InputError(f"changed: expected a bool (H, W) array, got {type(changed)} {shape}")
    return changed


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"{name}: expected (n, 4) boxes as x, y, w, h; got shape {array.shape}")
    return array


def _ellipse_in(box_xywh: Sequence[float], rows: slice, cols: slice) -> np.ndarray:
    """Mask over ``[rows, cols]`` of pixels whose centre lies in the box's inscribed ellipse."""
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + w / 2, y + h / 2
    yy = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] + 0.5
    ax, ay = max(w / 2, 1e-9), max(h / 2, 1e-9)
    inside = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
    if not inside.any():  # sub-pixel face: fall back to the pixel holding its centre
        r = min(max(int(np.floor(cy)), rows.start), rows.stop - 1) - rows.start
        c = min(max(int(np.floor(cx)), cols.start), cols.stop - 1) - cols.start
        inside[r, c] = True
    return np.asarray(inside)


def _window(box_xywh: Sequence[float], margin: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Pixel rows and columns touched by the box grown by ``margin``, clipped to the image."""
    x, y, w, h = (float(v) for v in box_xywh)
    r0 = min(max(int(np.floor(y)) - margin, 0), shape[0] - 1)
    c0 = min(max(int(np.floor(x)) - margin, 0), shape[1] - 1)
    r1 = max(min(int(np.ceil(y + h)) + margin, shape[0]), r0 + 1)
    c1 = max(min(int(np.ceil(x + w)) + margin, shape[1]), c0 + 1)
    return slice(r0, r1), slice(c0, c1)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set every unset region not 4-connected to the border of ``mask``."""
    padded = np.pad(mask.astype(np.uint8) * 255, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 255)
    return np.asarray((padded > 0) | (flood == 0))[1:-1, 1:-1]


def _close_and_fill(crop: np.ndarray, w: float, h: float) -> np.ndarray:
    kw, kh = (max(1, round(s / 4)) | 1 for s in (w, h))  # odd: the kernel has a centre pixel
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kw, kh))
    closed = cv2.morphologyEx(crop.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
    return _fill_holes(closed)


def face_coverage(changed: np.ndarray, box_xywh: Sequence[float], *, closing: bool = True) -> float:
    """Share (0-1) of the ellipse inscribed in ``box_xywh`` whose pixels changed.

    ``changed`` is a ``bool (H, W)`` mask from :func:`changed_mask`. With ``closing`` (the
    default), the mask is first closed within a crop around the face with an elliptical kernel
    of about a quarter of the face width and height, and its holes are filled, so that a flat
    region enclosed by changed pixels (a blurred surgical mask) counts as changed. A face
    smaller than a pixel is measured on the pixel holding its centre. A face counts as covered
    when the result is at least :data:`COVERED_THRESHOLD`.
    """
    _check_changed(changed)
    x, y, w, h = (float(v) for v in box_xywh)
    margin = (max(1, round(max(w, h) / 4)) | 1) if closing else 0
    rows, cols = _window((x, y, w, h), margin, changed.shape)
    crop = changed[rows, cols]
    if closing:
        crop = _close_and_fill(crop, w, h)
    ellipse = _ellipse_in((x, y, w, h), rows, cols)
    return float(crop[ellipse].mean())


def outside_change(changed: np.ndarray, boxes_xywh: Any, ignore_xywh: Any = ()) -> float:
    """Share (0-1) of the image's pixels that changed outside the faces.

    The outside area is the image minus every face box and every ignore box, each grown by
    half its size on every side (2x width and height about its centre, every pixel it touches
    excluded). The result is ``changed outside pixels / image pixels``, as the foundation
    issue defines it. It measures collateral damage from false detections and from masks
    spilling beyond the face.
    """
    _check_changed(changed)
    inside = np.zeros(changed.shape, dtype=bool)
    for boxes, name in ((boxes_xywh, "boxes_xywh"), (ignore_xywh, "ignore_xywh")):
        for x, y, w, h in _as_boxes(boxes, name):
            rows, cols = _window((x - w / 2, y - h / 2, 2 * w, 2 * h), 0, changed.shape)
            inside[rows, cols] = True
    return float((changed & ~inside).sum() / changed.size)


def false_alarms(
    changed: np.ndarray, boxes_xywh: Any, ignore_xywh: Any = (), *, min_area: int = 64
) -> int:
    """Changed regions away from every face: the tool's false alarms (a fist, a bag).

    The changed mask is closed (5x5) so one blurred region counts once, the face and
    ignore boxes grown as in :func:`outside_change` are removed, and each remaining
    connected region of at least ``min_area`` pixels counts as one false alarm. Meaningful
    on sets whose boxes list every face (faces-dlib9; WIDER with its ignore boxes).
    """
    import cv2

    _check_changed(changed)
    mask = cv2.morphologyEx(changed.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    for boxes, name in ((boxes_xywh, "boxes_xywh"), (ignore_xywh, "ignore_xywh")):
        for x, y, w, h in _as_boxes(boxes, name):
            rows, cols = _window((x - w / 2, y - h / 2, 2 * w, 2 * h), 0, changed.shape)
            mask[rows, cols] = 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return int((stats[1:n, cv2.CC_STAT_AREA] >= min_area).sum())


def size_bin(height: float) -> str:
    """Name of the size bin of a face whose box HEIGHT is ``height`` px (see :data:`SIZE_BINS`).

    Height, not width: it is the usual face-size measure (WIDER FACE) and does not depend
    on head turn. Edges belong to the upper bin: 10 -> "10-20", 80 -> "80+".
    """
    return SIZE_BINS[int(np.searchsorted(_BIN_EDGES, float(height), side="right"))]


# --- per image and aggregate -----------------------------------------------------------------


@dataclass(frozen=True)
class ImageCoverage:
    """Coverage of one anonymized image: one entry per ground-truth face, in input order."""

    coverage: np.ndarray  # float64 (n,), 0-1
    covered: np.ndarray  # bool (n,), coverage >= threshold
    bins: tuple[str, ...]  # size bin of each face
    outside: float  # share of the outside area that changed, 0-1
    false_alarms: int = 0  # changed regions away from every face (:func:`false_alarms`)


def evaluate_pair(
    original: np.ndarray,
    anonymized: np.ndarray,
    faces_xywh: Any,
    ignore_xywh: Any = (),
    *,
    tol: int = 8,
    sigma: float = 1.0,
    closing: bool = True,
    threshold: float = COVERED_THRESHOLD,
    fa_tol: int = 24,
) -> ImageCoverage:
    """Measure every face of one image; ignore boxes count neither as faces nor as outside.

    ``tol`` and ``sigma`` go to :func:`changed_mask`, ``closing`` to :func:`face_coverage`.
    False alarms count regions changed by more than ``fa_tol`` grey levels: a tool's JPEG
    re-encoding alone made 1-34 regions per faces-dlib9 photo at 8 (deface's default
    quality), about one at 24, while a blurred false detection changes far more.
    """
    changed = changed_mask(original, anonymized, tol=tol, sigma=sigma)
    faces = _as_boxes(faces_xywh, "faces_xywh")
    coverage = np.array([face_coverage(changed, b, closing=closing) for b in faces], np.float64)
    return ImageCoverage(
        coverage=coverage,
        covered=coverage >= threshold,
        bins=tuple(size_bin(h) for h in faces[:, 3]),
        outside=outside_change(changed, faces, ignore_xywh),
        false_alarms=false_alarms(
            changed_mask(original, anonymized, tol=max(tol, fa_tol), sigma=sigma),
            faces,
            ignore_xywh,
        ),
    )


@dataclass
class CoverageReport:
    """Running totals over many images: recall overall and per size bin, outside change."""

    images: int = 0  # images measured
    missing: int = 0  # images without a usable output: faces missed, no outside share
    faces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZE_BINS, 0))
    covered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZE_BINS, 0))
    outside_sum: float = 0.0
    false_alarms: int = 0

    def add(self, image: ImageCoverage) -> None:
        """Add one image's result."""
        self.images += 1
        self.outside_sum += image.outside
        self.false_alarms += image.false_alarms
        for name, hit in zip(image.bins, image.covered, strict=True):
            self.faces[name] += 1
            self.covered[name] += int(hit)

    def add_missing(self, heights: Sequence[float]) -> None:
        """Count an image the tool produced no usable output for: all its faces are missed."""
        self.missing += 1
        for h in heights:
            self.faces[size_bin(h)] += 1

    @property
    def n_faces(self) -> int:
        return sum(self.faces.values())

    @property
    def recall(self) -> float:
        """Covered faces / faces; NaN without faces."""
        n = self.n_faces
        return sum(self.covered.values()) / n if n else float("nan")

    def recall_by_bin(self) -> dict[str, tuple[float, int]]:
        """``{bin: (recall, faces)}``; recall is NaN for an empty bin."""
        return {
            b: (self.covered[b] / n if (n := self.faces[b]) else float("nan"), n) for b in SIZE_BINS
        }

    @property
    def mean_outside(self) -> float:
        """Mean over images of the changed share of the outside area; NaN without images."""
        return self.outside_sum / self.images if self.images else float("nan")

    @property
    def false_alarms_per_image(self) -> float:
        """Changed regions away from every face, per measured image; NaN without images."""
        return self.false_alarms / self.images if self.images else float("nan")

    def as_rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows ready to print."""
        rows = [
            ("images", str(self.images)),
            ("missing outputs", str(self.missing)),
            ("faces", str(self.n_faces)),
            ("recall", f"{self.recall:.3f}"),
        ]
        rows += [
            (f"recall {b}px", f"{r:.3f} (n={n})") for b, (r, n) in self.recall_by_bin().items()
        ]
        rows.append(("outside changed", f"{100 * self.mean_outside:.2f}%"))
        rows.append(("false alarms / image", f"{self.false_alarms_per_image:.2f}"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON (NaN becomes None)."""

        def num(v: float) -> float | None:
            return None if np.isnan(v) else round(v, 6)

        return {
            "images": self.images,
            "missing": self.missing,
            "faces": self.n_faces,
            "recall": num(self.recall),
            "recall_by_bin": {
                b: {"recall": num(r), "faces": n} for b, (r, n) in self.recall_by_bin().items()
            },
            "outside_changed": num(self.mean_outside),
            "false_alarms": self.false_alarms,
            "false_alarms_per_image": num(self.false_alarms_per_image),
        }


# --- ground truth ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GTImage:
    """One ground-truth image: ``file`` as written in the JSON, ``path`` resolved on disk."""

    file: str
    path: Path
    faces: np.ndarray  # float64 (n, 4) x, y, w, h
    ignore: np.ndarray  # float64 (m, 4) x, y, w, h


def load_ground_truth(path: str | Path) -> list[GTImage]:
    """Read ``{"images": [{"file", "faces", "ignore"?}, ...]}``; files are relative to its folder.

    Raises ``InputError`` if the JSON is unreadable or malformed, or if any listed image file
    is missing (the message counts and names them): images are never dropped silently.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["images"]
        images = [
            GTImage(
                file=str(e["file"]),
                path=path.parent / str(e["file"]),
                faces=_as_boxes(e.get("faces", []), f"{path}: {e['file']}: faces"),
                ignore=_as_boxes(e.get("ignore", []), f"{path}: {e['file']}: ignore"),
            )
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable ground-truth JSON ({exc!r})") from exc
    missing = [im.file for im in images if not im.path.is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise InputError(
            f"{path}: {len(missing)} of {len(images)} listed image files are missing "
            f"(relative to {path.parent}): {shown}"
        )
    return images
