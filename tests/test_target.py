"""--target face|head|person: head boxes, person masks, the fail-safe, CLI and video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from factories import ASTRONAUT_FACE, face_on_canvas
from veil import target as T
from veil.cli import main
from veil.config import RunConfig
from veil.errors import ConfigError, InputError
from veil.mask import Masker, union_mask
from veil.types import Faces
from video_factory import face_video


def faces(*boxes: list[float]) -> Faces:
    return Faces(xyxy=np.array(boxes, np.float32), scores=np.ones(len(boxes), np.float32))


class FakeSegmenter:
    """Answers the given person masks whatever the image (records the seeds)."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = masks
        self.seeds: list[Faces | None] = []
        self.rois: list[list[Any]] = []

    def segment(self, image: np.ndarray, seeds: Faces | None = None, *, rois: Any = ()) -> Faces:
        self.seeds.append(seeds)
        self.rois.append(list(rois))
        if not self.masks:
            return Faces.empty()
        boxes = []
        for m in self.masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        return Faces(
            xyxy=np.array(boxes, np.float32),
            scores=np.ones(len(boxes), np.float32),
            masks=np.stack(self.masks),
            data={"roi": [(float(i), 0.0, 10.0) for i in range(len(boxes))]},
        )


SHAPE = (200, 300, 3)
FACE = [100.0, 40.0, 140.0, 80.0]


def body(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros(SHAPE[:2], bool)
    m[y0:y1, x0:x1] = True
    return m


def regions_of(target: Any, found: Faces) -> np.ndarray:
    image = np.zeros(SHAPE, np.uint8)
    return union_mask(target.regions(lambda: image, found, Masker(), SHAPE), SHAPE)


@pytest.mark.parametrize(
    ("masks", "face_region_kept"),
    [
        ([], True),  # nobody segmented: the face is still hidden
        ([body(0, 120, 60, 200)], True),  # someone else's body only
        ([body(90, 30, 150, 90)], True),  # a mask that covers the face only in part
        ([body(70, 0, 170, 200)], False),  # the face's own body covers it
    ],
)
def test_person_target_never_hides_less_than_face_mode(
    masks: list[np.ndarray], face_region_kept: bool
) -> None:
    found = faces(FACE)
    seg = FakeSegmenter(masks)
    target = T.PersonTarget(seg, body=None)  # the body prior would cover the face too
    covered = regions_of(target, found)
    face_only = regions_of(T.FaceTarget(), found)
    assert not (face_only & ~covered).any()  # never less than face mode
    for m in masks:
        assert not (m & ~covered).any()  # every person pixel hidden
    regions = target.regions(lambda: np.zeros(SHAPE, np.uint8), found, Masker(), SHAPE)
    assert len(regions) == len(masks) + int(face_region_kept)
    assert seg.seeds[-1] is found  # people looked for around the faces


def test_a_stream_target_tries_where_people_were_on_the_frame_before() -> None:
    seg = FakeSegmenter([body(70, 0, 170, 200)])
    image = np.zeros(SHAPE, np.uint8)
    stream = T.PersonTarget(seg).for_stream()
    for _ in range(2):
        stream.regions(lambda: image, faces(FACE), Masker(), SHAPE)
    assert seg.rois == [[], [(0.0, 0.0, 10.0)]]
    still = T.PersonTarget(seg)  # images: each on its own
    for _ in range(2):
        still.regions(lambda: image, faces(FACE), Masker(), SHAPE)
    assert seg.rois[-2:] == [[], []]


def test_body_prior_lies_below_the_face_within_a_few_face_widths() -> None:
    face = np.array([100.0, 40.0, 140.0, 80.0])  # 40 x 40
    x0, y0, alpha = T.body_prior(face, (1000, 1000))
    m = np.zeros((1000, 1000), bool)
    m[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]] = alpha > 0
    assert m[60, 120] and m[20, 120]  # the face and the hair above it
    assert m[80 + 3 * 40, 120 - 60] and m[80 + 3 * 40, 120 + 60]  # chest, 1.5 widths out
    assert m[80 + 7 * 40 - 2, 120] and not m[80 + 7 * 40 + 2, 120]  # 7 face heights down
    assert not m[80 + 3 * 40, 120 + 80]  # beyond 1.75 face widths: not the body
    assert not m[85, 120 + 60]  # beside the chin, above the shoulders
    assert not m[10, 120]  # well above the head
    # clipped to the frame; a face outside it gives nothing
    x0, y0, alpha = T.body_prior(face, (200, 130))
    assert y0 + alpha.shape[0] == 200 and x0 + alpha.shape[1] == 130
    assert T.body_prior(np.array([500.0, 500, 540, 540]), (200, 300))[2].size == 0


def test_person_target_hides_a_body_below_every_face_the_pose_models_miss() -> None:
    found = faces(FACE)
    with_body = regions_of(T.PersonTarget(FakeSegmenter([])), found)
    without = regions_of(T.PersonTarget(FakeSegmenter([]), body=None), found)
    chest = (120, 80 + 2 * 40)
    assert with_body[chest[1], chest[0]] and not without[chest[1], chest[0]]
    assert not (without & ~with_body).any()
    assert not with_body[:, :40].any()  # far beside the person: left alone


class ScanningSegmenter(FakeSegmenter):
    """A segmenter that also answers a scan mask (the given one)."""

    def __init__(self, scan: np.ndarray) -> None:
        super().__init__([])
        self.scan = scan
        self.scanned = 0

    def scan_mask(self, image: np.ndarray) -> np.ndarray:
        self.scanned += 1
        return self.scan


def test_person_target_adds_the_scan_mask_of_people_nobody_detected() -> None:
    seg = ScanningSegmenter(body(200, 50, 280, 200))  # no face, no pose detection
    hidden = regions_of(T.PersonTarget(seg), faces(FACE))
    assert hidden[50:200, 200:280].all() and seg.scanned == 1
    assert not regions_of(T.PersonTarget(seg, scan=False), faces(FACE))[50:200, 200:280].any()
    assert seg.scanned == 1
    empty = ScanningSegmenter(np.zeros(SHAPE[:2], bool))
    assert not regions_of(T.PersonTarget(empty, body=None), faces()).any()
    stream = T.PersonTarget(seg, body=None, scan=False).for_stream()
    assert stream.body is None and stream.scan is False  # a stream keeps the settings


def test_head_target_covers_hair_and_ears_but_not_the_shoulders() -> None:
    image = skimage.data.astronaut()
    found = faces(list(ASTRONAUT_FACE))
    head = union_mask(
        T.HeadTarget().regions(lambda: image, found, Masker(), image.shape), image.shape
    )
    face = union_mask(Masker().regions(found, image.shape), image.shape)
    x0, y0, x1, y1 = ASTRONAUT_FACE.astype(int)
    cx = (x0 + x1) // 2
    hair = (cx, y0 - 40)  # top of the astronaut's hair, 40 px above the face box
    assert head[hair[1], hair[0]] and not face[hair[1], hair[0]]
    assert head[(y0 + y1) // 2, x0 - 12] and head[(y0 + y1) // 2, x1 + 12]  # beside: ears
    assert not head[y1 + 60, x0 - 60]  # shoulder
    assert not (face & ~head).sum() > 0.02 * face.sum()


def test_head_boxes_grow_most_upwards() -> None:
    (x0, y0, x1, y1) = T.head_boxes(np.array([[100, 100, 200, 200]]))[0]
    assert (100 - y0) > (y1 - 200) and (100 - x0) == (x1 - 200)


def test_unknown_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown target 'body'"):
        T.make_target("body")
    with pytest.raises(ConfigError, match="unknown target"):
        RunConfig(target="body")


def test_settings_record_the_target_only_when_not_face() -> None:
    assert "target" not in RunConfig().to_dict()
    cfg = RunConfig(target="person")
    assert cfg.to_dict()["target"] == "person"
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    from veil.pipeline import Pipeline

    assert Pipeline.from_config(RunConfig(target="head")).describe()["target"] == "head"
    assert "target" not in Pipeline.from_config(RunConfig()).describe()


def _person_or_skip() -> None:
    from veil.detect.person import PersonSegmenter

    try:
        PersonSegmenter()
    except InputError as exc:
        pytest.skip(f"mediapipe wheel not installed: {exc}")


def run(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def changed(a: np.ndarray, b: np.ndarray, x: int, y: int, r: int = 6) -> float:
    return float(np.abs(a[y - r : y + r, x - r : x + r] - b[y - r : y + r, x - r : x + r]).mean())


def test_cli_target_person_hides_the_body_and_leaves_the_background(tmp_path: Path) -> None:
    _person_or_skip()
    image = skimage.data.astronaut()
    src = tmp_path / "astronaut.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "out.png"
    result = run("anonymize", src, "-o", out, "--target", "person", "-m", "pixelate")
    assert result.exit_code == 0, result.output
    after, before = load(out), image.astype(int)
    for x, y in [(220, 110), (200, 300), (120, 450)]:  # face, chest, arm
        assert changed(after, before, x, y) > 8, (x, y)
    for x, y in [(420, 150), (480, 300)]:  # the rocket, the dark background
        assert changed(after, before, x, y) == 0, (x, y)


def test_cli_target_head_hides_the_hair_face_mode_leaves(tmp_path: Path) -> None:
    image, box = face_on_canvas(scale=0.8, offset=(20, 40), canvas=(400, 480))
    src = tmp_path / "photo.png"
    Image.fromarray(image).save(src)
    x0, y0, x1, y1 = box.astype(int)
    hair = ((x0 + x1) // 2, y0 - int(0.35 * (y1 - y0)))
    before = image.astype(int)
    outs = {}
    for target in ("face", "head"):
        outs[target] = tmp_path / f"{target}.png"
        result = run("anonymize", src, "-o", outs[target], "--target", target)
        assert result.exit_code == 0, result.output
    assert changed(load(outs["head"]), before, *hair, r=4) > 5
    assert changed(load(outs["face"]), before, *hair, r=4) < 1
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    assert changed(load(outs["head"]), before, *centre) > 10


def test_cli_rejects_an_unknown_target(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src)
    result = CliRunner().invoke(main, ["anonymize", str(src), "--target", "body"])
    assert result.exit_code != 0 and "body" in result.output


def test_video_target_person_hides_the_body_in_every_frame(tmp_path: Path) -> None:
    _person_or_skip()
    import av

    src, boxes = face_video(tmp_path / "in.mp4", frames=6, size=(320, 240), audio=False)
    out = tmp_path / "out.mp4"
    result = run("video", src, "-o", out, "--target", "person", "--detect-every", "3")
    assert result.exit_code == 0, result.output

    def frames(p: Path) -> list[np.ndarray]:
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]

    a, b = frames(src), frames(out)
    assert len(a) == len(b) == 6
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = box
        w = x1 - x0
        chest = ((x0 + x1) // 2, min(y1 + w, 230))  # the suit below the face
        assert changed(b[i], a[i], *chest, r=5) > 20, i  # face mode: ~3 (re-encoding)
        assert changed(b[i], a[i], (x0 + x1) // 2, (y0 + y1) // 2) > 5, i


def test_person_mode_without_the_mediapipe_wheel_fails_before_any_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veil.detect import person

    def missing() -> Path:
        raise InputError("the mediapipe package is not installed; pip install --no-deps ...")

    monkeypatch.setattr(person, "find_mediapipe_pose_model", missing)
    monkeypatch.setattr(T, "_SEGMENTER", [])
    image, _ = face_on_canvas()
    src = tmp_path / "a.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "out.png"
    result = CliRunner().invoke(main, ["anonymize", str(src), "-o", str(out), "--target", "person"])
    assert result.exit_code != 0
    assert "mediapipe" in result.output
    assert not out.exists()


def test_batch_and_live_take_the_target(tmp_path: Path) -> None:
    """``--target head`` through ``veil batch`` (a photo) and ``veil live`` (a clip): the
    hair above the real face changes too; with the default target it does not."""
    from video_factory import face_change

    image, box = face_on_canvas(scale=0.8, offset=(20, 40), canvas=(400, 480))
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "photo.png")
    x0, y0, x1, y1 = box.astype(int)
    hair = ((x0 + x1) // 2, y0 - int(0.35 * (y1 - y0)))
    before = image.astype(int)
    for target, hidden in (("face", False), ("head", True)):
        out = tmp_path / f"batch-{target}"
        result = run("batch", tmp_path / "in", "-o", out, "--target", target)
        assert result.exit_code == 0, result.output
        after = load(out / "photo.png")
        assert (changed(after, before, *hair, r=4) > 5) is hidden, target
        assert changed(after, before, (x0 + x1) // 2, (y0 + y1) // 2) > 10  # the face

    src, boxes = face_video(tmp_path / "clip.mp4", frames=6, audio=False)
    # a band of hair above each face box: 0.45 to 0.25 face heights above its top
    up = [
        np.array(
            [b[0] + 10, b[1] - 0.45 * (b[3] - b[1]), b[2] - 10, b[1] - 0.25 * (b[3] - b[1])]
        ).astype(int)
        for b in boxes
    ]
    assert all(b[1] >= 0 and b[3] > b[1] for b in up)
    for target, hidden in (("face", False), ("head", True)):
        out = tmp_path / f"live-{target}.mp4"
        result = run("live", src, "-o", out, "-q", "--crf", 10, "--target", target)
        assert result.exit_code == 0, result.output
        assert min(face_change(src, out, boxes)) > 8.0  # the face, every frame
        hair_change = face_change(src, out, up)
        assert (min(hair_change) > 5.0) if hidden else (max(hair_change) < 3.0), hair_change
