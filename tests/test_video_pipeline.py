"""Tests for veil.video: tracking, backward fill, speed mode, fail-closed frames, threads.

Clips are generated here: an astronaut face (40x40) drifting right by 1 px per frame on
static noise, with the frame index written as a barcode in the top rows so that the fake
detector knows which frame it sees, and can blink or crash on chosen frames.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

import veil.video
from factories import ASTRONAUT_FACE, face_on_canvas
from veil.anonymize.base import ANONYMIZERS
from veil.config import RunConfig
from veil.detect.base import Detector
from veil.errors import ConfigError, OutputError
from veil.io.video import VideoReader
from veil.io.video_writer import VideoWriter
from veil.mask import Masker
from veil.pipeline import Pipeline
from veil.types import Faces
from veil.video import FrameAnonymizer, VideoConfig, VideoReport, anonymize_video

W, H, FACE, BITS = 160, 128, 40, 8


def true_box(i: int) -> np.ndarray:
    """Where the face is in frame ``i``: ``xyxy float32 (4,)``."""
    x = 20 + i
    return np.array([x, 50, x + FACE, 50 + FACE], np.float32)


def face_clip(path: Path, frames: int = 30) -> Path:
    """Write the moving-face clip (H.264, 25 fps, near-lossless) to ``path``."""
    x0, y0, x1, y1 = ASTRONAUT_FACE.astype(int)
    face = cv2.resize(skimage.data.astronaut()[y0:y1, x0:x1], (FACE, FACE))
    noise = np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "8"})
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            img = noise.copy()
            for b in range(BITS):
                img[:16, b * 16 : (b + 1) * 16] = 255 * ((i >> b) & 1)
            bx = true_box(i).astype(int)
            img[bx[1] : bx[3], bx[0] : bx[2]] = face
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return path


class ScriptedDetector(Detector):
    """Reads the frame index from the barcode; finds the true face except on ``blink``
    frames (nothing) and ``crash`` frames (raises). Counts its calls."""

    name = "scripted"

    def __init__(self, blink: set[int] = frozenset(), crash: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.blink, self.crash, self.calls = set(blink), set(crash), 0

    def detect(self, image: np.ndarray) -> Faces:
        self.calls += 1
        i = sum(int(image[4:12, b * 16 + 4 : b * 16 + 12].mean() > 128) << b for b in range(BITS))
        if i in self.crash:
            raise RuntimeError(f"model exploded on frame {i}")
        if i in self.blink:
            return Faces.empty()
        return Faces(xyxy=true_box(i)[None], scores=np.array([0.9], np.float32))


@dataclass
class Run:
    report: VideoReport
    src: list[np.ndarray]  # decoded input frames, int (H, W, 3)
    src_pts: list[int | None]
    out: list[np.ndarray]  # decoded output frames
    pts: list[int | None]
    audit: dict


def run(tmp_path: Path, det: Detector, frames: int = 30, **video: object) -> Run:
    """Anonymize a fresh face clip with ``det`` and a black box mask."""
    src = face_clip(tmp_path / "in.mp4", frames)
    dst, audit = tmp_path / "out.mp4", tmp_path / "out.audit.json"
    pipe = Pipeline(det, ANONYMIZERS.create("solid"), Masker(shape="box", scale=1.0, drop=0.0))
    report = anonymize_video(
        src,
        dst,
        RunConfig(),
        VideoConfig(**{"detect_every": 1, **video}),  # type: ignore[arg-type]
        pipeline=pipe,
        audit=audit,  # type: ignore[arg-type]
    )
    return Run(report, *decode(src), *decode(dst), json.loads(audit.read_text()))


def decode(path: Path) -> tuple[list[np.ndarray], list[int | None]]:
    with VideoReader(path) as reader:
        items = list(reader)
    return [d.frame.image.astype(int) for d in items], [d.pts for d in items]


def masked(frame: np.ndarray, i: int) -> bool:
    """The inside of the true face box is black (solid fill)."""
    x0, y0, x1, y1 = true_box(i).astype(int)
    return float(frame[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4].mean()) < 25


def test_public_names_exist() -> None:
    for name in veil.video.__all__:
        assert hasattr(veil.video, name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"detect_every": 0},
        {"max_age": -1},
        {"lookahead": -1},
        {"on_error": "ignore"},
        {"queue_size": 0},
        {"crf": 60},
        {"preset": "warp"},
        {"codec": "no-such-codec"},
    ],
)
def test_bad_video_config_is_a_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        VideoConfig(**kwargs)


def test_frames_leave_after_the_lookahead_delay_in_order() -> None:
    pipe = Pipeline(ScriptedDetector(), ANONYMIZERS.create("solid"))
    core = FrameAnonymizer(pipe, VideoConfig(lookahead=3))
    image = np.zeros((H, W, 3), np.uint8)
    out = [core.push(image, i, meta=i) for i in range(6)]
    assert [len(o) for o in out] == [0, 0, 0, 1, 1, 1]
    rest = core.flush()
    assert [p.index for o in out for p in o] + [p.index for p in rest] == list(range(6))
    assert all(p.meta == p.index for p in rest)


def test_full_detection_ahead_of_the_tracker_gives_the_same_frames(tmp_path: Path) -> None:
    """anonymize_video runs full detections in a thread ahead (FrameAnonymizer.ahead);
    fed in order, the tracker must see exactly what inline detection gives it."""
    frames, _ = decode(face_clip(tmp_path / "in.mp4", 24))
    config = VideoConfig(detect_every=3, search=False, lookahead=2)
    results = []
    for use_ahead in (False, True):
        det = ScriptedDetector(blink={4, 5, 6}, crash={9})
        core = FrameAnonymizer(Pipeline(det, ANONYMIZERS.create("solid")), config)
        out = []
        for i, f in enumerate(frames):
            image = f.astype(np.uint8)
            ahead = core.ahead(image, i) if use_ahead else None
            out += [core.finish(*p) for p in core.track(image, i, ahead=ahead)]
        out += core.flush()
        results.append((det.calls, out))
    (calls_inline, inline), (calls_ahead, ahead_out) = results
    assert calls_inline == calls_ahead
    assert [p.index for p in inline] == [p.index for p in ahead_out] == list(range(24))
    for a, b in zip(inline, ahead_out, strict=True):
        assert (a.detected, a.error, a.searched) == (b.detected, b.error, b.searched)
        np.testing.assert_array_equal(a.faces.xyxy, b.faces.xyxy)
        np.testing.assert_array_equal(a.image, b.image)
    assert inline[9].error and "exploded" in inline[9].error  # a failed full pass, both ways
    assert inline[10].detected  # retried on the next frame


def test_every_frame_masked_timing_kept_and_background_untouched(tmp_path: Path) -> None:
    r = run(tmp_path, ScriptedDetector())
    assert r.report.frames_in == r.report.frames_out == len(r.out) == 30
    assert r.pts == r.src_pts and len(set(r.pts)) == 30
    assert all(masked(f, i) for i, f in enumerate(r.out))
    assert not any(masked(f, i) for i, f in enumerate(r.src))
    background = [np.abs(o[100:] - s[100:]).mean() for o, s in zip(r.out, r.src, strict=True)]
    assert max(background) < 8
    assert r.report.frames_detected == 30 and r.report.tracks == 1


@pytest.mark.parametrize(("video", "filled"), [({}, True), ({"max_age": 0, "lookahead": 0}, False)])
def test_a_detector_blink_is_masked_by_tracking(tmp_path: Path, video: dict, filled: bool) -> None:
    r = run(tmp_path, ScriptedDetector(blink={10, 11, 12}), **video)
    assert [masked(r.out[i], i) for i in (10, 11, 12)] == [filled] * 3
    assert masked(r.out[9], 9) and masked(r.out[13], 13)
    if filled:
        assert r.report.frames_tracked_only == 3 and r.report.frames_without_detection == 0
        assert r.audit["frame_runs"]["tracked_only"] == [[10, 12]]
        assert r.audit["frames"][11]["faces"][0]["source"] in ("predicted", "backfilled")


@pytest.mark.parametrize(("lookahead", "filled"), [(8, True), (0, False)])
def test_backward_fill_masks_frames_before_the_first_detection(
    tmp_path: Path, lookahead: int, filled: bool
) -> None:
    r = run(tmp_path, ScriptedDetector(blink=set(range(5))), 20, lookahead=lookahead)
    assert [masked(r.out[i], i) for i in range(5)] == [filled] * 5
    assert all(masked(r.out[i], i) for i in range(5, 20))
    sources = {f["source"] for i in range(5) for f in r.audit["frames"][i]["faces"]}
    assert sources == ({"backfilled"} if filled else set())
    assert r.report.frames_without_detection == (0 if filled else 5)


def test_detection_failure_obscures_that_frame_and_the_run_goes_on(tmp_path: Path) -> None:
    r = run(tmp_path, ScriptedDetector(crash={7}), 20)
    assert len(r.out) == 20 and r.pts == r.src_pts
    whole = [np.abs(o - s).mean() for o, s in zip(r.out, r.src, strict=True)]
    assert whole[7] > 40  # noise background destroyed: nothing recognizable left
    assert max(whole[:7] + whole[8:]) < 25  # the face box and re-encoding only
    assert r.report.detection_failures == 1
    assert "exploded" in r.audit["frames"][7]["error"] and not r.audit["frames"][7]["dropped"]
    assert r.audit["frame_runs"]["detection_failed"] == [[7, 7]]
    assert all(masked(r.out[i], i) for i in range(20) if i != 7)


def test_drop_policy_leaves_the_failed_frame_out(tmp_path: Path) -> None:
    r = run(tmp_path, ScriptedDetector(crash={7}), 12, on_error="drop")
    assert r.report.frames_in == 12 and r.report.frames_out == len(r.out) == 11
    assert r.pts == r.src_pts[:7] + r.src_pts[8:]
    assert r.audit["frames"][7]["dropped"]


def test_speed_mode_detects_a_quarter_of_frames_and_masks_all(tmp_path: Path) -> None:
    det = ScriptedDetector()  # reads a barcode of the whole frame: no window search
    r = run(tmp_path, det, 32, detect_every=4, search=False)
    assert 8 <= det.calls <= 11 and r.report.frames_detected == det.calls
    assert all(masked(f, i) for i, f in enumerate(r.out))


def test_audit_describes_settings_and_every_frame(tmp_path: Path) -> None:
    audit = run(tmp_path, ScriptedDetector(blink={3}), 10, lookahead=2).audit
    assert len(audit["input_sha256"]) == len(audit["output_sha256"]) == 64
    assert audit["settings"]["video"]["lookahead"] == 2
    assert audit["settings"]["detector"] == {"name": "scripted"}
    assert [f["index"] for f in audit["frames"]] == list(range(10))
    frame = audit["frames"][0]
    assert frame["pts"] == 0 and frame["detected"] is True
    assert set(frame["faces"][0]) == {"box", "score", "track_id", "source"}
    assert audit["summary"]["frames_out"] == 10 and audit["decode_errors"] == []


def _clip_and_paths(tmp_path: Path) -> tuple[Path, Path, Pipeline]:
    src = face_clip(tmp_path / "in.mp4", 30)
    return src, tmp_path / "out.mp4", Pipeline(ScriptedDetector(), ANONYMIZERS.create("solid"))


def test_ctrl_c_leaves_no_output_and_no_threads(tmp_path: Path) -> None:
    src, dst, pipe = _clip_and_paths(tmp_path)
    baseline = threading.active_count()

    def interrupt(done: int, total: int) -> None:
        assert total == 30
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        anonymize_video(
            src, dst, RunConfig(), pipeline=pipe, progress=interrupt, audit=dst.with_suffix(".json")
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert threading.active_count() == baseline


def test_encoder_error_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst, pipe = _clip_and_paths(tmp_path)
    baseline, real_write = threading.active_count(), VideoWriter.write

    def failing_write(self: VideoWriter, *args: object) -> None:
        if self.frames_written == 3:
            raise OutputError("disk full")
        real_write(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    with pytest.raises(OutputError, match="disk full"):
        anonymize_video(src, dst, RunConfig(), pipeline=pipe)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
    assert threading.active_count() == baseline


def test_corrupt_packets_are_skipped_and_audited(tmp_path: Path) -> None:
    src = face_clip(tmp_path / "in.mkv", 60)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for k in range(4):
        off = len(data) // 4 + k * len(data) // 8
        data[off : off + 64] = rng.integers(0, 256, 64, np.uint8).tobytes()
    src.write_bytes(bytes(data))
    pipe = Pipeline(ScriptedDetector(), ANONYMIZERS.create("solid"))
    audit = tmp_path / "a.json"
    report = anonymize_video(src, tmp_path / "out.mkv", RunConfig(), pipeline=pipe, audit=audit)
    assert report.decode_errors and 30 <= report.frames_out == report.frames_in <= 60
    assert json.loads(audit.read_text())["decode_errors"][0]["message"]


def test_default_pipeline_blurs_the_face_in_every_frame(tmp_path: Path) -> None:
    """End to end with CenterFace and the default gaussian blur on a 320x240 clip."""
    src, boxes = tmp_path / "face.mp4", []
    with av.open(str(src), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "12"})
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        for i in range(12):
            img, box = face_on_canvas(scale=0.6, offset=(10 + 4 * i, 0), canvas=(240, 320))
            boxes.append(box.astype(int))
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode(None))
    report = anonymize_video(src, tmp_path / "out.mp4", RunConfig())
    assert report.frames_out == 12 and report.detection_failures == 0
    before, after = decode(src)[0], decode(tmp_path / "out.mp4")[0]
    for (x0, y0, x1, y1), a, b in zip(boxes, before, after, strict=True):
        assert np.abs(a[y0:y1, x0:x1] - b[y0:y1, x0:x1]).mean() > 15


class GreenDetector(Detector):
    """Finds the pure green square in any image (whole frame or search window)."""

    name = "green"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image: np.ndarray) -> Faces:
        self.shapes.append(image.shape[:2])
        mask = (image[..., 1] > 180) & (image[..., 0] < 90) & (image[..., 2] < 90)
        ys, xs = np.nonzero(mask)
        if len(xs) < 4:
            return Faces.empty()
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        return Faces(xyxy=np.array([box], np.float32), scores=np.array([0.9], np.float32))


def green_clip(path: Path, frames: int) -> Path:
    """The moving face of :func:`true_box` as a pure green square on dark noise."""
    noise = np.random.default_rng(1).integers(0, 90, (H, W, 3), np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "8"})
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            img = noise.copy()
            x0, y0, x1, y1 = true_box(i).astype(int)
            img[y0:y1, x0:x1] = (0, 255, 0)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return path


@pytest.mark.parametrize("yuv", [True, False])
def test_search_mode_confirms_tracks_in_windows_and_masks_every_frame(
    tmp_path: Path, yuv: bool
) -> None:
    src, dst = green_clip(tmp_path / "in.mp4", 40), tmp_path / "out.mp4"
    det = GreenDetector()
    pipe = Pipeline(det, ANONYMIZERS.create("solid"), Masker(shape="box", scale=1.0, drop=0.0))
    video = VideoConfig(detect_every=8, yuv=yuv)
    report = anonymize_video(src, dst, RunConfig(), video, pipeline=pipe)
    full = sum(s == (H, W) for s in det.shapes)
    assert report.frames_detected == full == 5  # frames 0, 8, ..., 32
    assert 0 < report.frames_searched == len(det.shapes) - full  # one window per search
    assert all(max(s) == 128 for s in det.shapes if s != (H, W))
    out, _ = decode(dst)
    assert len(out) == 40 and all(masked(f, i) for i, f in enumerate(out))


def test_yuv_path_copies_pixels_away_from_faces_exactly(tmp_path: Path) -> None:
    src = green_clip(tmp_path / "in.mp4", 6)
    outputs = {}
    for yuv in (True, False):
        pipe = Pipeline(
            GreenDetector(), ANONYMIZERS.create("solid"), Masker(shape="box", scale=1.0, drop=0.0)
        )
        dst = tmp_path / f"out-{yuv}.mp4"
        video = VideoConfig(crf=0, yuv=yuv, detect_every=1)
        anonymize_video(src, dst, RunConfig(), video, pipeline=pipe)
        with av.open(str(dst)) as c:
            outputs[yuv] = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    with av.open(str(src)) as c:
        originals = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    for i, (orig, fast, slow) in enumerate(
        zip(originals, outputs[True], outputs[False], strict=True)
    ):
        x0, y0, x1, y1 = true_box(i).astype(int)
        away = np.ones((H, W), bool)
        away[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = False
        assert np.array_equal(fast[:H][away], orig[:H][away])  # lossless (crf 0) and untouched
        assert not np.array_equal(slow[:H][away], orig[:H][away])  # RGB round trip changes them


class KeyframeDetector(ScriptedDetector):
    """Counts full passes made as key frames apart from plain :meth:`detect` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.keyframes = 0

    def detect_keyframe(self, image: np.ndarray) -> Faces:
        self.keyframes += 1
        return super().detect(image)

    def detect(self, image: np.ndarray) -> Faces:
        raise AssertionError("video full passes go through detect_keyframe")


@pytest.mark.parametrize("ahead", [True, False])
def test_full_passes_in_video_are_key_frame_passes(tmp_path: Path, ahead: bool) -> None:
    det = KeyframeDetector()
    if ahead:  # a file: full passes in the detect-ahead thread
        r = run(tmp_path, det, 16, detect_every=4, search=False)
        assert r.report.frames_detected == det.keyframes >= 4
    else:  # a stream (veil live): FrameAnonymizer.push
        frames = FrameAnonymizer(Pipeline(det, ANONYMIZERS.create("solid")), VideoConfig())
        clip = face_clip(tmp_path / "in.mp4", 9)
        with VideoReader(clip) as reader:
            for f in reader:
                frames.push(f.image, f.index)
        frames.flush()
        assert det.keyframes >= 2  # frames 0 and 8 at the default detect_every 8


def test_default_speed_mode_keeps_a_face_from_its_first_frame() -> None:
    video = VideoConfig()
    assert video.lookahead >= video.detect_every - 1


def test_the_video_package_imports_neither_the_runner_nor_the_commands() -> None:
    """``runner -> commands.video -> video -> video_audit -> runner`` was a circle: the
    video package now sits below both (they import it, it imports neither)."""
    import subprocess
    import sys

    code = (
        "import sys, veil.video, veil.video.job, veil.video.live, veil.video.audit; "
        "bad = sorted(m for m in sys.modules "
        "if m == 'veil.runner' or m.startswith('veil.commands')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
