"""Bounded working resolution: detection on a large image never runs at its full size.

A detector's memory grows with the pixels of its input (CenterFace on a 7000 x 7000 image
took over 6 GB). Above ``work_pixels`` an image is analysed in two ways instead:

- an **overview**: the whole image downscaled so its longer side is ``overview`` px and
  zero-padded to an ``overview`` square, for the faces too large for the tiles (only its
  faces of at least half the tiles' overlap are kept);
- **tiles** of ``tile`` x ``tile`` native pixels, all the same size, overlapping by more
  than the smallest face the overview finds reliably (24 px there), so each smaller face
  lies whole in at least one tile. Tile faces that touch an inner tile edge are dropped
  (the neighbour tile, or the overview, holds them whole). A flat tile (every value
  within 4 levels, e.g. the inside of a "decompression bomb") is not run at all.

Both are fused with weighted box fusion. The detector sees two input shapes whatever the
image (inference runtimes keep buffers per shape), so memory is bounded by ``tile``;
time is about 1.5-2x that of one full-resolution pass (the overlaps).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from veil.boxes import fuse_boxes, nms
from veil.types import Faces

__all__ = ["OVERVIEW", "TILE", "WORK_PIXELS", "detect_bounded", "tile_starts"]

WORK_PIXELS = 2048 * 2048
"""Largest image a detector sees whole; larger ones get an overview plus tiles."""
TILE = 1536
"""Side of the native-resolution tiles of a large image."""
OVERVIEW = 1024
"""Side of the (padded, square) downscaled overview of a large image."""
_MIN_FACE = 24  # px in the overview a face needs to be found there reliably (CenterFace ~12)
_FLAT = 4  # a tile whose values all lie within this many levels is skipped


def detect_bounded(
    detect: Callable[[np.ndarray], Faces],
    image: np.ndarray,
    *,
    overview_detect: Callable[[np.ndarray], Faces] | None = None,
    work_pixels: int = WORK_PIXELS,
    tile: int = TILE,
    overview: int = OVERVIEW,
    iou: float = 0.3,
) -> Faces:
    """``detect(image)``, or for an image over ``work_pixels`` pixels an overview pass
    plus native tiles (see the module docstring); boxes in ``image``'s coordinates.
    ``overview_detect`` (default ``detect``) runs on the overview: it only needs the
    large faces, so :meth:`~veil.detect.base.Detector.detect_window` (no small-face
    pass) is enough."""
    h, w = image.shape[:2]
    if h * w <= work_pixels:
        return detect(image)
    scale = min(1.0, overview / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    if scale < 1.0:  # one input shape for every large image
        small = cv2.copyMakeBorder(small, 0, overview - sh, 0, overview - sw, cv2.BORDER_CONSTANT)
    found = (overview_detect or detect)(small)
    del small
    found = found[(found.xyxy[:, 0] < sw) & (found.xyxy[:, 1] < sh)]  # none in the padding
    overlap = min(tile // 2, 32 * math.ceil(_MIN_FACE / scale / 32))
    # the overview is for faces too large for the tiles; its smaller ones are poorly
    # placed (a few px there) and the tiles find them whole at full resolution
    found = _scaled(found, w / sw, h / sh)
    parts = [found[found.sizes >= overlap / 2]]
    th, tw = min(tile, h), min(tile, w)
    for y0 in tile_starts(h, th, overlap):
        for x0 in tile_starts(w, tw, overlap):
            view = image[y0 : y0 + th, x0 : x0 + tw]
            if int(view.max()) - int(view.min()) <= _FLAT:
                continue  # nothing there: no face has less contrast than this
            parts.append(_tile_faces(detect(view), (x0, y0), (tw, th), (w, h)))
    return _fuse(Faces.merge(parts), iou).clip((h, w))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of equal tiles of ``tile`` px covering ``length`` px, neighbours
    overlapping by at least ``overlap`` px (spread evenly, the last one flush with the end)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _scaled(faces: Faces, fx: float, fy: float) -> Faces:
    if len(faces):
        faces = faces[np.arange(len(faces))]  # a copy: never edit the detector's arrays
        faces.xyxy = faces.xyxy * np.array([fx, fy, fx, fy], np.float32)
        if faces.landmarks is not None:
            faces.landmarks = faces.landmarks * np.array([fx, fy], np.float32)
        faces.masks = None  # masks of the overview's size mean nothing at full size
    return faces


def _tile_faces(
    faces: Faces, origin: tuple[int, int], size: tuple[int, int], full: tuple[int, int]
) -> Faces:
    """Tile faces moved to image coordinates; those touching an inner tile edge dropped."""
    if not len(faces):
        return faces
    (x, y), (tw, th), (w, h) = origin, size, full
    faces = faces[np.arange(len(faces))]
    faces.masks = None
    shift = np.array([x, y, x, y], np.float32)
    faces.xyxy = faces.xyxy + shift
    if faces.landmarks is not None:
        faces.landmarks = faces.landmarks + shift[:2]
    lo = shift + 1
    hi = np.array([x + tw, y + th, x + tw, y + th], np.float32) - 1
    inner_lo = np.array([x > 0, y > 0, x > 0, y > 0])
    inner_hi = np.array([x + tw < w, y + th < h] * 2)
    cut = ((faces.xyxy <= lo) & inner_lo) | ((faces.xyxy >= hi) & inner_hi)
    return faces[~cut.any(axis=1)]


def _fuse(faces: Faces, iou: float) -> Faces:
    """One box per face found by several passes (score-weighted mean box, best landmarks)."""
    if len(faces) < 2:
        return faces
    scores = np.asarray(faces.scores)
    if len(nms(faces.xyxy, scores, iou)) == len(faces):
        return faces
    xyxy, fused, members = fuse_boxes(faces.xyxy, scores, iou)
    best = [int(m[np.argmax(scores[m])]) for m in members]
    lms = None if faces.landmarks is None else faces.landmarks[best]
    return Faces(xyxy=xyxy, scores=fused, landmarks=lms)
