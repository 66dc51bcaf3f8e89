"""The head finder rejects objects shaped unlike a head above shoulders, keeps real heads."""

from __future__ import annotations

import numpy as np
import pytest

from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.synth import DISTRACTORS, make_scene


def _union(depth: np.ndarray, intrinsics: dict[str, float]) -> np.ndarray:
    heads = find_heads_without_faces(depth, intrinsics, None)
    return heads.masks.any(axis=0) if len(heads) else np.zeros(depth.shape, bool)  # type: ignore[union-attr]


def _scene_with(parts: list[tuple[float, float, float, float]], *, people: bool) -> tuple:
    """Wall at 5 m, optionally a person's head and shoulders; ``parts`` boxes (x, top,
    width, height in metres, at 3 m) painted as flat-fronted objects."""
    f = make_scene(21, people=1, noise=False)[0]
    k = f.intrinsics
    depth = np.full(f.depth.shape, 5.0, np.float32)
    ys, xs = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    mx, my = (xs - k["cx"]) / k["fx"], (ys - k["cy"]) / k["fy"]  # metres per metre of depth
    for x, top, w, h in parts:
        z = 3.0
        inside = (np.abs(mx * z - x) < w / 2) & (my * z > top) & (my * z < top + h)
        depth[inside] = z
    head = np.zeros(depth.shape, bool)
    if people:
        z = 3.0
        ex, ey = mx * z - 0.0, my * z - (-0.2)
        head = (ex / 0.08) ** 2 + (ey / 0.11) ** 2 < 1
        neck = (np.abs(ex) < 0.05) & (ey > 0.0) & (ey < 0.17)
        body = (np.abs(ex) < 0.22) & (ey > 0.16) & (my * z < 1.5)
        depth[head | neck | body] = z
    return depth, k, head


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("pole", [(1.0, -0.35, 0.04, 1.85)]),
        ("door post", [(1.0, -0.9, 0.12, 2.4)]),
        ("box on a thin stand", [(1.0, -0.3, 0.22, 0.3), (1.0, 0.0, 0.04, 1.5)]),
        ("box on a cabinet", [(1.0, -0.3, 0.2, 0.26), (1.0, -0.04, 0.7, 1.54)]),
    ],
)
def test_objects_are_not_heads_but_the_person_is(
    name: str, parts: list[tuple[float, float, float, float]]
) -> None:
    depth, k, head = _scene_with(parts, people=True)
    union = _union(depth, k)
    assert (union & head).sum() >= 0.99 * head.sum(), "the person's head is masked"
    obj, _, _ = _scene_with(parts, people=False)
    assert not _union(obj, k).any(), f"{name}: no head found on the object alone"


def test_synthetic_distractors_keep_every_head_found_before() -> None:
    """Scenes with objects: heads from behind still found, objects (nearly) never masked."""
    found = total = false = objects = 0
    for seed in (31, 32, 33, 34):
        f = make_scene(seed, people=3, distractors=4)[0]
        assert f.object_kinds == DISTRACTORS
        heads = find_heads_without_faces(f.depth, f.intrinsics, None)
        union = heads.masks.any(axis=0) if len(heads) else np.zeros(f.depth.shape, bool)  # type: ignore[union-attr]
        for gt in f.head_masks[~f.face_visible]:
            if gt.sum() >= 30:
                total += 1
                found += (union & gt).sum() >= 0.9 * gt.sum()
        people = f.head_masks.any(axis=0)
        objects += int((f.objects.sum(axis=(1, 2)) >= 30).sum())
        for mask in heads.masks if len(heads) else []:  # type: ignore[union-attr]
            false += max((mask & o).sum() for o in f.objects) > (mask & people).sum()
    assert total >= 4 and found == total
    assert objects >= 12 and false <= 1
