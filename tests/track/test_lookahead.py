"""Backward fill with the look-ahead buffer."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import ConfigError
from veil.track import LookaheadBuffer, Tracker
from veil.types import Faces, Frame

BOX = np.array([100.0, 100.0, 160.0, 160.0], np.float32)


def tracked(track_ids: list[int], boxes: list[np.ndarray] | None = None) -> Faces:
    boxes = boxes if boxes is not None else [BOX] * len(track_ids)
    return Faces(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        track_id=track_ids,
        data={"source": ["detected"] * len(track_ids)},
    )


def run(buffer: LookaheadBuffer, stream: list) -> list:
    out = []
    for item, faces in stream:
        out += buffer.push(item, faces)
    return out + buffer.flush()


def test_a_face_first_seen_at_frame_10_is_backfilled_into_frames_2_to_9() -> None:
    stream = [(f, tracked([7] if f >= 10 else [])) for f in range(16)]
    out = run(LookaheadBuffer(delay=8), stream)
    assert [item for item, _ in out] == list(range(16))
    with_face = [item for item, faces in out if 7 in faces.track_id]
    assert with_face == list(range(2, 16))
    for item, faces in out[2:10]:
        assert faces.data["source"] == ["backfilled"], item
        x0, y0, x1, y1 = faces.xyxy[0]
        assert x0 <= BOX[0] and y0 <= BOX[1] and x1 >= BOX[2] and y1 >= BOX[3]
    assert out[2][1].sizes[0] > out[9][1].sizes[0], "older frames get larger boxes"


def test_order_count_and_flush() -> None:
    buffer: LookaheadBuffer[str] = LookaheadBuffer(delay=3)
    released = [buffer.push(f"frame{i}", tracked([])) for i in range(5)]
    assert [len(r) for r in released] == [0, 0, 0, 1, 1]
    assert len(buffer) == 3
    rest = buffer.flush()
    assert [item for item, _ in rest] == ["frame2", "frame3", "frame4"]
    assert len(buffer) == 0 and buffer.flush() == []


def test_delay_zero_passes_frames_through() -> None:
    buffer: LookaheadBuffer[int] = LookaheadBuffer(delay=0)
    assert [item for item, _ in buffer.push(0, tracked([1]))] == [0]


def test_frames_that_already_have_the_track_are_left_alone() -> None:
    stream = [(0, tracked([1])), (1, tracked([])), (2, tracked([])), (3, tracked([1, 2]))]
    out = run(LookaheadBuffer(delay=8), stream)
    assert [faces.track_id.tolist() for _, faces in out] == [[1, 2], [1, 2], [1, 2], [1, 2]]
    assert out[0][1].data["source"] == ["detected", "backfilled"], "no second row for id 1"
    assert out[1][1].data["source"] == ["backfilled", "backfilled"]


def test_backfilled_boxes_are_clipped_to_the_frame() -> None:
    image = np.zeros((120, 120, 3), np.uint8)
    stream = [(Frame(image, index=i), tracked([1] if i == 3 else [])) for i in range(4)]
    out = run(LookaheadBuffer(delay=8, grow=0.5, max_growth=3.0), stream)
    for _, faces in out[:3]:
        assert faces.xyxy.min() >= 0 and faces.xyxy.max() <= 120


def test_untracked_faces_pass_through_with_their_fields() -> None:
    landmarks = np.zeros((1, 5, 2), np.float32)
    faces = Faces(xyxy=[BOX], landmarks=landmarks)
    out = run(LookaheadBuffer(delay=2), [(0, Faces.empty()), (1, faces)])
    assert len(out[0][1]) == 0
    assert out[1][1].data["source"] == ["detected"] and out[1][1].track_id.tolist() == [-1]
    np.testing.assert_array_equal(out[1][1].landmarks, landmarks)


def test_with_a_tracker_a_late_detection_masks_the_frames_before() -> None:
    tracker, buffer = Tracker(), LookaheadBuffer(delay=4)
    stream = [(f, tracker.update(Faces.empty() if f < 6 else Faces(xyxy=[BOX]))) for f in range(10)]
    out = run(buffer, stream)
    assert [len(faces) for _, faces in out] == [0, 0, 1, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("kwargs", [{"delay": -1}, {"grow": -0.1}, {"max_growth": 0.5}])
def test_invalid_options_raise(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        LookaheadBuffer(**kwargs)
