"""RGB-D sequences through video tracking (``RGBDAnonymizer``) on synthetic scenes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from veil.anonymize.base import ANONYMIZERS
from veil.detect.base import Detector
from veil.errors import BackendError, ConfigError, InputError
from veil.mask import Masker, union_mask
from veil.pipeline import Pipeline
from veil.rgbd.sequence import RGBDAnonymizer, RGBDConfig, RGBDResult
from veil.rgbd.synth import SynthFrame, make_scene
from veil.types import Faces
from veil.video import VideoConfig

TRACKED = VideoConfig(detect_every=1, lookahead=3, max_age=5)


class GroundTruthDetector(Detector):
    """Finds each synthetic frame's visible faces (ground-truth boxes), except on
    ``blink`` frames (nothing) and ``crash`` frames (raises); frames are recognized by
    their pixels, so it works whatever order or mode calls it."""

    name = "ground-truth"

    def __init__(
        self,
        frames: list[SynthFrame],
        blink: set[int] = frozenset(),
        crash: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        self.index = {_key(f.color): i for i, f in enumerate(frames)}
        self.frames, self.blink, self.crash = frames, set(blink), set(crash)

    def detect(self, image: np.ndarray) -> Faces:
        i = self.index.get(_key(image))
        if i is None or i in self.blink:
            return Faces.empty()
        if i in self.crash:
            raise BackendError(f"model exploded on frame {i}")
        f = self.frames[i]
        return Faces(f.face_boxes[f.face_visible])


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def scene() -> list[SynthFrame]:
    frames = make_scene(5, people=2, frames=8)  # person 0 faces the camera, 1 faces away
    assert all(f.face_visible[0] and not f.face_visible[1] for f in frames)
    return frames


def _pipeline(det: Detector) -> Pipeline:
    return Pipeline(det, ANONYMIZERS.create("solid"), Masker())


def _run(
    frames: list[SynthFrame],
    det: Detector,
    video: VideoConfig | None,
    config: RGBDConfig | None = None,
) -> list[RGBDResult]:
    stream = RGBDAnonymizer(_pipeline(det), config, video, intrinsics=frames[0].intrinsics)
    out = []
    for i, f in enumerate(frames):
        out += stream.push(f.color, f.depth, i, meta=f"pair {i}")
    return out + stream.flush()


def _covered(result: RGBDResult, head: np.ndarray, pipe: Pipeline) -> float:
    """Share of the ``head`` pixels the result masked."""
    mask = union_mask(pipe.masker.regions(result.faces, head.shape), head.shape)
    return float((mask & head).sum() / head.sum())


def test_tracking_masks_the_head_on_frames_the_detector_misses(scene: list[SynthFrame]) -> None:
    blink = {3, 4}
    pipe = _pipeline(GroundTruthDetector(scene))
    tracked = _run(scene, GroundTruthDetector(scene, blink), TRACKED)
    alone = _run(scene, GroundTruthDetector(scene, blink), None)
    for i in blink:
        head = scene[i].head_masks[0]
        assert _covered(tracked[i], head, pipe) >= 0.99, i
        assert tracked[i].faces.data["source"][0] == "predicted"
        assert tracked[i].faces.data["mask_source"][0] == "depth", "tracked box grown by depth"
        assert _covered(alone[i], head, pipe) < 0.1, "untracked: the missed face is bare"
        assert tracked[i].color is not None and tracked[i].depth is not None
        changed = np.abs(tracked[i].color.astype(int) - scene[i].color).sum(axis=2) > 0
        assert changed[head].mean() > 0.9
        assert not np.array_equal(tracked[i].depth[head], scene[i].depth[head]), "relief flattened"


def test_lookahead_masks_the_head_before_its_first_detection(scene: list[SynthFrame]) -> None:
    pipe = _pipeline(GroundTruthDetector(scene))
    results = _run(scene, GroundTruthDetector(scene, blink={0, 1}), TRACKED)
    for i in (0, 1):
        assert results[i].faces.data["source"][0] == "backfilled"
        assert _covered(results[i], scene[i].head_masks[0], pipe) >= 0.99, i


def test_frames_leave_in_order_lookahead_late(scene: list[SynthFrame]) -> None:
    stream = RGBDAnonymizer(_pipeline(GroundTruthDetector(scene)), None, TRACKED)
    counts = [len(stream.push(f.color, f.depth, i)) for i, f in enumerate(scene)]
    assert counts == [0, 0, 0] + [1] * (len(scene) - 3)
    assert [r.index for r in stream.flush()] == [5, 6, 7]
    assert [r.meta for r in _run(scene, GroundTruthDetector(scene), TRACKED)] == [
        f"pair {i}" for i in range(len(scene))
    ]


@pytest.mark.parametrize("video", [TRACKED, VideoConfig(detect_every=3), None])
def test_failed_detection_fails_that_frame_only(
    scene: list[SynthFrame], video: VideoConfig | None
) -> None:
    results = _run(scene, GroundTruthDetector(scene, crash={3}), video)
    assert [r.index for r in results] == list(range(len(scene)))
    failed = [r for r in results if r.error is not None]  # 3: a full detection in all modes
    assert [r.index for r in failed] == [3]
    assert failed[0].color is None and failed[0].depth is None and "exploded" in failed[0].error
    assert all(r.color is not None for r in results if r.index != 3)


def test_mismatched_depth_raises_and_the_stream_goes_on(scene: list[SynthFrame]) -> None:
    stream = RGBDAnonymizer(_pipeline(GroundTruthDetector(scene)), None, TRACKED)
    with pytest.raises(InputError, match="frame 0 depth"):
        stream.push(scene[0].color, scene[0].depth[:-2], 0)
    stream.push(scene[0].color, scene[0].depth, 0)
    [result] = stream.flush()
    assert result.index == 0 and result.error is None


def test_head_margin_grows_heads_without_a_face(scene: list[SynthFrame]) -> None:
    det = GroundTruthDetector(scene[:1])
    areas = []
    for margin in (0.0, 0.05):
        [r] = _run(scene[:1], det, None, RGBDConfig(heads=True, head_margin=margin))
        assert r.faces.masks is not None
        sources = r.faces.data["mask_source"]
        found = [m for m, s in zip(r.faces.masks, sources, strict=True) if s == "depth-head"]
        assert found, "the person facing away is found from depth"
        areas.append(int(np.any(found, axis=0).sum()))
        assert _covered(r, scene[0].head_masks[1], _pipeline(det)) >= 0.99
    assert areas[1] > 1.2 * areas[0]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, None),
        ({"depth_policy": "noise", "head_margin": 0.1}, None),
        ({"depth_policy": "blur"}, "depth_policy"),
        ({"head_margin": -0.1}, "head_margin"),
    ],
)
def test_config_validation(kwargs: dict[str, object], error: str | None) -> None:
    if error is None:
        RGBDConfig(**kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigError, match=error):
        RGBDConfig(**kwargs)  # type: ignore[arg-type]
