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
   is at least 0.10 m lower, or leaves the segment), and that are shaped like one in
   metres at their own depth (``_head_shaped``): 0.10-0.32 m wide, a rounded top (not
   the flat top of a box; checked when the head is 8 px or more across at half
   resolution, i.e. within about 4 m), shoulders below that reach 0.05 m beyond the head
   on a visible side, and something at the head's depth going on 0.6 m below it. Sides
   cut by the image border or hidden by a nearer object count as unknown, never as
   evidence against a head (recall first). The head region is the top 0.26 m of the
   segment there, ±0.12 m wide (±0.24 m over pixels without depth, such as dark hair),
   within a depth band around the head's depth; pixels without depth count as head.
4. Heads of which less than 20 % lies outside an existing face mask (or box grown
   1.5x) are skipped as already masked.

What it catches: upright people (standing, walking) seen from any side, including from
behind, with their head against a background at least ~0.3 m farther away; several people
side by side in one segment (one head per prominent top); people cut at the bottom of the
image. What it rejects: poles, lamps on a stand, door posts, boxes on thin stands (no
shoulders), boxes on cabinets within ~4 m (flat top), wall pieces shorter than a person.
What it misses: heads against something at nearly the same depth (a person leaning on a
wall, a head in front of another person's body at the same distance), people lying down
or bending over, heads occluded by someone nearer, people beyond the sensor range or where
depth is missing altogether. Still masked as heads (fail closed): round-topped objects on
a wider base at head height (a bust on a pedestal, a plant with an oval crown) and
box-shaped ones beyond ~4 m.
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
_MIN_BODY = 0.6  # metres from the top of the head down the segment


def find_heads_without_faces(
    depth: np.ndarray,
    intrinsics: dict[str, float],
    existing: Faces | None = None,
    *,
    score: float = 0.5,
    margin: float = 0.0,
) -> Faces:
    """Head masks for people whose face is not among ``existing``.

    Args:
        depth: ``float32 (H, W)`` metres, 0 or NaN where unknown.
        intrinsics: ``fx, fy, cx, cy`` in pixels for this depth map.
        existing: faces already found (their ``masks`` if set, else their boxes grown
            1.5x) suppress heads that overlap them.
        score: the score given to each head found.
        margin: metres added around each head mask (at the head's depth), for colour and
            depth that are not exactly registered.

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
        for head in _heads_in_segment(small, labels, label, z, fx, fy, margin):
            full = _upsample(head, (h, w))
            if covered is not None and (full & ~covered).sum() < 0.2 * full.sum():
                continue  # already masked: under 20 % of it is new
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
    depth: np.ndarray,
    labels: np.ndarray,
    label: int,
    z: float,
    fx: float,
    fy: float,
    margin: float = 0.0,
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
            heads.append(_head_region(depth, seg, u, v, fx, fy, margin))
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
    """The segment below its top point ``(u, v)`` is shaped like a person's head.

    Measured in metres at the head's own depth, on horizontal runs of the segment under
    column ``u`` (each side of a run counts as unknown where the image border or a nearer
    object cuts it: only what is visible can reject a head):

    - head width, rows 0.02-0.16 m below the top: at most 0.32 m (median row), at
      least 0.10 m (widest row);
    - a rounded top: the rows in the top 0.03 m are narrower than the head below;
    - shoulders, rows 0.30-0.45 m below: on a visible side the segment reaches 0.05 m
      farther than the head does on that side, and at least 0.11 m from ``u`` (a pole,
      a door frame or a box on a stand is no wider below than above);
    - body: the segment goes on at least 0.6 m below the top of the head.
    """
    z = _top_depth(depth, seg, u, v)
    px_m = z / fx
    head = _runs(seg, depth, z, u, v + 0.02 * fy / z, v + 0.16 * fy / z)
    if len(head) == 0:
        return False
    width = head[:, 0] + head[:, 1] + 1
    if np.median(width) * px_m > _HEAD_WIDTH[1]:
        return False
    if not head[:, 2:].any() and width.max() * px_m < _HEAD_WIDTH[0]:
        return False
    if v > 0 and _flat_top(seg, depth, z, u, v, fy, float(np.median(width)) - 2):
        return False
    return _has_shoulders(seg, depth, z, u, v, fy, head) and _has_body(seg, depth, z, u, v, fy)


def _flat_top(
    seg: np.ndarray, depth: np.ndarray, z: float, u: int, v: int, fy: float, width: float
) -> bool:
    """The rows in the top 0.03 m (at least 2) already reach 75 % of ``width`` (the
    head's median run, pixels): the top of a box, a board or a cabinet. A skull with
    hair is rounded there (< 45 % on the synthetic and the PCL heads). A run cut by the
    border or an occluder, or a head under 8 px across, proves nothing."""
    if width < 8:
        return False  # too few pixels across to see the rounding (beyond ~4 m)
    top = _runs(seg, depth, z, u, v, v + max(1.0, 0.03 * fy / z))
    if len(top) == 0 or top[:, 2:].any():
        return False
    return bool((top[:, 0] + top[:, 1] - 1).min() >= 0.75 * width)  # pixels in the run


def _has_shoulders(
    seg: np.ndarray, depth: np.ndarray, z: float, u: int, v: int, fy: float, head: np.ndarray
) -> bool:
    px = z / fy  # metres per pixel (fx = fy for the sensors seen so far)
    body = _runs(seg, depth, z, u, v + _SHOULDERS[0] / px, v + _SHOULDERS[1] / px)
    if len(body) == 0:
        return v + _SHOULDERS[0] / px >= seg.shape[0] - 1  # shoulders below the image
    reach = []  # per side: the head's median reach from u (metres), unknown: nan
    for side in (0, 1):
        seen = head[head[:, 2 + side] == 0, side]
        reach.append(float(np.median(seen)) * px if seen.size else np.nan)
    if np.isnan(reach).all():
        reach = [0.0, 0.0]
    reach = [r if not np.isnan(r) else float(np.nanmax(reach)) for r in reach]
    any_visible = False
    for side in (0, 1):
        seen = body[body[:, 2 + side] == 0, side] * px
        any_visible |= seen.size > 0
        if np.any((seen >= reach[side] + 0.05) & (seen >= 0.11)):
            return True
    return not any_visible  # both sides hidden everywhere: no evidence against a head


def _has_body(seg: np.ndarray, depth: np.ndarray, z: float, u: int, v: int, fy: float) -> bool:
    """Something at the head's depth goes on 0.6 m below ``v`` near column ``u``.

    Walking down a band ±0.06 m wide: a row continues the body if the band has segment
    pixels, depth within -0.15/+0.4 m of ``z``, or no depth at all (a sensor hole); a
    row with something nearer ends the walk in favour of a head (an occluder hides the
    body), as does the image bottom.
    """
    h = seg.shape[0]
    r = max(1, round(0.06 * fy / z))
    cols = np.s_[max(0, u - r) : u + r + 1]
    end = min(h, v + int(np.ceil(_MIN_BODY * fy / z)) + 1)
    for row in range(v, end):
        band = depth[row, cols]
        if seg[row, cols].any() or not (band > 0).any():
            continue
        valid = band[band > 0]
        if np.any(valid < z - 0.15):
            return True  # occluded below
        if not np.any(valid <= z + 0.4):
            return False  # background right below: too short for a person
    return True


def _top_depth(depth: np.ndarray, seg: np.ndarray, u: int, v: int) -> float:
    """Median depth of the segment just below its top point ``(u, v)``."""
    patch = np.s_[v : v + 3, max(0, u - 2) : u + 3]
    return float(np.median(depth[patch][seg[patch]]))


def _runs(seg: np.ndarray, depth: np.ndarray, z: float, u: int, r0: float, r1: float) -> np.ndarray:
    """``int (k, 4)``: for each row in ``r0..r1`` where the segment lies under column
    ``u`` (gaps of up to 2 px bridged), how far its run reaches left and right of ``u``
    (px, plus the pixel each depth edge loses), and whether each side is cut (1: the
    image border or a nearer object ends it, so the true extent is unknown)."""
    h, w = seg.shape
    out = []
    for row in range(max(0, int(r0)), min(h, int(np.ceil(r1)) + 1)):
        filled = np.flatnonzero(seg[row])
        if filled.size == 0:
            continue
        breaks = np.flatnonzero(np.diff(filled) > 3)
        starts = np.concatenate([[filled[0]], filled[breaks + 1]])
        ends = np.concatenate([filled[breaks], [filled[-1]]])
        i = int(np.argmin(np.maximum(starts - u, 0) + np.maximum(u - ends, 0)))
        s, e = int(starts[i]), int(ends[i])
        if max(s - u, u - e, 0) > 2:
            continue  # nothing of the segment under this column
        left_cut = s == 0 or _nearer(depth[row, max(0, s - 4) : s][::-1], z)
        right_cut = e == w - 1 or _nearer(depth[row, e + 1 : e + 5], z)
        out.append((max(0, u - s) + 1, max(0, e - u) + 1, left_cut, right_cut))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def _nearer(beside: np.ndarray, z: float) -> bool:
    """The first valid depth in ``beside`` is nearer than ``z`` (an occluder)."""
    valid = beside[beside > 0]
    return bool(valid.size and valid[0] < z - 0.15)


def _head_region(
    depth: np.ndarray, seg: np.ndarray, u: int, v: int, fx: float, fy: float, margin: float
) -> np.ndarray:
    """Pixels of the head box: in the segment, in the head's depth band, or unknown.

    The box is ±0.12 m around ``u``; where the head runs into pixels without depth (dark
    hair often gives no reading) the box widens to ±0.24 m over those pixels, because
    the top of the profile may then be on one side of the head (fail closed).
    """
    h, w = depth.shape
    z = _top_depth(depth, seg, u, v)
    half, tall = round(_HEAD_HALF_WIDTH * fx / z), round(_HEAD_HEIGHT * fy / z)
    y0, y1 = max(0, v - 2), min(h, v + tall)
    x0, x1 = max(0, u - 2 * half), min(w, u + 2 * half + 1)
    box = depth[y0:y1, x0:x1]
    band = (box > z - 0.15) & (box < z + 0.25)
    inner = np.zeros(box.shape, bool)
    inner[:, max(0, u - half - x0) : u + half + 1 - x0] = True
    keep = (((seg[y0:y1, x0:x1] | band) & inner) | (box <= 0)).astype(np.uint8)
    _, lab = cv2.connectedComponents(keep, connectivity=4)
    seed = lab[v - y0, u - x0]
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = lab == seed if seed > 0 else (keep > 0) & inner
    grow = round(margin * fx / z)
    if grow > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        region = cv2.dilate(region.astype(np.uint8), k) > 0
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
