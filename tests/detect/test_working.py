"""Bounded working resolution: large images are detected as an overview plus tiles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from factories import ASTRONAUT_FACE, best_iou
from veil.config import RunConfig
from veil.detect.working import OVERVIEW, TILE, WORK_PIXELS, detect_bounded, tile_starts
from veil.pipeline import Pipeline


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [
        (1000, 1536, 96),
        (1536, 1536, 96),
        (1537, 1536, 96),
        (3072, 1536, 96),
        (7000, 1536, 192),
        (10_000, 1024, 512),
    ],
)
def test_tiles_cover_the_image_with_the_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] + min(tile, length) == length  # the last one flush with the end
    gaps = np.diff(starts)
    assert all(tile - g >= overlap for g in gaps)  # neighbours overlap enough
    assert len(starts) == 1 or len(starts) == int(np.ceil((length - overlap) / (tile - overlap)))


def scene(side: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A ``side`` square scene: a large face (6x the astronaut photo, face 576 px) that
    every tile cuts (only the overview holds it whole), and small faces (24 px) spread
    over it, one straddling the first tile's edge."""
    rng = np.random.default_rng(0)
    image = cv2.resize(skimage.data.coffee(), (side, side), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
    photo = skimage.data.astronaut()
    boxes = []
    big = cv2.resize(photo, (3072, 3072))[0:1300, 800:2100]  # the face and its hair
    image[100:1400, 756:2056] = big  # the face spans x 1012-1588: cut by both tiles
    boxes.append(ASTRONAUT_FACE * 6 + np.array([-44, 100, -44, 100]))
    small = cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA)
    for x, y in [(1480, 1600), (2100, 500), (600, 2200), (2300, 2300)]:
        image[y : y + 128, x : x + 128] = small
        boxes.append(ASTRONAUT_FACE / 4 + np.array([x, y, x, y]))
    return image, boxes


def test_large_images_keep_every_face_and_match_full_resolution_detection() -> None:
    image, boxes = scene(2600)
    assert image.shape[0] * image.shape[1] > WORK_PIXELS and image.shape[0] > TILE > OVERVIEW
    pipeline = Pipeline.from_config(RunConfig())
    seen: list[tuple[int, ...]] = []

    def detect(im: np.ndarray):  # type: ignore[no-untyped-def]
        seen.append(im.shape)
        return pipeline.detector.detect(im)

    bounded = detect_bounded(detect, image, overview_detect=pipeline.detector.detect_window)
    native = pipeline.detector.detect(image)
    for box in boxes:
        assert best_iou(native, box) > 0.4
        assert best_iou(bounded, box) > 0.4, box
    assert {s[:2] for s in seen} == {(TILE, TILE)}  # the detector never saw the whole image
    assert len(bounded) <= len(native) + 2  # no pile of duplicates from overlapping tiles


def test_pipeline_anonymizes_every_face_of_a_large_image() -> None:
    image, boxes = scene(2600)
    result = Pipeline.from_config(RunConfig()).process(image)
    for x0, y0, x1, y1 in (b.astype(int) for b in boxes):
        change = np.abs(result.image[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1]).mean()
        assert change > 8, (x0, y0)


def test_faces_larger_than_a_tile_come_from_the_overview() -> None:
    """With 512 px tiles no tile holds the 576 px face whole: the overview finds it (and
    without an overview it would be lost)."""
    from veil.types import Faces

    image, boxes = scene(2600)
    detector = Pipeline.from_config(RunConfig()).detector
    found = detect_bounded(detector.detect, image, overview_detect=detector.detect_window, tile=512)
    assert all(best_iou(found, box) > 0.5 for box in boxes)
    blind = detect_bounded(
        detector.detect, image, overview_detect=lambda im: Faces.empty(), tile=512
    )
    assert best_iou(blind, boxes[0]) < 0.3  # the check above is not trivially met


def test_flat_tiles_are_skipped_but_a_small_face_on_a_flat_background_is_not() -> None:
    """A uniform image (as in a "decompression bomb") costs the overview only; a
    24 px face pasted on it still gets its tile."""
    image = np.full((5000, 5000, 3), 127, np.uint8)
    detector = Pipeline.from_config(RunConfig()).detector
    seen: list[tuple[int, int]] = []

    def detect(im: np.ndarray):  # type: ignore[no-untyped-def]
        seen.append(im.shape[:2])
        return detector.detect(im)

    assert len(detect_bounded(detect, image, overview_detect=detector.detect_window)) == 0
    assert seen == []
    small = cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    image[3000:3128, 2000:2128] = small
    found = detect_bounded(detect, image, overview_detect=detector.detect_window)
    assert 1 <= len(seen) <= 4  # the tiles holding the face, no others
    assert best_iou(found, ASTRONAUT_FACE / 4 + np.array([2000, 3000, 2000, 3000])) > 0.4
