"""What is anonymized around each detected face: the face, the whole head, or the person.

A target turns the faces to anonymize into mask :class:`~veil.mask.Region` s, between the
detect (or track) and anonymize stages, so every anonymization method applies to it:

* ``face`` (default): the :class:`~veil.mask.Masker`'s shape around each face box.
* ``head``: the face box grown to the whole head (hair above it, ears at its sides) from
  the box alone, no model; the masker's shape, margin and feather apply to it.
* ``person``: per-person masks from :class:`~veil.detect.person.PersonSegmenter` (people
  found by the pose detector, and below each face), plus, **fail safe** for the people the
  pose models miss (cut-off, seated, crowded, seen from behind): the segmenter's
  :meth:`~veil.detect.person.PersonSegmenter.scan_mask`, a body-shaped region below every
  face (:func:`body_prior`), and the face region of every face that all these do not
  cover: never less than ``face`` mode hides, and rather too much than too little.

Person regions are computed on every frame they are asked for (video included), seeded by
that frame's tracked faces and, in a stream (:meth:`PersonTarget.for_stream`, used by
:class:`~veil.video.pipeline.FrameAnonymizer`), by where people were on the frame before,
so a person is never left between two detections.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Protocol

import cv2
import numpy as np

from veil.errors import ConfigError
from veil.mask import PERSON_KEY, Masker, Region, union_mask
from veil.types import Faces

__all__ = [
    "BODY",
    "TARGETS",
    "FaceTarget",
    "HeadTarget",
    "PersonTarget",
    "Target",
    "body_prior",
    "head_boxes",
    "make_target",
]

TARGETS: tuple[str, ...] = ("face", "head", "person")

#: Head box in face-box units (CenterFace boxes run from the brows to the chin): the
#: skull and hair reach ~0.6 face heights above the box, the ears ~0.2 widths beside it.
HEAD_GROW = (0.2, 0.6, 0.2, 0.15)  # left, top, right, bottom
SCAN_KEY = PERSON_KEY + 500_000  # the scan mask's region
BODY_KEY = PERSON_KEY + 600_000  # body priors: BODY_KEY + face row
#: Body prior in face-box units: width (face widths) and how far below the face box it
#: reaches (face heights); tuned on the first half of coco-person-mini's images
BODY = (3.5, 7.0)

ImageSource = Callable[[], np.ndarray]


class Target(Protocol):
    """``regions(image, faces, masker, shape) -> list[Region]``: what to anonymize for
    ``faces`` in an image of ``shape``; ``image()`` returns its RGB pixels when needed."""

    name: str

    def regions(
        self, image: ImageSource, faces: Faces, masker: Masker, shape: tuple[int, ...]
    ) -> list[Region]: ...


class FaceTarget:
    """The masker's shape around each face (veil's default)."""

    name = "face"

    def regions(
        self, image: ImageSource, faces: Faces, masker: Masker, shape: tuple[int, ...]
    ) -> list[Region]:
        return masker.regions(faces, shape)


def head_boxes(xyxy: np.ndarray) -> np.ndarray:
    """Face boxes ``float32 (n, 4)`` grown to whole heads by :data:`HEAD_GROW`."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    left, top, right, bottom = HEAD_GROW
    return np.stack(
        [b[:, 0] - left * w, b[:, 1] - top * h, b[:, 2] + right * w, b[:, 3] + bottom * h], 1
    ).astype(np.float32)


class HeadTarget:
    """The masker's shape around each head box (:func:`head_boxes`), at most 1.15 x."""

    name = "head"

    def regions(
        self, image: ImageSource, faces: Faces, masker: Masker, shape: tuple[int, ...]
    ) -> list[Region]:
        heads = dataclasses.replace(faces, xyxy=head_boxes(faces.xyxy), landmarks=None)
        head_masker = Masker(
            shape=masker.shape,
            scale=min(masker.scale, 1.15),
            feather=masker.feather,
            drop=0.0,
            margin=masker.margin,
        )
        return head_masker.regions(heads, shape)


class PersonTarget:
    """Person masks, the scan mask and body priors, plus the face region of every face the
    person and scan masks leave uncovered.

    ``covered``: share of a face region's pixels that person masks must cover for the face
    region to be left out. ``body``: the body prior below each face (:data:`BODY` units;
    ``None``: none). ``scan``: add the segmenter's ``scan_mask`` (when it has one).
    """

    name = "person"

    def __init__(
        self,
        segmenter: Any = None,
        *,
        covered: float = 0.99,
        remember: bool = False,
        body: tuple[float, float] | None = BODY,
        scan: bool = True,
    ) -> None:
        self._segmenter = segmenter
        self._lock = threading.Lock()
        self.covered = covered
        self.remember = remember
        self.body = body
        self.scan = scan
        self._previous: list[tuple[float, float, float]] = []

    def for_stream(self) -> PersonTarget:
        """A target for one stream of frames, in order: each frame also tries the regions
        where people were on the frame before (MediaPipe's own tracking), so a person the
        detector misses for a frame stays hidden. Not thread-safe: one stream, one caller."""
        return PersonTarget(
            self._segmenter, covered=self.covered, remember=True, body=self.body, scan=self.scan
        )

    @property
    def segmenter(self) -> Any:
        with self._lock:
            if self._segmenter is None:
                self._segmenter = _shared_segmenter()
            return self._segmenter

    def regions(
        self, image: ImageSource, faces: Faces, masker: Masker, shape: tuple[int, ...]
    ) -> list[Region]:
        people = self.segmenter.segment(image(), faces, rois=self._previous)
        if self.remember:
            self._previous = list(people.data.get("roi", []))
        out = [_person_region(people, i) for i in range(len(people))]
        persons = [r for r in out if r is not None]
        scan_mask = getattr(self.segmenter, "scan_mask", None)
        if self.scan and scan_mask is not None:
            scanned = _mask_region(scan_mask(image()), len(out), SCAN_KEY)
            persons += [scanned] if scanned is not None else []
        body = union_mask(persons, shape)  # the body priors never stand for a face
        if self.body is not None:
            for j, b in enumerate(faces.xyxy):
                x0, y0, alpha = body_prior(b, (shape[0], shape[1]), self.body)
                if alpha.any():
                    x1, y1 = x0 + alpha.shape[1], y0 + alpha.shape[0]
                    size = ((x1 - x0) + (y1 - y0)) / 2
                    box = (float(x0), float(y0), float(x1), float(y1))
                    index = len(out) + 1 + j
                    persons.append(Region(x0, y0, x1, y1, alpha, size, index, BODY_KEY + j, box))
        for region in masker.regions(faces, shape):
            inside = region.alpha > 0
            if inside.any() and body[region.slices][inside].mean() >= self.covered:
                continue  # the person's mask already hides this face
            persons.append(region)
        return persons


def _person_region(people: Faces, i: int) -> Region | None:
    assert people.masks is not None
    x0, y0, x1, y1 = (int(v) for v in people.xyxy[i])
    alpha = people.masks[i, y0:y1, x0:x1].astype(np.float32)
    if alpha.size == 0 or not alpha.any():
        return None
    size = float((x1 - x0) + (y1 - y0)) / 2
    box = (float(x0), float(y0), float(x1), float(y1))
    return Region(x0, y0, x1, y1, alpha, size, i, PERSON_KEY + i, box)


def _mask_region(mask: np.ndarray, index: int, key: int) -> Region | None:
    """A whole-image ``bool`` mask as one region (its bounding box), ``None`` if empty."""
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if not len(ys):
        return None
    x0, y0, x1, y1 = int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1
    alpha = mask[y0:y1, x0:x1].astype(np.float32)
    size = float((x1 - x0) + (y1 - y0)) / 2
    return Region(x0, y0, x1, y1, alpha, size, index, key, (x0, y0, x1, y1))


def body_prior(
    face_xyxy: np.ndarray, hw: tuple[int, int], units: tuple[float, float] = BODY
) -> tuple[int, int, np.ndarray]:
    """``(x0, y0, alpha)``: a body-shaped region for a face box, clipped to an image of
    ``hw``: the head (an ellipse 1.5 face widths by 2.2 face heights on the face), 1.2
    face widths at the chin, widening to ``units[0]`` face widths (the shoulders) 1.3 face
    heights below the chin, straight down to ``units[1]`` face heights below the face box (or the
    frame edge). Where a person really is seated, turned or cut off this takes some
    background: it is the fail-safe guess for bodies the pose models miss."""
    x0, y0, x1, y1 = (float(v) for v in face_xyxy)
    fw, fh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, half = (x0 + x1) / 2, units[0] * fw / 2
    left, top = (
        max(0, int(np.floor(min(cx - half, x0 - 0.25 * fw)))),
        max(0, int(np.floor(y0 - 0.6 * fh))),
    )
    right = min(hw[1], int(np.ceil(max(cx + half, x1 + 0.25 * fw))))
    bottom = min(hw[0], int(np.ceil(y1 + units[1] * fh)))
    if right <= left or bottom <= top:
        return 0, 0, np.zeros((0, 0), np.float32)
    m = np.zeros((bottom - top, right - left), np.uint8)
    centre = (round(cx - left), round((y0 + y1) / 2 - top))
    cv2.ellipse(m, centre, (round(0.75 * fw), round(1.1 * fh)), 0, 0, 360, 1, -1)
    shoulders = y1 + 1.3 * fh
    pts = np.array(
        [
            [cx - 0.6 * fw, y1],
            [cx + 0.6 * fw, y1],
            [cx + half, shoulders],
            [cx + half, y1 + units[1] * fh],
            [cx - half, y1 + units[1] * fh],
            [cx - half, shoulders],
        ]
    ) - [left, top]
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return left, top, m.astype(np.float32)


_SEGMENTER: list[Any] = []
_SEGMENTER_LOCK = threading.Lock()


def _shared_segmenter() -> Any:
    """One :class:`PersonSegmenter` per process (its OpenVINO models compiled once)."""
    with _SEGMENTER_LOCK:
        if not _SEGMENTER:
            from veil.detect.person import PersonSegmenter

            _SEGMENTER.append(PersonSegmenter())
        return _SEGMENTER[0]


def make_target(name: str) -> Target:
    """The target called ``name`` (one of :data:`TARGETS`); ``ConfigError`` otherwise."""
    targets: dict[str, Callable[[], Target]] = {
        "face": FaceTarget,
        "head": HeadTarget,
        "person": PersonTarget,
    }
    if name not in targets:
        raise ConfigError(f"unknown target {name!r}; choose one of: {TARGETS}")
    return targets[name]()
