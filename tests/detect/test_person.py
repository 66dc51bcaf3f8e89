"""PersonSegmenter: decoding and mask mapping with fake networks; the real MediaPipe models
(when the mediapipe wheel is installed, as scripts/test.sh does) on the astronaut photo."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import skimage.data

from veil.detect import person as P
from veil.errors import InputError
from veil.types import Faces

LM = P.LANDMARK_SIZE


def _landmark_model(
    presence: float = 0.9, seg_value: float = 10.0
) -> tuple[P.Model, list[np.ndarray]]:
    """A fake landmark network: hips (33) and scale point (34) at the crop's centre and
    top quarter (so the region stays put), segmentation ``seg_value`` over the crop's
    middle half (columns and rows 64..192), very negative elsewhere."""
    seen: list[np.ndarray] = []

    def model(x: np.ndarray) -> list[np.ndarray]:
        seen.append(x)
        landmarks = np.zeros((39, 5), np.float32)
        landmarks[33, :2] = LM / 2
        landmarks[34, :2] = (LM / 2, LM / 2 - LM / 2.5)  # radius = side / 2.5 -> same side
        seg = np.full((1, LM, LM, 1), -20.0, np.float32)
        seg[0, 64:192, 64:192] = seg_value
        return [
            landmarks.reshape(1, 195),
            np.array([[presence]], np.float32),
            seg,
            np.zeros((1, 64, 64, 39), np.float32),
            np.zeros((1, 117), np.float32),
        ]

    return model, seen


def _no_detector(x: np.ndarray) -> list[np.ndarray]:
    return [np.zeros((1, 2254, 12), np.float32), np.full((1, 2254, 1), -10.0, np.float32)]


def test_detector_anchors_match_the_model_output_count() -> None:
    anchors = P.detector_anchors()
    assert anchors.shape == (2254, 2)
    assert anchors.min() > 0 and anchors.max() < 1


def test_a_face_seed_gives_a_person_mask_where_the_network_sees_one() -> None:
    landmark, seen = _landmark_model()
    seg = P.PersonSegmenter(models=(_no_detector, landmark), grow=0.0)
    image = np.zeros((400, 400, 3), np.uint8)
    face = np.array([[180, 60, 220, 100]], np.float32)
    people = seg.segment(image, Faces(xyxy=face, scores=np.ones(1, np.float32)))
    assert len(people) == 1 and people.masks is not None
    cx, cy, side = P.face_roi(face[0])
    # the middle half of the (unchanged) region of interest, clipped to the image
    x0, x1 = cx - side / 4, cx + side / 4
    y0, y1 = cy - side / 4, min(cy + side / 4, 400)
    ys, xs = np.nonzero(people.masks[0])
    assert abs(xs.min() - x0) <= 2 and abs(xs.max() + 1 - x1) <= 2
    assert abs(ys.min() - y0) <= 2 and abs(ys.max() + 1 - y1) <= 2
    assert len(seen) == 3  # the seed, re-centred twice
    assert np.allclose(people.xyxy[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_grow_dilates_the_mask_and_low_presence_finds_nobody() -> None:
    landmark, _ = _landmark_model()
    face = Faces(xyxy=np.array([[180, 60, 220, 100]], np.float32), scores=np.ones(1, np.float32))
    image = np.zeros((400, 400, 3), np.uint8)
    tight = P.PersonSegmenter(models=(_no_detector, landmark), grow=0.0).segment(image, face)
    grown = P.PersonSegmenter(models=(_no_detector, landmark), grow=0.05).segment(image, face)
    assert tight.masks is not None and grown.masks is not None
    assert grown.masks[0].sum() > tight.masks[0].sum()
    assert not (tight.masks[0] & ~grown.masks[0]).any()
    absent, _ = _landmark_model(presence=0.1)
    assert len(P.PersonSegmenter(models=(_no_detector, absent)).segment(image, face)) == 0


def test_without_seeds_or_detections_there_is_nobody() -> None:
    landmark, seen = _landmark_model()
    seg = P.PersonSegmenter(models=(_no_detector, landmark))
    assert len(seg.segment(np.zeros((300, 500, 3), np.uint8))) == 0
    assert seen == []


def test_a_region_from_the_previous_frame_finds_the_person_again() -> None:
    landmark, _ = _landmark_model()
    seg = P.PersonSegmenter(models=(_no_detector, landmark))
    image = np.zeros((300, 300, 3), np.uint8)
    people = seg.segment(image, rois=[(150.0, 150.0, 200.0)])
    assert len(people) == 1
    assert people.data["roi"] == [(150.0, 150.0, 200.0)]  # the fake network keeps it


def test_public_names() -> None:
    assert {"PersonSegmenter", "find_pose_detector_model", "scan_windows"} <= set(P.__all__)


@pytest.mark.parametrize("hw", [(480, 640), (640, 480), (300, 300), (333, 640)])
def test_scan_windows_cover_the_image_and_hang_over_its_edges(hw: tuple[int, int]) -> None:
    h, w = hw
    for side, inset in P.SCAN:
        windows = P.scan_windows(h, w, side, inset)
        seen = np.zeros(hw, bool)
        for cx, cy, s in windows:
            assert s == pytest.approx(side * max(h, w))
            seen[
                max(0, int(cy - s / 2)) : int(np.ceil(cy + s / 2)),
                max(0, int(cx - s / 2)) : int(np.ceil(cx + s / 2)),
            ] = True
        assert seen.all(), (side, inset)
        xs = sorted({cx for cx, _, _ in windows})
        s = side * max(h, w)
        if inset < 0.5:  # a quarter of the window off the frame on both sides
            assert xs[0] == pytest.approx(s / 4) and xs[-1] == pytest.approx(w - s / 4)
        elif w > s:
            assert xs[0] == pytest.approx(s / 2) and xs[-1] == pytest.approx(w - s / 2)
        assert all(b - a <= 2 / 3 * s + 1e-6 for a, b in itertools.pairwise(xs))


@pytest.mark.parametrize(
    ("presence", "seg_value", "taken"),
    [
        (0.1, 10.0, True),  # no pose, but the segmentation is sure (p ~ 1)
        (0.1, 0.0, False),  # no pose, p = 0.5 < 0.8: background guesses stay out
        (0.9, 0.0, True),  # a pose there: p = 0.5 >= the masks' 0.3
        (0.9, -3.0, False),  # p = 0.05 anywhere: nobody
    ],
)
def test_scan_mask_takes_sure_pixels_and_those_of_present_people(
    presence: float, seg_value: float, taken: bool
) -> None:
    landmark, seen = _landmark_model(presence=presence, seg_value=seg_value)
    seg = P.PersonSegmenter(models=(_no_detector, landmark))
    h, w = 300, 400
    mask = seg.scan_mask(np.zeros((h, w, 3), np.uint8))
    n = sum(len(P.scan_windows(h, w, *s)) for s in P.SCAN)
    assert mask.shape == (h, w) and len(seen) == n
    # the fake segmentation is the middle half of each window, never its outer quarters
    windows = [r for s in P.SCAN for r in P.scan_windows(h, w, *s)]
    middle = np.zeros((h, w), bool)
    for cx, cy, s in windows:
        y0, y1 = max(0, round(cy - s / 4) - 1), round(cy + s / 4) + 1
        x0, x1 = max(0, round(cx - s / 4) - 1), round(cx + s / 4) + 1
        middle[y0:y1, x0:x1] = True
    assert not (mask & ~middle).any()
    assert mask.any() == taken
    none, calls = _landmark_model()
    assert (
        not P.PersonSegmenter(models=(_no_detector, none), scan=())
        .scan_mask(np.zeros((h, w, 3), np.uint8))
        .any()
    )
    assert calls == []


def _real_segmenter() -> P.PersonSegmenter:
    try:
        return P.PersonSegmenter()
    except InputError as exc:
        pytest.skip(f"mediapipe wheel not installed: {exc}")


def test_real_models_segment_the_astronaut_and_not_the_rocket() -> None:
    seg = _real_segmenter()
    image = skimage.data.astronaut()
    people = seg.segment(image)
    assert len(people) == 1 and people.masks is not None
    mask = people.masks[0]
    for x, y in [(220, 100), (200, 300), (120, 450), (230, 40)]:  # face, chest, arm, hair
        assert mask[y, x], (x, y)
    for x, y in [(420, 150), (480, 300), (30, 20)]:  # rocket, dark background, flag corner
        assert not mask[y, x], (x, y)


def test_real_models_scan_finds_the_astronaut_without_a_detection() -> None:
    seg = _real_segmenter()
    image = skimage.data.astronaut()
    mask = seg.scan_mask(image)
    for x, y in [(200, 300), (120, 450)]:  # chest, arm
        assert mask[y, x], (x, y)
    for x, y in [(420, 150), (480, 300)]:  # rocket, dark background
        assert not mask[y, x], (x, y)
