"""The face tracker: association, forward fill, smoothing, speed mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import veil.track
from veil.boxes import box_iou
from veil.errors import ConfigError
from veil.track import SpeedMode, Tracker, scene_cut, should_detect
from veil.types import Faces


def square(cx: float, cy: float, size: float = 60.0) -> np.ndarray:
    """One ``xyxy (4,)`` box of side ``size`` centred on ``(cx, cy)``."""
    return np.array([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], np.float32)


def moving_face(n: int, *, start=(100.0, 100.0), velocity=(4.0, 2.0), size=60.0) -> np.ndarray:
    """True boxes ``(n, 4)`` of a face moving at constant velocity (pixels per frame)."""
    return np.array(
        [square(start[0] + velocity[0] * f, start[1] + velocity[1] * f, size) for f in range(n)]
    )


def faces_of(*boxes: np.ndarray) -> Faces:
    return Faces(xyxy=np.array(boxes, np.float32).reshape(-1, 4))


def centres(xyxy: np.ndarray) -> np.ndarray:
    return (xyxy[:, :2] + xyxy[:, 2:]) / 2


def test_public_names() -> None:
    assert set(veil.track.__all__) == {
        "LookaheadBuffer",
        "SpeedMode",
        "Tracker",
        "scene_cut",
        "should_detect",
    }


def test_blinking_detector_does_not_leave_the_face_bare() -> None:
    truth = moving_face(30)
    tracker = Tracker()
    ids = set()
    for f, box in enumerate(truth):
        out = tracker.update(faces_of() if f in (10, 11, 12) else faces_of(box))
        assert len(out) == 1, f"frame {f}: expected one face, got {len(out)}"
        assert box_iou(out.xyxy, box[None])[0, 0] > 0.5, f"frame {f}"
        assert out.data["source"] == ["predicted" if f in (10, 11, 12) else "detected"]
        ids.add(int(out.track_id[0]))
    assert ids == {1}


def test_track_ids_stay_with_two_crossing_faces() -> None:
    left = moving_face(40, start=(60.0, 100.0), velocity=(5.0, 0.0))
    right = moving_face(40, start=(260.0, 130.0), velocity=(-5.0, 0.0))
    tracker = Tracker()
    seen = [
        tracker.update(faces_of(a, b)).track_id[:2].tolist()
        for a, b in zip(left, right, strict=True)
    ]
    assert all(ids == [1, 2] for ids in seen), seen


def test_a_face_lost_longer_than_max_age_disappears() -> None:
    tracker = Tracker(max_age=5)
    for box in moving_face(10):
        tracker.update(faces_of(box))
    counts = [len(tracker.update(Faces.empty())) for _ in range(8)]
    assert counts == [1, 1, 1, 1, 1, 0, 0, 0]
    assert tracker.tracks == 0


def test_every_detection_is_in_the_output_in_input_order() -> None:
    rng = np.random.default_rng(1)
    tracker = Tracker()
    for _ in range(20):
        n = int(rng.integers(0, 4))
        det = faces_of(*[square(*rng.uniform(50, 400, 2), rng.uniform(20, 80)) for _ in range(n)])
        out = tracker.update(det)
        assert np.all(np.diag(box_iou(out.xyxy[:n], det.xyxy)) > 0.9)
        assert out.data["source"][:n] == ["detected"] * n


def test_smoothing_reduces_jitter() -> None:
    rng = np.random.default_rng(0)
    truth = moving_face(80)
    raw = truth + np.repeat(rng.normal(0, 1.5, (80, 2)), 2, axis=0).reshape(80, 4)
    tracker = Tracker(smoothing=0.5)
    smooth = np.array([tracker.update(faces_of(b)).xyxy[0] for b in raw])
    raw_jitter = np.diff(centres(raw), axis=0)[10:].std()
    smooth_jitter = np.diff(centres(smooth), axis=0)[10:].std()
    assert smooth_jitter < 0.7 * raw_jitter


def test_no_smoothing_passes_detections_through() -> None:
    tracker = Tracker(smoothing=0.0, max_shift=0.0)
    for box in moving_face(10) + 3.0 * np.sin(np.arange(10))[:, None]:
        np.testing.assert_allclose(tracker.update(faces_of(box)).xyxy[0], box, atol=1e-3)


def test_predicted_boxes_grow_then_cap_and_scores_decay() -> None:
    tracker = Tracker(max_age=30, grow_when_lost=0.1)
    for box in moving_face(5, velocity=(0.0, 0.0)):
        tracker.update(faces_of(box))
    lost = [tracker.update(Faces.empty()) for _ in range(15)]
    sizes = np.array([out.sizes[0] for out in lost])
    assert np.all(np.diff(sizes[:10]) > 0)
    assert sizes[-1] == pytest.approx(2 * 60, rel=0.02)
    scores = [float(out.scores[0]) for out in lost]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1


def test_landmarks_are_carried_only_when_every_face_has_them() -> None:
    tracker = Tracker()
    landmarks = np.tile(np.arange(10, dtype=np.float32).reshape(1, 5, 2), (2, 1, 1))
    out = tracker.update(Faces(xyxy=[square(100, 100), square(300, 100)], landmarks=landmarks))
    np.testing.assert_array_equal(out.landmarks, landmarks)
    out = tracker.update(Faces(xyxy=[square(100, 100)], landmarks=landmarks[:1]))
    assert out.landmarks is None and out.data["source"] == ["detected", "predicted"]


def test_needs_detection() -> None:
    tracker = Tracker()
    assert not tracker.needs_detection()
    for box in moving_face(10):
        tracker.update(faces_of(box))
    assert not tracker.needs_detection()
    for _ in range(5):
        tracker.predict_only()
    assert not tracker.needs_detection(), "a few skipped frames are fine"
    tracker.predict_only()
    assert tracker.needs_detection(), "long prediction is uncertain"
    tracker.update(faces_of(square(150, 125)))
    tracker.update(Faces.empty())
    assert tracker.needs_detection(), "the detector missed a live track"
    tracker.reset()
    assert not tracker.needs_detection() and tracker.tracks == 0


def test_new_track_needs_a_second_detection() -> None:
    tracker = Tracker()
    tracker.update(faces_of(square(100, 100)))
    assert tracker.needs_detection(), "velocity unknown"
    tracker.update(faces_of(square(102, 100)))
    assert not tracker.needs_detection()


def test_unconfirmed_track_needs_detection_and_is_dropped_when_missed() -> None:
    tracker = Tracker(min_hits=3)
    for box in moving_face(2):
        tracker.update(faces_of(box))
    assert tracker.needs_detection()
    assert len(tracker.update(Faces.empty())) == 0


def test_predict_only_outputs_every_track_as_predicted() -> None:
    tracker = Tracker()
    tracker.update(faces_of(square(100, 100), square(300, 100)))
    out = tracker.predict_only()
    assert out.track_id.tolist() == [1, 2] and out.data["source"] == ["predicted"] * 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_age": -1},
        {"min_hits": 0},
        {"iou_threshold": 0.0},
        {"smoothing": 1.0},
        {"grow_when_lost": -0.1},
        {"max_distance": -1.0},
        {"uncertain_after": -1},
    ],
)
def test_invalid_options_raise(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        Tracker(**kwargs)


@pytest.mark.parametrize(
    ("index", "every_n", "cut", "missed", "expected"),
    [
        (0, 5, False, False, True),
        (3, 5, False, False, False),
        (10, 5, False, False, True),
        (3, 5, True, False, True),
        (3, 5, False, True, True),
        (3, 1, False, False, True),
    ],
)
def test_should_detect(index: int, every_n: int, cut: bool, missed: bool, expected: bool) -> None:
    tracker = Tracker()
    for box in moving_face(3):
        tracker.update(faces_of(box))
    if missed:
        tracker.update(Faces.empty())
    assert should_detect(index, every_n=every_n, scene_cut=cut, tracker=tracker) is expected


def random_scene(rng: np.random.Generator) -> np.ndarray:
    """A 180x320 RGB image of random smooth blocks (what unrelated shots look like)."""
    blocks = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((20, 20, 1), np.uint8))


def test_scene_cut() -> None:
    rng = np.random.default_rng(0)
    a, b = random_scene(rng), random_scene(rng)
    noisy = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
    assert scene_cut(a, b)
    assert not scene_cut(a, noisy)


def test_speed_mode_detects_every_n_and_on_cuts() -> None:
    rng = np.random.default_rng(0)
    a, b = random_scene(rng), random_scene(rng)
    mode = SpeedMode(Tracker(), every_n=4)
    decisions = [mode.decide(i, img) for i, img in enumerate([a, a, a, a, a, a, b, b])]
    assert decisions == [True, False, False, False, True, False, True, False]


boxes_strategy = st.lists(
    st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(0, 120), st.floats(0, 120)).map(
        lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(boxes_strategy, min_size=1, max_size=12), st.floats(0.0, 0.9))
def test_property_never_drops_a_detection(frames: list, smoothing: float) -> None:
    tracker = Tracker(smoothing=smoothing)
    for boxes in frames:
        det = faces_of(*boxes)
        out = tracker.update(det)
        n = len(det)
        assert len(out) >= n and out.track_id is not None
        close = np.all(np.abs(out.xyxy[:n] - det.xyxy) <= 0.05 * det.sizes[:, None] + 1e-3, 1)
        iou = np.diag(box_iou(out.xyxy[:n], det.xyxy)) if n else np.zeros(0)
        assert np.all(close | (iou > 0.9))
        assert len(set(out.track_id.tolist())) == len(out), "one row per track"
