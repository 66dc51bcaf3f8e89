"""Look for known faces only where the tracker expects them (speed mode's "search").

Between full detections, a track the tracker is unsure of (just born, missed once, or
predicted for long) is confirmed by running the detector on a window around its
expected box instead of on the whole frame. Each window is ``context`` face sizes wide
and resized to ``side`` pixels, so the face inside is about ``side / context`` pixels
whatever its size in the frame (small faces are enlarged, large ones shrunk) and every
call has the same input shape. A 720p frame costs the detector about 60 such windows.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from veil.boxes import nms
from veil.io.yuv import YUV420, even_box
from veil.types import Faces

__all__ = ["search_windows", "window_boxes"]


def window_boxes(
    boxes: np.ndarray, hw: tuple[int, int], *, context: float = 2.5, min_side: int = 32
) -> list[tuple[int, int, int, int]]:
    """Square windows ``(x0, y0, x1, y1)`` (even integers) ``context`` times the larger
    side of each box ``(k, 4)``, centred on it and moved inside the ``(H, W)`` frame
    (cropped only when the frame is smaller than the window)."""
    h, w = hw
    out = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        side = max(context * max(x1 - x0, y1 - y0), min_side)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        wx0 = min(max(cx - side / 2, 0.0), max(w - side, 0.0))
        wy0 = min(max(cy - side / 2, 0.0), max(h - side, 0.0))
        out.append(even_box((wx0, wy0, wx0 + side, wy0 + side), w, h))
    return out


def search_windows(
    detect: Callable[[np.ndarray], Faces],
    image: np.ndarray | YUV420,
    boxes: np.ndarray,
    *,
    context: float = 2.5,
    side: int = 128,
    nms_iou: float = 0.4,
) -> Faces:
    """Run ``detect`` (RGB image -> Faces) on a window around each box ``(k, 4)`` of
    ``image`` (RGB ``uint8 (H, W, 3)`` or :class:`~veil.io.yuv.YUV420`) and return the
    faces found, in frame coordinates. Faces cut by a window edge that lies inside the
    frame are dropped (the window around their own track holds them whole); duplicates
    from overlapping windows are removed by NMS."""
    h, w = image.shape[:2]
    found = []
    for box in window_boxes(boxes, (h, w), context=context):
        x0, y0, x1, y1 = box
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        crop = image.crop_rgb(box) if isinstance(image, YUV420) else image[y0:y1, x0:x1]
        factor = side / max(x1 - x0, y1 - y0)
        size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
        resized = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_LINEAR)
        faces = detect(resized)
        if len(faces):
            found.append(_to_frame(faces, size[0] / (x1 - x0), size[1] / (y1 - y0), box, (h, w)))
    if not found:
        return Faces.empty()
    faces = Faces.merge(found)
    if len(faces) > 1 and faces.scores is not None:
        faces = faces[np.sort(nms(faces.xyxy, faces.scores, nms_iou))]
    return faces


def _to_frame(
    faces: Faces, fx: float, fy: float, box: tuple[int, int, int, int], hw: tuple[int, int]
) -> Faces:
    x0, y0, x1, y1 = box
    scale = np.array([fx, fy, fx, fy], np.float32)
    faces.xyxy = faces.xyxy / scale + np.array([x0, y0, x0, y0], np.float32)
    if faces.landmarks is not None:
        faces.landmarks = faces.landmarks / np.array([fx, fy], np.float32) + np.array(
            [x0, y0], np.float32
        )
    inner = np.array([x0 > 0, y0 > 0, x1 < hw[1], y1 < hw[0]])
    edge = np.array([x0, y0, x1, y1], np.float32)
    touch = np.abs(faces.xyxy - edge) <= 1.0
    return faces[~(touch & inner).any(axis=1)]
