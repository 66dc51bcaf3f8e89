"""Speed mode's window search: windows around expected boxes, faces mapped back to the
frame, and the tracker's partial update."""

from __future__ import annotations

import numpy as np

from veil.io.yuv import YUV420
from veil.track import SpeedMode, Tracker
from veil.track.search import search_windows, window_boxes
from veil.types import Faces

GREEN = np.array([0, 255, 0], np.uint8)


def green_faces(image: np.ndarray) -> Faces:
    """A 'detector' for pure green squares: one box per connected green blob."""
    import cv2

    mask = (image[..., 1] > 180) & (image[..., 0] < 80) & (image[..., 2] < 80)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:n]]
    return Faces(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4), scores=np.full(n - 1, 0.9, np.float32)
    )


def scene(boxes: list[tuple[int, int, int, int]], hw: tuple[int, int] = (360, 640)) -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 120, (*hw, 3), np.uint8)
    img[..., 1] //= 2
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = GREEN
    return img


def test_windows_are_square_even_and_inside_the_frame() -> None:
    wins = window_boxes(
        np.array([[100, 100, 140, 140], [0, 0, 20, 30], [620, 340, 640, 360]]), (360, 640)
    )
    for x0, y0, x1, y1 in wins:
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360
        assert x1 - x0 == y1 - y0 and all(v % 2 == 0 for v in (x0, y0, x1, y1))
    assert wins[0] == (70, 70, 170, 170)  # 2.5 x 40 px, centred
    assert wins[1][:2] == (0, 0)  # moved inside at the corner


def test_search_finds_faces_near_the_expected_boxes_only() -> None:
    true = [(100, 80, 140, 120), (400, 200, 420, 220)]
    image = scene([*true, (550, 20, 590, 60)])  # a third face nobody expects
    calls: list[tuple[int, ...]] = []

    def detect(window: np.ndarray) -> Faces:
        calls.append(window.shape)
        return green_faces(window)

    expected = np.array([[104, 84, 144, 124], [398, 198, 418, 218]], np.float32)  # a bit off
    for img in (image, YUV420.from_rgb(image)):
        calls.clear()
        found = search_windows(detect, img, expected)
        assert len(calls) == 2 and all(max(s[:2]) == 128 for s in calls)  # one size
        assert len(found) == 2
        order = np.argsort(found.xyxy[:, 0])
        assert np.allclose(found.xyxy[order], np.array(true, np.float32), atol=3)


def test_a_face_cut_by_an_inner_window_edge_is_dropped() -> None:
    image = scene([(150, 100, 200, 150)])  # 50 px face, the window for a 20-px box is 50 px
    found = search_windows(green_faces, image, np.array([[120, 100, 140, 120]], np.float32))
    assert len(found) == 0


def test_tracker_confirms_new_missed_and_stale_tracks() -> None:
    t = Tracker(uncertain_after=3, miss_grace=10)  # kept after the miss, for this test
    box = np.array([100, 100, 140, 140], np.float32)
    t.update(Faces(xyxy=box[None], scores=np.ones(1, np.float32)))
    assert t.to_confirm() == [1]  # new: one detection
    t.update(Faces(xyxy=box[None] + 2, scores=np.ones(1, np.float32)))
    assert t.to_confirm() == []
    t.update(Faces.empty())  # a full pass missed it
    assert t.to_confirm() == [1]  # once, right after the miss
    t.update(Faces.empty(), searched=[1])  # the search did not find it either
    assert t.to_confirm() == []
    t.predict_only()
    t.predict_only()
    assert t.to_confirm() == [1]  # predicted for more than uncertain_after frames


def test_searches_back_off_for_a_track_they_keep_missing() -> None:
    t = Tracker(uncertain_after=2, search_backoff=3, max_age=30)
    box = np.array([100, 100, 140, 140], np.float32)
    for k in range(2):
        t.update(Faces(xyxy=box[None] + k, scores=np.ones(1, np.float32)))
    looked = []
    for _ in range(12):
        ids = t.to_confirm()
        looked.append(bool(ids))
        t.update(Faces.empty(), searched=ids) if ids else t.predict_only()
    # at lost 3 (> uncertain_after), then on every third frame: lost 6, 9
    assert [i for i, x in enumerate(looked) if x] == [3, 6, 9]
    assert t.tracks == 1  # still masked at its predicted box meanwhile


def test_a_new_track_is_looked_for_twice_then_left_to_full_detection() -> None:
    t = Tracker(max_age=30)
    t.update(Faces(xyxy=np.array([[10, 10, 30, 30]], np.float32), scores=np.ones(1, np.float32)))
    looked = []
    for _ in range(4):
        ids = t.to_confirm()
        looked.append(ids)
        t.update(Faces.empty(), searched=ids) if ids else t.predict_only()
    assert looked == [[1], [1], [], []]


def test_partial_update_does_not_mark_unsearched_tracks_missed() -> None:
    t = Tracker()
    two = np.array([[100, 100, 140, 140], [300, 100, 340, 140]], np.float32)
    for _ in range(2):
        t.update(Faces(xyxy=two, scores=np.ones(2, np.float32)))
    up = t.upcoming()
    assert up.shape == (2, 4) and np.allclose(up, two, atol=3)  # grown by 5%
    assert np.allclose(t.upcoming([2]), two[1:], atol=3)
    out = t.update(Faces(xyxy=two[:1], scores=np.ones(1, np.float32)), searched=[1])
    assert sorted(out.track_id.tolist()) == [1, 2]  # type: ignore[union-attr]
    assert t.to_confirm() == []  # track 2 was not looked for: not "missed"
    t.update(Faces(xyxy=two[:1], scores=np.ones(1, np.float32)))  # a full pass
    assert t.to_confirm() == [2]


def test_speed_mode_plans_search_or_detect() -> None:
    t = Tracker()
    frame = np.zeros((36, 64), np.uint8)
    search, full = SpeedMode(t, every_n=4), SpeedMode(Tracker(), every_n=4, search=False)
    assert search.plan(0, frame) == "detect"
    t.update(Faces(xyxy=np.array([[10, 10, 20, 20]], np.float32), scores=np.ones(1, np.float32)))
    assert search.plan(1, frame) == "search"  # a new track to confirm
    full.tracker.update(
        Faces(xyxy=np.array([[10, 10, 20, 20]], np.float32), scores=np.ones(1, np.float32))
    )
    assert full.plan(1, frame) == "detect" and full.decide(2, frame)
    assert search.plan(2, np.full((36, 64), 255, np.uint8)) == "detect"  # a scene cut
