"""Synthetic RGB-D scenes: deterministic, consistent ground truth, heads with relief."""

from __future__ import annotations

import numpy as np
import pytest

from veil.rgbd.synth import SynthFrame, default_intrinsics, make_scene


@pytest.fixture(scope="module")
def scene() -> list[SynthFrame]:
    return make_scene(7, people=3, frames=3)


def test_same_seed_same_scene(scene: list[SynthFrame]) -> None:
    again = make_scene(7, people=3, frames=3)
    for a, b in zip(scene, again, strict=True):
        np.testing.assert_array_equal(a.color, b.color)
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.head_masks, b.head_masks)
    other = make_scene(8, people=3, frames=1)[0]
    assert not np.array_equal(other.color, scene[0].color)


def test_shapes_and_types(scene: list[SynthFrame]) -> None:
    f = scene[0]
    assert f.color.shape == (480, 640, 3) and f.color.dtype == np.uint8
    assert f.depth.shape == (480, 640) and f.depth.dtype == np.float32
    assert f.face_masks.shape == f.head_masks.shape == (3, 480, 640)
    assert f.face_masks.dtype == f.head_masks.dtype == bool
    assert f.face_boxes.shape == (3, 4) and f.face_boxes.dtype == np.float32
    assert f.intrinsics == default_intrinsics((480, 640))
    small = make_scene(0, size=(120, 160), people=2)[0]
    assert small.color.shape == (120, 160, 3) and small.head_masks.shape == (2, 120, 160)


def test_ground_truth_is_consistent(scene: list[SynthFrame]) -> None:
    for f in scene:
        assert not np.any(f.face_masks & ~f.head_masks), "a face pixel outside its head"
        assert f.head_masks.sum(axis=0).max() <= 1, "heads overlap"
        assert f.face_visible[0] and not f.face_visible[-1]  # person 0 front, last away
        for i in np.flatnonzero(f.face_visible):
            ys, xs = np.nonzero(f.face_masks[i])
            np.testing.assert_array_equal(
                f.face_boxes[i], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            )
        assert np.all(f.face_boxes[~f.face_visible] == 0)


def test_people_move_between_frames(scene: list[SynthFrame]) -> None:
    assert not np.array_equal(scene[0].head_masks, scene[2].head_masks)


def test_heads_have_relief_and_sensor_defects() -> None:
    f = make_scene(3, people=2, noise=True)[0]
    clean = make_scene(3, people=2, noise=False)[0]
    head = clean.head_masks[0]
    z = clean.clean_depth[head]
    assert 0.04 < z.max() - z.min() < 0.2, "head depth follows the ellipsoid surface"
    np.testing.assert_array_equal(clean.depth, clean.clean_depth)
    holes = f.depth == 0
    assert 0.005 < holes.mean() < 0.2
    valid = ~holes & (f.clean_depth < 8)
    err = np.abs(f.depth[valid] - f.clean_depth[valid])
    assert 0 < np.median(err) < 0.05


def test_distractors_leave_people_and_ground_truth_alone() -> None:
    plain = make_scene(5, people=3)[0]
    busy = make_scene(5, people=3, distractors=4)[0]
    assert plain.objects.shape == (0, 480, 640) and plain.object_kinds == ()
    assert busy.objects.shape == (4, 480, 640) and busy.objects.sum(axis=(1, 2)).min() > 0
    assert not np.any(busy.objects.any(axis=0) & busy.head_masks.any(axis=0))
    unseen = ~busy.objects.any(axis=0)  # where no object stands, the scene is the same
    np.testing.assert_array_equal(busy.clean_depth[unseen], plain.clean_depth[unseen])
    assert np.all(busy.head_masks <= plain.head_masks), "objects can only hide heads"
