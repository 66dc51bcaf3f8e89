"""Depth-refined head masks and heads found from depth alone, on synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import ConfigError, InputError
from veil.mask import Masker
from veil.rgbd.depthmask import DepthMasker, ellipse_masks
from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.synth import SynthFrame, make_scene
from veil.types import Faces


class GroundTruthDetector:
    """Stands in for a detector: returns the visible faces' ground-truth boxes."""

    def detect(self, frame: SynthFrame) -> Faces:
        return Faces(frame.face_boxes[frame.face_visible])


@pytest.fixture(scope="module")
def frames() -> list[SynthFrame]:
    return [make_scene(seed, people=3)[0] for seed in (11, 12, 13)]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_head_masks_match_ground_truth(frames: list[SynthFrame]) -> None:
    for f in frames:
        faces = GroundTruthDetector().detect(f)
        refined = DepthMasker().refine(faces, f.depth, f.intrinsics)
        assert refined.masks is not None and refined.masks.shape == (len(faces), 480, 640)
        assert refined.data["mask_source"] == ["depth"] * len(faces)
        heads = f.head_masks[f.face_visible]
        others = f.head_masks.any(axis=0)
        box = Masker(shape="box", scale=2.0)
        for i, (mask, head) in enumerate(zip(refined.masks, heads, strict=True)):
            assert iou(mask, head) >= 0.7
            assert (mask & head).sum() >= 0.99 * head.sum(), "head fully covered"
            region = box.regions(faces[i], f.color.shape)[0]
            box_mask = np.zeros(f.depth.shape, bool)
            box_mask[region.slices] = True
            assert (mask & ~others).sum() < 0.5 * (box_mask & ~others).sum()


def test_hole_in_head_depth_is_still_masked(frames: list[SynthFrame]) -> None:
    f = frames[0]
    faces = GroundTruthDetector().detect(f)[0]
    depth = f.depth.copy()
    head = f.head_masks[0]
    ys = np.nonzero(head)[0]
    top = head & (np.arange(480)[:, None] < ys.min() + (ys.max() - ys.min()) * 0.3)
    depth[top] = 0  # the sensor saw nothing on the hair
    mask = DepthMasker().refine(faces, depth, f.intrinsics).masks
    assert mask is not None
    assert mask[0][top].all(), "unknown depth inside the head box counts as head"


@pytest.mark.parametrize("how", ["zeros", "nan"])
def test_no_depth_falls_back_to_the_ellipse(frames: list[SynthFrame], how: str) -> None:
    f = frames[0]
    faces = GroundTruthDetector().detect(f)
    depth = np.zeros_like(f.depth) if how == "zeros" else np.full_like(f.depth, np.nan)
    refined = DepthMasker().refine(faces, depth, None)
    assert refined.data["mask_source"] == ["ellipse"] * len(faces)
    expected = ellipse_masks(faces, f.depth.shape, scale=1.3)
    np.testing.assert_array_equal(refined.masks, expected)


def test_refine_keeps_faces_and_rejects_bad_input(frames: list[SynthFrame]) -> None:
    f = frames[0]
    faces = GroundTruthDetector().detect(f)
    refined = DepthMasker().refine(faces, f.depth, f.intrinsics)
    np.testing.assert_array_equal(refined.xyxy, faces.xyxy)
    assert faces.masks is None, "input not modified"
    with pytest.raises(InputError, match="shape"):
        DepthMasker().refine(faces, f.depth[:100], f.intrinsics, image_shape=f.color.shape)
    with pytest.raises(InputError, match="shape"):
        DepthMasker().refine(faces, f.depth[None], f.intrinsics)
    with pytest.raises(ConfigError):
        DepthMasker(front=-1)
    empty = DepthMasker().refine(Faces.empty(), f.depth, None)
    assert len(empty) == 0 and empty.masks is not None


def test_heads_from_behind_are_found(frames: list[SynthFrame]) -> None:
    found = total = 0
    for f in frames:
        faces = DepthMasker().refine(GroundTruthDetector().detect(f), f.depth, f.intrinsics)
        heads = find_heads_without_faces(f.depth, f.intrinsics, faces)
        assert heads.masks is not None or len(heads) == 0
        union = heads.masks.any(axis=0) if len(heads) else np.zeros(f.depth.shape, bool)
        for i in np.flatnonzero(~f.face_visible):
            gt = f.head_masks[i]
            if gt.sum() >= 30:
                total += 1
                found += (union & gt).sum() >= 0.9 * gt.sum()
        for mask in heads.masks if len(heads) else []:  # kept only if it adds to the faces
            assert (mask & ~faces.masks.any(axis=0)).sum() >= 0.2 * mask.sum()  # type: ignore[union-attr]
    assert total >= 3 and found == total


def test_no_heads_on_a_wall_and_floor() -> None:
    f = make_scene(5, people=1)[0]
    room = np.where(f.head_masks.any(axis=0), 0, f.depth)  # only the head gone: no head
    flat = np.full_like(f.depth, 5.0)
    for depth in (flat,):
        assert len(find_heads_without_faces(depth, f.intrinsics, None)) == 0
    assert len(find_heads_without_faces(room, f.intrinsics, None)) <= 1


def test_depth_shift_moves_depth_and_fills_unknown() -> None:
    import pytest

    from veil.errors import ConfigError
    from veil.rgbd.register import parse_shift, shift_depth

    depth = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    moved = shift_depth(depth, -1, 1)
    np.testing.assert_array_equal(moved[1:, :3], depth[:2, 1:])
    assert (moved[0] == 0).all() and (moved[:, 3] == 0).all()
    assert (shift_depth(depth, 9, 0) == 0).all()
    assert parse_shift("-16,0") == (-16, 0)
    with pytest.raises(ConfigError, match="DX,DY"):
        parse_shift("auto")
