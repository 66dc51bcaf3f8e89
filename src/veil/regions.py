"""Where faces are anonymized: include and exclude regions (``--region``,
``--exclude-region``, ``--regions-file``).

Rules (fail safe: a doubt means the face is anonymized):

* **include** regions (none = the whole frame): a face is anonymized when its box touches
  any include region, even by one pixel; only a face lying wholly outside every include
  region is left visible.
* **exclude** regions: a face is left visible when its box centre lies in an exclude
  region and at least ``exclude_share`` (default half) of its box does (all exclude
  regions together); a face only partly inside is anonymized. Exclude wins over include.

Coordinates: a region is a box ``x1,y1,x2,y2`` or a polygon ``[[x, y], ...]``, in
pixels, or in fractions of the frame's width and height when *every* value of that
region is <= 1 (``0.5,0,1,0.3`` is the top-right corner whatever the frame size;
``0,0,1,1`` is the whole frame, never a 1-pixel box). A region mixing values under 1
with values over 1 is refused. Pixel coordinates are pixel edges: box ``0,0,10,10``
covers pixels 0-9. Each face is decided on its own box in every frame (in video, a track
moving out of an include region is left visible from the first frame its box is out).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from veil.config import Polygon, RegionConfig
from veil.errors import ConfigError, InputError
from veil.types import Faces

__all__ = [
    "RegionFilter",
    "load_regions_file",
    "parse_box",
    "parse_regions",
    "region_config",
    "region_records",
]

_FILE_KEYS = frozenset({"include", "exclude"})
_CACHED_SHAPES = 4


def parse_box(text: str) -> Polygon:
    """``"x1,y1,x2,y2"`` (pixels, or fractions when every value is <= 1) as a 4-point
    polygon; ConfigError naming the text when malformed."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ConfigError(
            f"region {text!r}: expected four numbers x1,y1,x2,y2 (pixels, or fractions of "
            "the frame when all are <= 1)"
        )
    x1, y1, x2, y2 = values
    if not (x1 < x2 and y1 < y2) or min(values) < 0:
        raise ConfigError(f"region {text!r}: needs 0 <= x1 < x2 and 0 <= y1 < y2")
    if max(values) > 1 and any(0 < v < 1 for v in values):
        raise ConfigError(
            f"region {text!r}: mixes fractions (values < 1) and pixels (values > 1); give "
            "every value as a fraction of the frame (all <= 1) or every value in pixels"
        )
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


def load_regions_file(path: str | Path) -> tuple[list[Any], list[Any]]:
    """``(include, exclude)`` polygons of a JSON file ``{"include": [[[x, y], ...], ...],
    "exclude": [...]}`` (either key may be missing); InputError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is allowed
    except OSError as exc:
        raise InputError(f"{path}: cannot read the regions file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the regions file is not UTF-8 JSON ({exc})") from exc
    try:
        return parse_regions(text)
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from exc


def parse_regions(text: str) -> tuple[list[Any], list[Any]]:
    """``(include, exclude)`` polygons of the JSON text of a regions file (see
    :func:`load_regions_file`); ConfigError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"regions: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not data or set(data) - _FILE_KEYS:
        raise ConfigError(
            'regions: expected {"include": [polygons], "exclude": [polygons]}, '
            f"got {sorted(data) if isinstance(data, dict) else type(data).__name__}"
        )
    out = []
    for key in ("include", "exclude"):
        polygons = data.get(key, [])
        if not isinstance(polygons, list):
            raise ConfigError(f"regions: {key!r} must be a list of polygons [[x, y], ...]")
        checked: dict[str, Any] = {key: tuple(polygons)}
        RegionConfig(**checked)  # each polygon checked, named by its place
        out.append(polygons)
    return out[0], out[1]


def region_config(
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    regions_file: str | Path | None = None,
) -> RegionConfig:
    """A :class:`RegionConfig` from ``--region`` / ``--exclude-region`` boxes and a
    ``--regions-file``; ConfigError (bad box or polygon) or InputError (bad file), each
    naming the culprit."""
    inc: list[Any] = [parse_box(b) for b in include]
    exc: list[Any] = [parse_box(b) for b in exclude]
    if regions_file is not None:
        file_inc, file_exc = load_regions_file(regions_file)
        inc, exc = inc + file_inc, exc + file_exc
    return RegionConfig(include=tuple(inc), exclude=tuple(exc))


def _pixels(polygon: Polygon, width: int, height: int) -> np.ndarray:
    """Polygon points in pixel-edge coordinates ``float64 (n, 2)``."""
    points = np.asarray(polygon, np.float64)
    if points.max() <= 1:  # fractions of the frame
        points = points * np.array([width, height], np.float64)
    return points


def rasterize(polygons: Sequence[Polygon], shape: tuple[int, int]) -> np.ndarray:
    """``bool (H, W)``: pixels whose centre lies in any of ``polygons`` (even-odd rule; a
    centre on a left or top edge is in, on a right or bottom edge out, so box
    ``0,0,10,10`` is exactly pixels 0-9), for a frame of ``shape (H, W)``."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), bool)
    for polygon in polygons:
        _fill(mask, _pixels(polygon, w, h))
    return mask


def _fill(mask: np.ndarray, points: np.ndarray) -> None:
    """Set the pixels of ``mask`` whose centres lie in the polygon ``points (n, 2)``."""
    h, w = mask.shape
    a, b = points, np.roll(points, -1, axis=0)
    slanted = a[:, 1] != b[:, 1]  # horizontal edges cross no row of centres
    a, b = a[slanted], b[slanted]
    top, bottom = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    first = max(math.ceil(float(top.min()) - 0.5), 0) if len(a) else h
    last = min(math.ceil(float(bottom.max()) - 0.5), h) if len(a) else 0
    if first >= last:
        return
    yc = np.arange(first, last, dtype=np.float64)[:, None] + 0.5
    crosses = (top[None] <= yc) & (yc < bottom[None])  # half-open: shared vertices once
    rows, edges = np.nonzero(crosses)
    a, b = a[edges], b[edges]
    x = a[:, 0] + (yc[rows, 0] - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    # even-odd: a pixel is inside when an odd number of crossings lie left of its centre
    cols = np.clip(np.ceil(x - 0.5), 0, w).astype(np.intp)
    flips = np.zeros((last - first, w + 1), np.uint8)
    np.bitwise_xor.at(flips, (rows, cols), 1)
    mask[first:last] |= np.bitwise_xor.accumulate(flips, axis=1)[:, :w].astype(bool)


class RegionFilter:
    """Splits faces into those to anonymize and those the regions leave visible.

    Region masks are rasterized once per frame size (a few sizes cached); thread-safe.
    """

    def __init__(self, config: RegionConfig) -> None:
        self.config = config
        self._masks: OrderedDict[tuple[int, int], tuple[np.ndarray | None, np.ndarray | None]]
        self._masks = OrderedDict()
        self._lock = threading.Lock()

    def masks(self, shape: tuple[int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(include, exclude)`` masks ``bool (H, W)`` of a frame size (None: not set)."""
        shape = (int(shape[0]), int(shape[1]))
        with self._lock:
            if shape in self._masks:
                self._masks.move_to_end(shape)
                return self._masks[shape]
        c = self.config
        inc = rasterize(c.include, shape) if c.include else None
        exc = rasterize(c.exclude, shape) if c.exclude else None
        with self._lock:
            self._masks[shape] = (inc, exc)
            if len(self._masks) > _CACHED_SHAPES:
                self._masks.popitem(last=False)
        return inc, exc

    def reasons(self, faces: Faces, shape: tuple[int, int]) -> list[str | None]:
        """Per face, why the regions leave it visible (``"outside"`` every include
        region, ``"excluded"``), or ``None`` when it is anonymized."""
        inc, exc = self.masks(shape)
        h, w = int(shape[0]), int(shape[1])
        out: list[str | None] = []
        for box in faces.xyxy.astype(np.float64):
            x0, y0 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
            x1, y1 = min(math.ceil(box[2]), w), min(math.ceil(box[3]), h)
            if x1 <= x0 or y1 <= y0:  # no pixel in the frame: decided on its centre
                x0, y0 = min(max(int(box[0]), 0), w - 1), min(max(int(box[1]), 0), h - 1)
                x1, y1 = x0 + 1, y0 + 1
            out.append(self._reason(inc, exc, box, (x0, y0, x1, y1)))
        return out

    def _reason(
        self,
        inc: np.ndarray | None,
        exc: np.ndarray | None,
        box: np.ndarray,
        pixels: tuple[int, int, int, int],
    ) -> str | None:
        x0, y0, x1, y1 = pixels
        if exc is not None:
            cx = min(max(int((box[0] + box[2]) / 2), x0), x1 - 1)
            cy = min(max(int((box[1] + box[3]) / 2), y0), y1 - 1)
            part = exc[y0:y1, x0:x1]
            if exc[cy, cx] and part.mean() >= self.config.exclude_share:
                return "excluded"
        if inc is not None and not inc[y0:y1, x0:x1].any():
            return "outside"
        return None

    def split(self, faces: Faces, shape: tuple[int, int]) -> tuple[Faces, Faces]:
        """``(to anonymize, left visible)`` of ``faces`` in a frame of ``shape (H, W)``;
        visible faces carry ``data["region"]`` (``"outside"`` or ``"excluded"``)."""
        if not len(faces):
            return faces, faces
        reasons = self.reasons(faces, shape)
        hide = np.array([r is None for r in reasons], bool)
        skipped = faces[~hide]
        skipped.data["region"] = [r for r in reasons if r is not None]
        return faces[hide], skipped

    def describe(self) -> dict[str, Any]:
        """Settings for audit files."""
        c = self.config
        return {
            "include": [[list(p) for p in poly] for poly in c.include],
            "exclude": [[list(p) for p in poly] for poly in c.exclude],
            "exclude_share": c.exclude_share,
        }


def region_records(skipped: Faces) -> list[dict[str, Any]]:
    """Audit records of faces left visible by regions: :meth:`Faces.to_records` plus
    ``region`` (``"outside"`` every include region or ``"excluded"``)."""
    records = skipped.to_records()
    reasons = skipped.data.get("region", [None] * len(skipped))
    for rec, reason in zip(records, reasons, strict=True):
        rec["region"] = reason
    return records
