"""Heads without a visible face, found from depth alone.

A face detector misses people seen from behind or from the side, yet their head (hair,
ears, the shape of the skull in the depth map) can still identify them. This module finds
head-shaped blobs on top of person-shaped depth segments:

1. **Foreground**: at half resolution, each pixel's background is the farthest depth in a
   wide horizontal window of its row (walls and floors are far, people are narrow);
   pixels clearly in front of it (0.3 m + 5 %) are foreground. Pixels on depth edges are
   removed so people at different depths separate.
2. **Person-sized segments**: connected components at least 0.4 m tall and between
   0.12 m and 4 m wide at their mean depth (metric size from the intrinsics).
3. **Heads**: along each segment's top profile, the highest points that stand out from
   their surroundings like a head above shoulders (the profile 0.17-0.30 m to each side
   is at least 0.10 m lower, or leaves the segment). The head region is the top 0.26 m of
   the segment there, ±0.12 m wide, within a depth band around the head's depth; pixels
   without depth inside that box count as head (fail closed).
4. Heads that overlap an existing face mask or box by more than 30 % are skipped.

What it catches: upright people (standing, walking) seen from any side, including from
behind, with their head against a background at least ~0.3 m farther away; several people
side by side in one segment (one head per prominent top); people cut at the bottom of the
image. What it misses: heads against something at nearly the same depth (a person
leaning on a wall, a head in front of another person's body at the same distance), people
lying down or bending over, heads touching the top image edge with no background above
them only when they are also wider than the shoulders below (rare), heads occluded by
someone nearer, people beyond the sensor range or where depth is missing altogether, and
tall head-shaped objects (a coat stand, a lamp) which it masks as heads (fail closed).
"""

from __future__ import annotations

import cv2
import numpy as np

from veil.rgbd.depthmask import check_depth
from veil.types import Faces

__all__ = ["find_heads_without_faces"]

_HEAD_HEIGHT = 0.26  # metres of the top of a segment taken as head (0.22 m + hair)
_HEAD_HALF_WIDTH = 0.12
_MIN_PERSON_HEIGHT = 0.4
_PROMINENCE = 0.10
_HEAD_WIDTH = (0.10, 0.32)  # metres, widest row of a head with hair
_SHOULDERS = (0.30, 0.45)  # metres below the top of the head
_MIN_SHOULDERS = 0.22  # metres, a person seen from the side


def find_heads_without_faces(
    depth: np.ndarray,
    intrinsics: dict[str, float],
    existing: Faces | None = None,
    *,
    score: float = 0.5,
) -> Faces:
    """Head masks for people whose face is not among ``existing``.

    Args:
        depth: ``float32 (H, W)`` metres, 0 or NaN where unknown.
        intrinsics: ``fx, fy, cx, cy`` in pixels for this depth map.
        existing: faces already found (their ``masks`` if set, else their boxes grown
            1.5x) suppress heads that overlap them.
        score: the score given to each head found.

    Returns:
        Faces with head boxes, ``masks`` ``bool (n, H, W)`` and
        ``data["mask_source"] == "depth-head"``.
    """
    h, w = depth.shape[:2]
    depth = check_depth(depth, (h, w))
    small = np.ascontiguousarray(depth[::2, ::2])
    fx, fy = intrinsics["fx"] / 2, intrinsics["fy"] / 2
    labels, segments = _person_segments(small, fx, fy)
    covered = _covered(existing, (h, w))
    boxes, masks = [], []
    for label, z in segments:
        for head in _heads_in_segment(small, labels, label, z, fx, fy):
            full = _upsample(head, (h, w))
            if covered is not None and (full & covered).sum() > 0.3 * full.sum():
                continue
            ys, xs = np.nonzero(full)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            masks.append(full)
    if not boxes:
        return Faces.empty()
    return Faces(
        xyxy=np.array(boxes, np.float32),
        scores=np.full(len(boxes), score, np.float32),
        masks=np.stack(masks),
        data={"mask_source": ["depth-head"] * len(boxes)},
    )


def _person_segments(
    depth: np.ndarray, fx: float, fy: float
) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Label image of foreground segments and the person-sized ones as (label, depth)."""
    w = depth.shape[1]
    background = cv2.dilate(depth, np.ones((1, max(3, w // 2 | 1)), np.uint8))
    valid = depth > 0
    foreground = valid & (depth < background - (0.3 + 0.05 * background))
    k3 = np.ones((3, 3), np.uint8)
    filled = np.where(valid, depth, background)
    grad = cv2.dilate(filled, k3) - cv2.erode(filled, k3)
    foreground &= grad < 0.1 + 0.03 * filled
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        foreground.astype(np.uint8), connectivity=4
    )
    counts = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    mean_z = np.bincount(labels.ravel(), depth.ravel(), minlength=n) / counts
    out = []
    for label in range(1, n):
        z = float(mean_z[label])
        if counts[label] < 20 or z <= 0:
            continue
        height_m = stats[label, cv2.CC_STAT_HEIGHT] * z / fy
        width_m = stats[label, cv2.CC_STAT_WIDTH] * z / fx
        if height_m >= _MIN_PERSON_HEIGHT and 0.12 <= width_m <= 4.0:
            out.append((label, z))
    return labels, out


def _heads_in_segment(
    depth: np.ndarray, labels: np.ndarray, label: int, z: float, fx: float, fy: float
) -> list[np.ndarray]:
    """Half-resolution ``bool`` head masks found on the top profile of one segment."""
    seg = labels == label
    has = seg.any(axis=0)
    top = np.where(has, seg.argmax(axis=0), depth.shape[0] + 10**6)
    cols = np.flatnonzero(has)
    free = has.copy()
    heads: list[np.ndarray] = []
    first: int | None = None
    for _ in range(8):
        if not free.any():
            break
        u = int(np.flatnonzero(free)[np.argmin(top[free])])
        v = int(top[u])
        if first is None:
            first = v
        if v > first + 0.45 * fy / z:
            break
        if _prominent(top, u, v, z, fx, fy, cols) and _head_shaped(depth, seg, u, v, fx, fy):
            heads.append(_head_region(depth, seg, u, v, fx, fy))
            _block(free, u, 0.2 * fx / z)
        else:
            _block(free, u, 0.04 * fx / z)
    return heads


def _prominent(
    top: np.ndarray, u: int, v: int, z: float, fx: float, fy: float, cols: np.ndarray
) -> bool:
    """The profile 0.17-0.30 m left and right of ``u`` is lower by the prominence."""
    near, far = round(0.17 * fx / z), round(0.30 * fx / z) + 1
    drop = v + _PROMINENCE * fy / z
    w = len(top)
    for side in (-1, 1):
        lo, hi = sorted((u + side * near, u + side * far))
        lo, hi = max(lo, 0), min(hi, w)
        if lo >= hi:
            continue  # off the image: no evidence against a head
        if np.mean(top[lo:hi] >= drop) < 0.5:
            return False
    # the head itself must be at least 0.08 m wide near its top
    half = max(1, round(0.08 * fx / z))
    span = top[max(0, u - half) : u + half + 1]
    return int(np.sum(span <= v + 0.1 * fy / z)) >= max(2, round(0.08 * fx / z))


def _head_shaped(depth: np.ndarray, seg: np.ndarray, u: int, v: int, fx: float, fy: float) -> bool:
    """A head above shoulders, in metres at the head's own depth.

    The widest row 0.02-0.18 m below the top is 0.10-0.32 m wide (a head with hair), and
    the segment 0.30-0.45 m below the top is wider than that by 30 % and 0.06 m
    (shoulders; a pole, a door frame or a box on a stand is as wide below as above, or
    narrower). Evidence that is cut by the image border counts for a head (fail closed).
    """
    z = _top_depth(depth, seg, u, v)
    px_m = z / fx
    widths, cut = _run_widths(seg, depth, z, u, v + 0.02 * fy / z, v + 0.16 * fy / z)
    if widths.size == 0:
        return False
    # + 2 px: the foreground loses about one pixel at each depth edge
    head = float(np.median(widths)) + 2
    if head * px_m > _HEAD_WIDTH[1] or (not cut and (widths.max() + 2) * px_m < _HEAD_WIDTH[0]):
        return False
    lo, hi = v + _SHOULDERS[0] * fy / z, v + _SHOULDERS[1] * fy / z
    if lo >= seg.shape[0] - 1:
        return True  # shoulders below the image
    body, body_cut = _run_widths(seg, depth, z, u, lo, hi)
    if body.size == 0:
        return False
    shoulders = body.max() + 2
    wide = shoulders >= 1.3 * head and (shoulders - head) * px_m >= 0.06
    return (wide and shoulders * px_m >= _MIN_SHOULDERS) or body_cut


def _top_depth(depth: np.ndarray, seg: np.ndarray, u: int, v: int) -> float:
    """Median depth of the segment just below its top point ``(u, v)``."""
    patch = np.s_[v : v + 3, max(0, u - 2) : u + 3]
    return float(np.median(depth[patch][seg[patch]]))


def _run_widths(
    seg: np.ndarray, depth: np.ndarray, z: float, u: int, r0: float, r1: float
) -> tuple[np.ndarray, bool]:
    """Widths of the horizontal runs of ``seg`` under column ``u`` in rows ``r0..r1``
    (gaps of up to 2 px bridged), and whether any of them may be cut short: it touches
    the image border or something nearer than ``z`` (an occluder) is next to it."""
    h, w = seg.shape
    widths, cut = [], False
    for row in range(max(0, int(r0)), min(h, int(np.ceil(r1)) + 1)):
        filled = np.flatnonzero(seg[row])
        if filled.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(filled) > 3)
        starts = np.concatenate([[filled[0]], filled[breaks + 1]])
        ends = np.concatenate([filled[breaks], [filled[-1]]])
        i = int(np.argmin(np.maximum(starts - u, 0) + np.maximum(u - ends, 0)))
        if max(starts[i] - u, u - ends[i], 0) > 2:
            continue  # nothing of the segment under this column
        widths.append(int(ends[i] - starts[i] + 1))
        left = depth[row, max(0, starts[i] - 4) : starts[i]]
        right = depth[row, ends[i] + 1 : ends[i] + 5]
        cut |= starts[i] == 0 or ends[i] == w - 1
        cut |= _occluded(left[::-1], z) or _occluded(right, z)
    return np.array(widths), cut


def _occluded(beside: np.ndarray, z: float) -> bool:
    """The first valid depth next to a run is nearer than the run (it hides part of it)."""
    valid = beside[beside > 0]
    return bool(valid.size and valid[0] < z - 0.15)


def _head_region(
    depth: np.ndarray, seg: np.ndarray, u: int, v: int, fx: float, fy: float
) -> np.ndarray:
    """Pixels of the head box: in the segment, in the head's depth band, or unknown."""
    h, w = depth.shape
    z = float(
        np.median(depth[v : v + 3, max(0, u - 2) : u + 3][seg[v : v + 3, max(0, u - 2) : u + 3]])
    )
    half, tall = round(_HEAD_HALF_WIDTH * fx / z), round(_HEAD_HEIGHT * fy / z)
    y0, y1 = max(0, v - 2), min(h, v + tall)
    x0, x1 = max(0, u - half), min(w, u + half + 1)
    box = depth[y0:y1, x0:x1]
    band = (box > z - 0.15) & (box < z + 0.25)
    keep = (seg[y0:y1, x0:x1] | band | (box <= 0)).astype(np.uint8)
    _, lab = cv2.connectedComponents(keep, connectivity=4)
    seed = lab[v - y0, u - x0]
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = lab == seed if seed > 0 else keep > 0
    return region


def _block(free: np.ndarray, u: int, half: float) -> None:
    r = max(1, round(half))
    free[max(0, u - r) : u + r + 1] = False


def _upsample(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Half-resolution mask to full size, grown by 2 px (fail closed at the edge)."""
    big = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return big > 0


def _covered(existing: Faces | None, shape: tuple[int, int]) -> np.ndarray | None:
    if existing is None or len(existing) == 0:
        return None
    if existing.masks is not None and existing.masks.shape[1:] == shape:
        return np.asarray(existing.masks.any(axis=0))
    out = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in existing.xyxy:
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.75, (y1 - y0) * 0.75
        cv2.rectangle(out, (int(cx - hw), int(cy - hh)), (int(cx + hw), int(cy + hh)), 1, -1)
    return out > 0
