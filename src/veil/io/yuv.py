"""Video frames kept as the decoder gives them (yuv420p), converted to RGB only where needed.

Most video is stored as 4:2:0 YUV. Converting every whole frame to RGB and back costs more
than decoding it, although faces cover a few percent of the pixels: a :class:`YUV420`
frame goes from the decoder to the encoder untouched, the detector gets RGB only on the
frames it runs on, and anonymization converts only the crops around faces
(:meth:`YUV420.edit`). Pixels outside those crops are bit-exact copies of the input.

Conversions use OpenCV's I420 routines (ITU-R BT.601, limited range), the same both ways,
so a crop that comes back unchanged maps to the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from veil.boxes import mask_box
from veil.errors import InputError

__all__ = ["YUV420", "as_rgb", "merge_boxes"]

Box = tuple[int, int, int, int]
Edited = np.ndarray | tuple[np.ndarray, np.ndarray]  # what an edit function returns


class YUV420:
    """One I420 frame: ``data`` is ``uint8 (H * 3 / 2, W)`` holding the Y plane ``(H, W)``
    then the U and V planes ``(H / 2, W / 2)`` (``VideoFrame.to_ndarray(format="yuv420p")``
    layout). ``H`` and ``W`` are even. Stands for an RGB image of :attr:`shape`."""

    __slots__ = ("data", "height", "width")

    def __init__(self, data: np.ndarray) -> None:
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[0] % 3:
            raise InputError(f"YUV420: expected uint8 (H*3/2, W), got {data.dtype} {data.shape}")
        h, w = data.shape[0] * 2 // 3, data.shape[1]
        if h % 2 or w % 2 or not h or not w:
            raise InputError(f"YUV420: width and height must be even and > 0, got {w}x{h}")
        self.data = np.ascontiguousarray(data)
        self.height, self.width = h, w

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> YUV420:
        """Convert an RGB ``uint8 (H, W, 3)`` image with even ``H`` and ``W``."""
        return cls(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the RGB image this frame stands for: ``(H, W, 3)``."""
        return (self.height, self.width, 3)

    @property
    def y(self) -> np.ndarray:
        """The luma plane ``uint8 (H, W)`` (a view)."""
        return self.data[: self.height]

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the Y ``(H, W)``, U and V ``(H / 2, W / 2)`` planes."""
        h, w = self.height, self.width
        chroma = self.data[h:].reshape(2, h // 2, w // 2)
        return self.data[:h], chroma[0], chroma[1]

    def copy(self) -> YUV420:
        return YUV420(self.data.copy())

    def rgb(self) -> np.ndarray:
        """The whole frame as RGB ``uint8 (H, W, 3)`` (a new array)."""
        return cv2.cvtColor(self.data, cv2.COLOR_YUV2RGB_I420)

    def crop_rgb(self, box: Box) -> np.ndarray:
        """RGB ``uint8`` of ``box = (x0, y0, x1, y1)``; all four must be even."""
        x0, y0, x1, y1 = _check_box(box, self.width, self.height)
        y, u, v = self.planes()
        parts = (
            y[y0:y1, x0:x1],
            u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
            v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2],
        )
        i420 = np.concatenate([p.ravel() for p in parts]).reshape(-1, x1 - x0)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)

    def edit(self, boxes: Sequence[Box], fn: Callable[[np.ndarray, int], Edited]) -> YUV420:
        """A new frame in which the RGB crop of ``boxes[i]`` was replaced by what
        ``fn(crop, i)`` returns: the new crop, or ``(new crop, changed)`` with ``changed``
        a ``bool (h, w)`` mask of the pixels it may have changed (saves comparing them).

        Boxes are widened to even coordinates and should not overlap (see
        :func:`merge_boxes`). Only changed pixels are written back: a luma sample where
        its RGB pixel changed, a chroma sample where any of its 2x2 pixels did;
        everything else keeps its exact input value.
        """
        out = self.copy()
        y, u, v = out.planes()
        for i, raw in enumerate(boxes):
            box = even_box(raw, self.width, self.height)
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            x0, y0, x1, y1 = box
            before = self.crop_rgb(box)
            result = fn(before.copy(), i)
            after, changed = result if isinstance(result, tuple) else (result, None)
            if after.shape != before.shape or after.dtype != np.uint8:
                raise ValueError(
                    f"edit: fn returned {after.dtype} {after.shape}, expected {before.shape}"
                )
            if changed is None:  # max over channels: a reduction over axis 2 is slow
                changed = (after != before).view(np.uint8).max(axis=2).view(bool)
            bounds = mask_box(changed)
            if bounds is None:
                continue
            # convert back only the even-aligned bounding box of the changed pixels
            top, bottom, left, right = bounds
            top, left = top // 2 * 2, left // 2 * 2
            bottom, right = -(-bottom // 2) * 2, -(-right // 2) * 2
            after, changed = after[top:bottom, left:right], changed[top:bottom, left:right]
            y0, x0, y1, x1 = y0 + top, x0 + left, y0 + bottom, x0 + right
            h, w = y1 - y0, x1 - x0
            i420 = cv2.cvtColor(np.ascontiguousarray(after), cv2.COLOR_RGB2YUV_I420)
            ny = i420[:h]
            nuv = i420[h:].reshape(2, h // 2, w // 2)
            # copyto with a same-shape mask: several times faster than boolean indexing
            np.copyto(y[y0:y1, x0:x1], ny, where=changed)
            c = changed.view(np.uint8)  # any of each 2x2 block (a 4-D any() is slow)
            block = (c[0::2, 0::2] | c[1::2, 0::2] | c[0::2, 1::2] | c[1::2, 1::2]).view(bool)
            for plane, new in ((u, nuv[0]), (v, nuv[1])):
                np.copyto(plane[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], new, where=block)
        return out


def as_rgb(image: np.ndarray | YUV420) -> np.ndarray:
    """RGB ``uint8 (H, W, 3)`` of either kind of frame (an RGB array is returned as is)."""
    return image.rgb() if isinstance(image, YUV420) else image


def even_box(box: Sequence[float], width: int, height: int) -> Box:
    """``box`` widened outwards to even integer coordinates and clipped to the frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    ex0 = max(0, int(np.floor(x0)) // 2 * 2)
    ey0 = max(0, int(np.floor(y0)) // 2 * 2)
    ex1 = min(width, -(-int(np.ceil(x1)) // 2) * 2)
    ey1 = min(height, -(-int(np.ceil(y1)) // 2) * 2)
    return ex0, ey0, ex1, ey1


def merge_boxes(boxes: Sequence[Box]) -> list[tuple[Box, list[int]]]:
    """Group overlapping boxes: returns ``(union box, member indices)`` per group, such
    that no two union boxes overlap (groups are merged until none do)."""
    groups = [(tuple(int(v) for v in b), [i]) for i, b in enumerate(boxes)]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i][0], groups[j][0]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    groups[i] = (union, groups[i][1] + groups[j][1])
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return [(box, sorted(members)) for box, members in groups]  # type: ignore[misc]


def _check_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = (int(v) for v in box)
    if min(x0, y0, x1, y1) < 0 or x1 > width or y1 > height or x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} is outside the {width}x{height} frame or empty")
    if x0 % 2 or y0 % 2 or x1 % 2 or y1 % 2:
        raise ValueError(f"box {box} must have even coordinates (4:2:0 chroma)")
    return x0, y0, x1, y1
