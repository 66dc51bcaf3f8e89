"""Follow one box drawn by a reviewer from frame to frame (an edit list's tracked add).

:class:`BoxFollower` starts from a box on one frame and, for each next frame (forward or
backward in time), finds where it went:

1. the detector's window search (:func:`~veil.track.search.search_windows`) around the
   box: a face whose centre lies in the box, of a plausible size, moves the box with
   it (keeping the drawn box's offset and size relative to the face, learned the first
   time a face is found);
2. else template matching of the box's grey content where it was drawn or last
   detected (normalized cross-correlation >= :data:`MIN_MATCH`, searched half a box size
   around the box at three sizes, :data:`SCALES`, at most :data:`TEMPLATE_SIDE` px): a
   face the detector cannot see at all (profile, motion blur, below its threshold) is
   followed by its appearance;
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

__all__ = ["GROWTH", "MAX_GROWTH", "MIN_MATCH", "SCALES", "TEMPLATE_SIDE", "BoxFollower"]

GROWTH = 1.05
"""Growth of a box per frame while its face is lost (the tracker's rule)."""
MAX_GROWTH = 2.0
"""A lost box grows to at most this times its last found size."""
MIN_MATCH = 0.6
"""Normalized cross-correlation a template match needs to count as found."""
SCALES = (1 / 1.04, 1.0, 1.04)
"""Sizes, relative to the box's last found size, the template is matched at on each frame
(a face walking toward or away from the camera)."""
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
        self.template: np.ndarray | None = None
        self.template_box = self.box  # the box the template was cut from
        self.template_at = np.zeros(2)  # the template's corner in that box
        self._cut(_grey(image), self.box)
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
        elif (box := self._match(grey)) is not None:
            # the template stays: renewed on every match, it would drift and never
            # change size (a face grows ~1% a frame, less than one scale step)
            self.box = box
            self.found_size = box[2:] - box[:2]
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
        self._cut(grey, box)

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
        e_centre = (expected[:2] + expected[2:]) / 2
        # the face's size when last found (a lost box grows; the face did not)
        found = self.found_size if self.relation is None else self.found_size / self.relation[2:]
        e_size = float(found.mean())
        inside = np.all((centres >= b[:2]) & (centres <= b[2:]), axis=1)
        plausible = (sizes >= 0.5 * e_size) & (sizes <= 1.6 * e_size)
        if self.relation is None:  # a drawn box may be looser than the face it holds
            plausible = (sizes >= 0.25 * e_size) & (sizes <= 1.3 * e_size)
        ok = np.flatnonzero(inside & plausible)
        if not len(ok):
            return None
        dist = np.linalg.norm(centres[ok] - e_centre, axis=1)
        return np.asarray(xyxy[ok[int(np.argmin(dist))]])

    def _cut(self, grey: np.ndarray, box: np.ndarray) -> None:
        """Take the box's grey content (clipped to the frame) as the template."""
        x0, y0, x1, y1 = _int_box(box, grey.shape[:2])
        if x1 - x0 < 4 or y1 - y0 < 4:
            return
        self.template = np.ascontiguousarray(grey[y0:y1, x0:x1])
        self.template_box = box
        self.template_at = np.array([x0, y0], np.float64) - box[:2]  # its corner in the box

    def _match(self, grey: np.ndarray) -> np.ndarray | None:
        """The box where the template matches best within half a box around it, at
        :data:`SCALES` of the box's current size; ``None`` below :data:`MIN_MATCH`."""
        if self.template is None:
            return None
        th, tw = self.template.shape
        bw, bh = self.box[2] - self.box[0], self.box[3] - self.box[1]
        area = self.box + np.array([-bw / 2, -bh / 2, bw / 2, bh / 2])
        x0, y0, x1, y1 = _int_box(area, grey.shape[:2])
        k = min(1.0, TEMPLATE_SIDE / max(th, tw))  # work at most TEMPLATE_SIDE px
        region = grey[y0:y1, x0:x1]
        if k < 1.0:
            region = cv2.resize(region, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        # the face's size relative to the template: from where it was last found (a lost
        # box grows, its face does not)
        cut = self.template_box[2:] - self.template_box[:2]
        now = float(np.sqrt(np.prod(self.found_size) / np.prod(cut)))
        best: tuple[float, float, int, int] | None = None
        for f in (now * step for step in SCALES):
            size = (round(tw * f * k), round(th * f * k))
            if min(size) < 4 or size[0] > region.shape[1] or size[1] > region.shape[0]:
                continue
            template = cv2.resize(self.template, size, interpolation=cv2.INTER_AREA)
            if float(template.std()) < 2.0:  # a flat patch matches anywhere
                continue
            score = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
            _, value, _, (mx, my) = cv2.minMaxLoc(score)
            if best is None or value > best[0]:
                best = (value, f, mx, my)
        if best is None or not best[0] >= MIN_MATCH:
            return None
        _, f, mx, my = best
        corner = np.array([x0 + mx / k, y0 + my / k]) - self.template_at * f
        box_size = (self.template_box[2:] - self.template_box[:2]) * f
        return np.concatenate([corner, corner + box_size])


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
