"""What is anonymized around each detected face: the face, the whole head, or the person.

A target turns the faces to anonymize into mask :class:`~veil.mask.Region` s, between the
detect (or track) and anonymize stages, so every anonymization method applies to it:

* ``face`` (default): the :class:`~veil.mask.Masker`'s shape around each face box.
* ``head``: the face box grown to the whole head (hair above it, ears at its sides) from
  the box alone, no model; the masker's shape, margin and feather apply to it.
* ``person``: per-person masks from :class:`~veil.detect.person.PersonSegmenter` (people
  found by the pose detector, and below each face), plus, **fail safe**, the face region of
  every face that the person masks do not cover: never less than ``face`` mode hides.

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

import numpy as np

from veil.errors import ConfigError
from veil.mask import Masker, Region, union_mask
from veil.types import Faces

__all__ = [
    "TARGETS",
    "FaceTarget",
    "HeadTarget",
    "PersonTarget",
    "Target",
    "head_boxes",
    "make_target",
]

TARGETS: tuple[str, ...] = ("face", "head", "person")

#: Head box in face-box units (CenterFace boxes run from the brows to the chin): the
#: skull and hair reach ~0.6 face heights above the box, the ears ~0.2 widths beside it.
HEAD_GROW = (0.2, 0.6, 0.2, 0.15)  # left, top, right, bottom
PERSON_KEY = 1_000_000  # region keys of persons: PERSON_KEY + row (faces keep theirs)

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
    """Person masks, plus the face region of every face they leave uncovered.

    ``covered``: share of a face region's pixels that person masks must cover for the face
    region to be left out.
    """

    name = "person"

    def __init__(
        self, segmenter: Any = None, *, covered: float = 0.99, remember: bool = False
    ) -> None:
        self._segmenter = segmenter
        self._lock = threading.Lock()
        self.covered = covered
        self.remember = remember
        self._previous: list[tuple[float, float, float]] = []

    def for_stream(self) -> PersonTarget:
        """A target for one stream of frames, in order: each frame also tries the regions
        where people were on the frame before (MediaPipe's own tracking), so a person the
        detector misses for a frame stays hidden. Not thread-safe: one stream, one caller."""
        return PersonTarget(self._segmenter, covered=self.covered, remember=True)

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
        body = union_mask(persons, shape)
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
