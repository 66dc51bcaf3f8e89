"""The ``veil video`` command through click's CliRunner (real CenterFace, tiny clips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from veil.commands.video import video
from veil.config import OutputConfig, RunConfig
from veil.io.video import probe_video
from veil.video.job import default_video_target, run_video_job
from video_factory import face_video, face_video_boxes, make_video


def invoke(*args: object) -> Result:
    return CliRunner().invoke(video, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", frames=8, size=(160, 120))


def test_help_names_the_tracking_and_speed_options() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for option in ("--detect-every", "--max-age", "--lookahead", "--on-error", "--no-audio"):
        assert option in result.output


def test_default_output_name_keeps_frames_and_audio(clip: Path) -> None:
    result = invoke(clip, "-q")
    assert result.exit_code == 0, result.output
    out = clip.with_name("clip_anonymized.mp4")
    assert default_video_target(clip) == out
    info = probe_video(out)
    assert info.has_audio and (info.width, info.height) == (160, 120)
    assert not list(clip.parent.glob(".*partial*"))


def test_no_audio_drops_audio_and_report_writes_the_audit(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    result = invoke(clip, "-o", out, "--no-audio", "--report", "--detect-every", "2")
    assert result.exit_code == 0, result.output
    assert not probe_video(out).has_audio
    assert "8 frames" in result.output and "frames/s" in result.output
    audit = json.loads((tmp_path / "out.mkv.audit.json").read_text())
    assert len(audit["frames"]) == 8 and audit["settings"]["video"]["detect_every"] == 2
    assert audit["settings"]["video"]["keep_audio"] is False


def test_existing_output_is_skipped_unless_overwrite(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    result = invoke(clip, "-o", out, "-q")
    assert result.exit_code == 0 and "skipped" in result.output
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (b"this is not a video", 1, "not a video file"),
        (b"", 1, "empty"),
        (None, 1, "not found"),
    ],
)
def test_bad_input_is_a_clear_error_with_no_output(
    tmp_path: Path, content: bytes | None, code: int, message: str
) -> None:
    src = tmp_path / "bad.mp4"
    if content is not None:
        src.write_bytes(content)
    result = invoke(src, "-q")
    assert result.exit_code == code
    assert result.output.startswith("veil: error:") and message in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["bad.mp4"] if content is not None else []
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "nope"), "unknown anonymizer"),
        (("--preset", "warp"), "preset"),
        (("-d", "haar", "--no-upscale"), "centerface"),
        (("-d", "haar", "--small-face-proposals", "0.02"), "centerface"),
        (("--small-face-proposals", "1"), "small-face-proposals"),
    ],
)
def test_bad_options_exit_2(clip: Path, args: tuple[str, ...], message: str) -> None:
    result = invoke(clip, *args)
    assert result.exit_code == 2 and message in result.output
    assert not clip.with_name("clip_anonymized.mp4").exists()


def test_run_video_job_reports_failure_without_raising(tmp_path: Path) -> None:
    src = tmp_path / "x.mp4"
    src.write_bytes(b"junk")
    config = RunConfig(output=OutputConfig(overwrite=True))
    outcome = run_video_job(src, tmp_path / "y.mp4", config, quiet=True)
    assert outcome.status == "failed" and "x.mp4" in (outcome.error or "")
    assert not (tmp_path / "y.mp4").exists()


def test_cli_defaults_are_the_video_config_defaults() -> None:
    from veil.video import VideoConfig

    params = {p.name: p.default for p in video.params}
    defaults = VideoConfig()
    for name in ("detect_every", "max_age", "lookahead", "on_error", "crf", "preset", "codec"):
        assert params[name] == getattr(defaults, name), name
    assert defaults.lookahead >= defaults.detect_every - 1  # backfill covers the gap


def _truncated(tmp_path: Path, frames: int = 40) -> Path:
    """A clip whose index (moov) sits at the front, cut to 60% of its bytes: the
    container still declares every frame but only some can be decoded."""
    import av

    whole, _ = face_video(tmp_path / "whole.mp4", frames=frames, size=(320, 240), audio=False)
    front = tmp_path / "front.mp4"
    with (
        av.open(str(whole)) as src,
        av.open(str(front), "w", options={"movflags": "faststart"}) as dst,
    ):
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    data = front.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return cut


def test_lost_frames_fail_with_no_output_unless_allowed(tmp_path: Path) -> None:
    cut = _truncated(tmp_path)
    assert probe_video(cut).frame_count == 40
    out = tmp_path / "out.mp4"
    result = invoke(cut, "-o", out, "-q")
    assert result.exit_code == 1, result.output
    assert "of 40 frames could be decoded" in result.output
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))

    result = invoke(cut, "-o", out, "--allow-partial")
    assert result.exit_code == 0, result.output
    written = probe_video(out).frame_count
    assert 0 < written < 40
    assert f"{written} of 40 frames" in result.output
    import av

    with av.open(str(tmp_path / "whole.mp4")) as c:  # the uncut source, same first frames
        source = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        kept = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    for (x0, y0, x1, y1), a, b in zip(face_video_boxes(40, (320, 240)), source, kept, strict=False):
        assert np.abs(a[y0:y1, x0:x1] - b[y0:y1, x0:x1]).mean() > 15  # a real face, changed
