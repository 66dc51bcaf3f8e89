"""Video metrics: mask flicker, identity drift, bare frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from veil.errors import InputError
from veil.evaluate import video_metrics as V
from video_factory import make_video


def _square(shift: int = 0) -> np.ndarray:
    m = np.zeros((40, 40), bool)
    m[10:20, 10 + shift : 20 + shift] = True
    return m


def test_static_track_has_iou_one_and_a_shifted_box_a_known_iou() -> None:
    ious = V.track_flicker([_square(), _square(), _square(5)])
    # shifted by half its width: overlap 50 px, union 150 px
    np.testing.assert_allclose(ious, [1.0, 1 / 3])
    assert V.mask_iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_track_mask_keeps_changed_pixels_near_the_box_only() -> None:
    changed = np.zeros((60, 60), bool)
    changed[20:30, 20:30] = True
    changed[0:3, 50:60] = True  # far from the box
    mask = V.track_mask(changed, (20, 20, 30, 30))
    assert mask.sum() == 100 and not mask[0:3, 50:60].any()


def test_identity_drift_is_zero_for_a_constant_face() -> None:
    drift = V.identity_drift(np.tile(np.linspace(0, 1, 128), (5, 1)))
    assert drift.mean_to_centroid == 0.0 and drift.max_step == 0.0
    moving = V.identity_drift(np.array([[0.0, 0.0], [0.0, 1.0]]))
    assert moving.max_step == 1.0 and moving.mean_to_centroid == 0.5


def test_unanonymized_clip_has_bare_frames_where_ground_truth_has_faces(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "a.mp4", frames=6, audio=False, metadata=False)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"frames": [{"index": 2, "faces": [[10, 10, 20, 20]]}]}))
    audit = tmp_path / "audit.json"
    box = {"box": [10, 10, 30, 30], "score": 1.0, "track_id": 7}
    audit.write_text(json.dumps({"frames": [{"index": i, "faces": [box]} for i in range(6)]}))
    result = V.evaluate_video(clip, clip, audit=audit, gt=gt, identity=False)
    d = result.to_dict()
    assert d["frames"] == 6 and d["frame_mismatch"] == 0
    assert d["bare_frames"] == [2]
    assert d["tracks"] == 1 and d["mask_iou_mean"] == 1.0  # nothing changed: both masks empty
    assert len(d["timeline"]) == 6 and d["timeline"][2]["bare"]


def test_frames_only_in_one_video_are_counted(tmp_path: Path) -> None:
    a = make_video(tmp_path / "a.mp4", frames=5, audio=False, metadata=False)
    b = make_video(tmp_path / "b.mp4", frames=3, audio=False, metadata=False)
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"frames": []}))
    result = V.evaluate_video(a, b, audit=audit, identity=False)
    assert result.frames == 3 and result.frame_mismatch == 2
    assert result.bare_frames is None


def test_bad_ground_truth_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "gt.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"gt\.json"):
        V.load_video_gt(bad)
