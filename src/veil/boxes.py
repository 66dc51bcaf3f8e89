"""Box arithmetic on ``xyxy float32 (n, 4)`` arrays: IoU, NMS, box fusion, scaling."""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "fuse_boxes", "mask_box", "nms", "scale_boxes"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (n, 4)`` and ``b (m, 4)``; returns ``float32 (n, m)``."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3) -> np.ndarray:
    """Greedy non-maximum suppression; returns the indices kept, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    iou = box_iou(xyxy, xyxy)
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= iou[i] >= iou_threshold
    return np.asarray(keep, dtype=np.int64)


def fuse_boxes(
    xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Weighted box fusion: cluster boxes overlapping the best remaining box by at least
    ``iou_threshold`` and replace each cluster by its score-weighted mean box.

    Returns ``(fused_xyxy (k, 4), fused_scores (k,), members)`` where ``members[j]`` are
    the input indices merged into cluster ``j``. The fused score is the cluster's max.
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    iou = box_iou(xyxy, xyxy)
    taken = np.zeros(len(xyxy), bool)
    boxes, fused_scores, members = [], [], []
    for i in order:
        if taken[i]:
            continue
        group = np.flatnonzero((iou[i] >= iou_threshold) & ~taken)
        taken[group] = True
        w = np.maximum(scores[group], 1e-6)[:, None]
        boxes.append((xyxy[group] * w).sum(0) / w.sum())
        fused_scores.append(scores[group].max())
        members.append(group)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), []
    return np.asarray(boxes, np.float32), np.asarray(fused_scores, np.float32), members


def scale_boxes(xyxy: np.ndarray, factor: float | np.ndarray) -> np.ndarray:
    """Grow (``factor > 1``) or shrink boxes about their centres."""
    xyxy = np.asarray(xyxy, np.float32)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = (xyxy[:, 2:] - xyxy[:, :2]) / 2 * np.asarray(factor, np.float32).reshape(-1, 1)
    return np.concatenate([centre - half, centre + half], axis=1)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` bounding the true pixels of ``bool (h, w)``, ``None`` if none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
