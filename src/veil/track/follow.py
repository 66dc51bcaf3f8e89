"""Follow one box drawn by a reviewer from frame to frame (an edit list's tracked add).

:class:`BoxFollower` starts from a box on one frame and, for each next frame (forward or
backward in time), finds where it went:

1. the detector's window search (:func:`~veil.track.search.search_windows`) around the
   box: a face whose centre lies in the box, of a plausible size, moves the box with
   it (keeping the drawn box's offset and size relative to the face, learned the first
   time a face is found);
2. else template matching of the box's grey content (normalized cross-correlation,
   searched half a box size around it, at most :data:`TEMPLATE_SIDE` px): a face the
   detector cannot see at all (profile, motion blur, below its threshold) is followed by
   its appearance;
3. else the box stays where it was and grows by :data:`GROWTH` per frame, to at most
   :data:`MAX_GROWTH` times its last found size (never smaller than before).

Everything is deterministic: the same frames and box give the same boxes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from veil.io.yuv import YUV420
from veil.track.search import search_windows
from veil.types import Faces

__all__ = ["GROWTH", "MAX_GROWTH", "MIN_MATCH", "TEMPLATE_SIDE", "BoxFollower"]

GROWTH = 1.05
"""Growth of a box per frame while its face is lost (the tracker's rule)."""
MAX_GROWTH = 2.0
"""A lost box grows to at most this times its last found size."""
MIN_MATCH = 0.6
"""Normalized cross-correlation a template match needs to count as found."""
TEMPLATE_SIDE = 48
"""Templates are matched at most this many pixels on their longer side."""

Image = np.ndarray | YUV420


def _grey(image: Image) -> np.ndarray:
    if isinstance(image, YUV420):
        return image.y
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def _int_box(box: np.ndarray, hw: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = hw
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    return x0, y0, x1, y1


class BoxFollower:
    """Follows ``box`` (``x1, y1, x2, y2``, drawn on ``image``) through the frames given
    to :meth:`step`, one at a time, in the order they are shown (forward or backward).

    ``detect`` is a window detector (RGB image -> Faces), e.g.
    :meth:`veil.pipeline.Pipeline.detect_window`.
    """

    def __init__(
        self, detect: Callable[[np.ndarray], Faces], image: Image, box: tuple[float, ...]
    ) -> None:
        self.detect = detect
        self.box = np.asarray(box, np.float64)
        self.found_size = self.box[2:] - self.box[:2]  # size when last found
        self.relation: np.ndarray | None = None  # box relative to its face, once seen
        self.template = self._cut(_grey(image), self.box)
        face = self._face_near(image)
        if face is not None:
            self.relation = _relation(self.box, face)

    def step(self, image: Image) -> tuple[float, float, float, float]:
        """The box on the next frame ``image`` (RGB ``uint8 (H, W, 3)`` or YUV420)."""
        face = self._face_near(image)
        grey = _grey(image)
        if face is not None:
            if self.relation is None:
                self.relation = _relation(self.box, face)
            self._found(_apply(self.relation, face), grey)
        elif (moved := self._match(grey)) is not None:
            self.box = moved  # same size: the template is matched at one scale
        else:
            centre = (self.box[:2] + self.box[2:]) / 2
            size = np.minimum((self.box[2:] - self.box[:2]) * GROWTH, self.found_size * MAX_GROWTH)
            size = np.maximum(size, self.box[2:] - self.box[:2])
            self.box = np.concatenate([centre - size / 2, centre + size / 2])
        x1, y1, x2, y2 = (round(float(v), 2) for v in self.box)
        return x1, y1, x2, y2

    def _found(self, box: np.ndarray, grey: np.ndarray) -> None:
        self.box = box
        self.found_size = box[2:] - box[:2]
        template = self._cut(grey, box)
        if template is not None:
            self.template = template

    def _face_near(self, image: Image) -> np.ndarray | None:
        """The detected face belonging to the box: its centre inside the box, its size
        plausible (the face the box was drawn around), the nearest to the expected one."""
        faces = search_windows(self.detect, image, self.box[None].astype(np.float32))
        if not len(faces):
            return None
        xyxy = faces.xyxy.astype(np.float64)
        centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        sizes = (xyxy[:, 2:] - xyxy[:, :2]).mean(axis=1)
        b = self.box
        # where the face should be, from the box (the box itself until a face was seen)
        expected = b if self.relation is None else _unapply(self.relation, b)
        e_centre, e_size = (expected[:2] + expected[2:]) / 2, (expected[2:] - expected[:2]).mean()
        inside = np.all((centres >= b[:2]) & (centres <= b[2:]), axis=1)
        plausible = (sizes >= 0.5 * e_size) & (sizes <= 1.6 * e_size)
        if self.relation is None:  # a drawn box may be looser than the face it holds
            plausible = (sizes >= 0.25 * e_size) & (sizes <= 1.3 * e_size)
        ok = np.flatnonzero(inside & plausible)
        if not len(ok):
            return None
        dist = np.linalg.norm(centres[ok] - e_centre, axis=1)
        return np.asarray(xyxy[ok[int(np.argmin(dist))]])

    def _cut(self, grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        x0, y0, x1, y1 = _int_box(box, grey.shape[:2])
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        return np.ascontiguousarray(grey[y0:y1, x0:x1])

    def _match(self, grey: np.ndarray) -> np.ndarray | None:
        """The box moved to where its template matches best nearby, or ``None``."""
        if self.template is None:
            return None
        th, tw = self.template.shape
        bw, bh = self.box[2] - self.box[0], self.box[3] - self.box[1]
        area = self.box + np.array([-bw / 2, -bh / 2, bw / 2, bh / 2])
        x0, y0, x1, y1 = _int_box(area, grey.shape[:2])
        if x1 - x0 < tw or y1 - y0 < th:
            return None
        scale = min(1.0, TEMPLATE_SIDE / max(th, tw))
        region, template = grey[y0:y1, x0:x1], self.template
        if scale < 1.0:
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            size = (max(1, round(tw * scale)), max(1, round(th * scale)))
            template = cv2.resize(template, size, interpolation=cv2.INTER_AREA)
        if region.shape[0] < template.shape[0] or region.shape[1] < template.shape[1]:
            return None
        if float(template.std()) < 2.0:  # a flat patch matches anywhere
            return None
        score = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(score)
        if not best >= MIN_MATCH:
            return None
        nx0, ny0 = x0 + mx / scale, y0 + my / scale
        # the template was cut from the box clipped to the frame: keep that offset
        cx0, cy0, _, _ = _int_box(self.box, grey.shape[:2])
        dx, dy = nx0 - cx0, ny0 - cy0
        return np.asarray(self.box + np.array([dx, dy, dx, dy]))


def _relation(box: np.ndarray, face: np.ndarray) -> np.ndarray:
    """``box`` relative to ``face``: centre offset and size, in face sizes."""
    fc, fs = (face[:2] + face[2:]) / 2, face[2:] - face[:2]
    bc, bs = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    return np.concatenate([(bc - fc) / fs, bs / fs])


def _apply(relation: np.ndarray, face: np.ndarray) -> np.ndarray:
    fc, fs = (face[:2] + face[2:]) / 2, face[2:] - face[:2]
    centre, size = fc + relation[:2] * fs, relation[2:] * fs
    return np.concatenate([centre - size / 2, centre + size / 2])


def _unapply(relation: np.ndarray, box: np.ndarray) -> np.ndarray:
    bc, bs = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    fs = bs / relation[2:]
    centre = bc - relation[:2] * fs
    return np.concatenate([centre - fs / 2, centre + fs / 2])
