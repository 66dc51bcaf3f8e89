"""BoxFollower: a drawn box follows a real face by detection, by template matching when
the detector sees nothing, and grows in place when the face is gone."""

from __future__ import annotations

import numpy as np
import pytest

from factories import face_on_canvas
from veil.boxes import box_iou
from veil.config import RunConfig
from veil.io.yuv import YUV420
from veil.pipeline import Pipeline
from veil.track.follow import GROWTH, MAX_GROWTH, BoxFollower
from veil.types import Faces


def frames(n: int, step: int = 5) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` frames of the astronaut moving right and down by ``step`` px per frame."""
    out = [
        face_on_canvas(scale=0.6, offset=(20 + step * i, i * 2), canvas=(240, 320))
        for i in range(n)
    ]
    return [o[0] for o in out], [o[1] for o in out]


def blind(image: np.ndarray) -> Faces:
    return Faces.empty()


@pytest.fixture(scope="module")
def detector() -> Pipeline:
    return Pipeline.from_config(RunConfig())


def _iou(a: tuple[float, ...], b: np.ndarray) -> float:
    return float(box_iou(np.array(a), b)[0, 0])


@pytest.mark.parametrize("mode", ["detector", "template only"])
def test_a_box_follows_the_face_it_was_drawn_on(detector: Pipeline, mode: str) -> None:
    images, boxes = frames(10)
    detect = detector.detect_window if mode == "detector" else blind
    follower = BoxFollower(detect, images[0], tuple(boxes[0]))
    for image, box in zip(images[1:], boxes[1:], strict=True):
        assert _iou(follower.step(image), box) > 0.8


def test_a_looser_drawn_box_keeps_its_margin_around_the_face(detector: Pipeline) -> None:
    images, boxes = frames(8)
    loose = boxes[0] + np.array([-10, -10, 10, 10], np.float32)
    follower = BoxFollower(detector.detect_window, images[0], tuple(loose))
    for image, box in zip(images[1:], boxes[1:], strict=True):
        got = np.array(follower.step(image))
        assert np.all(got[:2] <= box[:2] + 2) and np.all(got[2:] >= box[2:] - 2)  # still holds it
        assert _iou(tuple(got), box + np.array([-10, -10, 10, 10])) > 0.8


def test_yuv_frames_give_the_same_boxes_as_rgb() -> None:
    images, boxes = frames(6)
    rgb = BoxFollower(blind, images[0], tuple(boxes[0]))
    yuv = BoxFollower(blind, YUV420.from_rgb(images[0]), tuple(boxes[0]))
    for image in images[1:]:
        a, b = rgb.step(image), yuv.step(YUV420.from_rgb(image))
        assert _iou(a, np.array(b)) > 0.95


def test_a_lost_box_stays_and_grows_to_at_most_twice_its_size() -> None:
    images, boxes = frames(1)
    follower = BoxFollower(blind, images[0], tuple(boxes[0]))
    flat = np.full_like(images[0], 128)  # the face is gone: nothing matches
    size = boxes[0][2:] - boxes[0][:2]
    centre = (boxes[0][:2] + boxes[0][2:]) / 2
    got = np.array(follower.step(flat))
    assert np.allclose(got[2:] - got[:2], size * GROWTH, atol=0.02)
    for _ in range(40):
        got = np.array(follower.step(flat))
    assert np.allclose(got[2:] - got[:2], size * MAX_GROWTH, atol=0.02)
    assert np.allclose((got[:2] + got[2:]) / 2, centre, atol=0.02)


def test_following_is_deterministic(detector: Pipeline) -> None:
    images, boxes = frames(6)
    runs = []
    for _ in range(2):
        follower = BoxFollower(detector.detect_window, images[0], tuple(boxes[0]))
        runs.append([follower.step(image) for image in images[1:]])
    assert runs[0] == runs[1]


def test_a_face_coming_back_shrinks_the_grown_box_to_it_again(detector: Pipeline) -> None:
    images, boxes = frames(4, step=2)
    follower = BoxFollower(detector.detect_window, images[0], tuple(boxes[0]))
    follower.step(images[1])
    flat = np.full_like(images[0], 128)  # the face is hidden for 10 frames
    grown = [follower.step(flat) for _ in range(10)]
    assert _iou(grown[-1], boxes[1]) < 0.5  # the box grew while the face was gone
    back = follower.step(images[3])
    assert _iou(back, boxes[3]) > 0.8


def test_the_template_follows_a_face_that_grows(detector: Pipeline) -> None:
    """A face walking toward the camera (2% larger each frame): without the detector, the
    box must grow with it (one template size would keep the first size)."""
    shots = [
        face_on_canvas(scale=0.5 * 1.02**i, offset=(60, 10), canvas=(300, 400)) for i in range(25)
    ]
    follower = BoxFollower(blind, shots[0][0], tuple(shots[0][1]))
    for image, box in shots[1:]:
        got = follower.step(image)
        assert _iou(got, box) > 0.8
    assert (got[2] - got[0]) > 1.4 * (shots[0][1][2] - shots[0][1][0])
