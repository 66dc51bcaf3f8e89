"""veil.review without the service: flags from audit records, proxy sizes and frames,
work-folder reuse, clear errors, the command's registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from veil.cli import main
from veil.errors import InputError
from veil.review import PhotoReview, VideoReview
from veil.review.flags import LOW_SCORE, OPEN_TAIL, find_flags, photo_flags
from veil.review.proxy import ProxyReader, build_proxy, even_size
from video_factory import make_video


def face(track: int, source: str = "detected", score: float = 0.9) -> dict[str, Any]:
    return {"box": [10, 10, 50, 50], "score": score, "track_id": track, "source": source}


def frames(*faces_per_frame: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, "faces": f} for i, f in enumerate(faces_per_frame)]


@pytest.mark.parametrize(
    ("records", "cuts", "expected"),
    [
        (frames([face(1)], [], [face(1)]), [], [(2, "gap", 1)]),  # gone, back
        (frames([face(1)], [face(1, score=0.2)], [face(1, score=0.3)]), [], [(1, "low", 1)]),
        (frames([face(1, score=LOW_SCORE)], [face(1)]), [], []),  # at the threshold: fine
        (  # predicted, then the track ends before the clip does
            frames([face(1)], [face(1, "predicted")], [face(1, "predicted")], [], []),
            [],
            [(1, "unconfirmed", 1)],
        ),
        (frames([face(1)], [face(1, "predicted")], [face(1)]), [], []),  # confirmed
        (frames([face(1)], [face(1, "predicted")]), [], []),  # short tail at the clip's end
        (frames([], [face(2)], []), [1], [(1, "cut", None)]),
        (
            [{"index": 0, "faces": []}, {"index": 1, "faces": [], "error": "boom"}],
            [],
            [(1, "failed", None)],
        ),
    ],
)
def test_flags(records: list[dict[str, Any]], cuts: list[int], expected: list[Any]) -> None:
    assert [(f.frame, f.kind, f.track) for f in find_flags(records, cuts)] == expected


def test_a_long_predicted_tail_is_flagged() -> None:
    tail = [[face(1, "predicted")]] * OPEN_TAIL
    flags = find_flags(frames([face(1)], *tail), [])
    assert [(f.frame, f.kind) for f in flags] == [(1, "unconfirmed")]


def test_photo_flags() -> None:
    assert photo_flags([]) == ["none"]
    assert photo_flags([face(0, score=0.2)]) == ["low"]
    assert photo_flags([face(0)] * 8) == ["many"]
    assert photo_flags([face(0)]) == []


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1920, 1080), (640, 360)), ((320, 240), (320, 240)), ((1000, 3000), (640, 1920))],
)
def test_proxy_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert even_size(*size, 640) == expected


def test_proxy_of_a_height_not_divisible_by_four(tmp_path: Path) -> None:
    src = make_video(tmp_path / "odd.mp4", frames=23, size=(200, 118), audio=False)
    info = build_proxy(src, tmp_path)
    assert (info.frames, info.proxy_size) == (23, (200, 118))
    reader = ProxyReader(tmp_path / "proxy.mp4", info.frames)
    first, last = reader.rgb(0), reader.rgb(22)
    assert first.shape == (118, 200, 3) and np.abs(first.astype(int) - last).mean() > 1
    with pytest.raises(InputError, match="outside"):
        reader.rgb(23)


def test_a_second_session_reuses_the_work_folder(tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=12, audio=False)
    first = VideoReview.prepare(src, work=tmp_path / "work")
    stamp = (first.work / "audit.json").stat().st_mtime_ns
    calls: list[str] = []
    again = VideoReview.prepare(src, work=tmp_path / "work", progress=lambda *a: calls.append(a[0]))
    assert again.work == first.work and calls == []  # nothing analysed again
    assert (again.work / "audit.json").stat().st_mtime_ns == stamp
    assert again.edits_path == tmp_path / "clip.edits.json"
    assert again.output == tmp_path / "clip_anonymized.mp4"


def test_missing_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such video"):
        VideoReview.prepare(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="no image files"):
        PhotoReview.prepare(tmp_path)
    clip = make_video(tmp_path / "clip.mp4", frames=3, audio=False)
    with pytest.raises(InputError, match="replace the video"):
        VideoReview.prepare(clip, output=clip)
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "a.png")
    with pytest.raises(InputError, match="must not be inside"):
        PhotoReview.prepare(tmp_path / "photos", output=tmp_path / "photos" / "out")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    result = CliRunner().invoke(main, ["review", str(broken), "--work-dir", str(tmp_path / "w")])
    assert result.exit_code == 1 and "broken.mp4" in result.output
    assert not list((tmp_path / "w").glob("*/review.json"))  # nothing half-prepared


def test_review_is_a_command() -> None:
    result = CliRunner().invoke(main, ["review", "--help"])
    assert result.exit_code == 0
    assert "--edits" in result.output and "--open" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_the_command_prepares_and_serves_with_serves_token_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    pytest.importorskip("uvicorn", reason="the review page needs the 'serve' extra")
    served: list[Any] = []
    monkeypatch.setattr("veil.service.server.run", lambda *a: served.append(a))
    monkeypatch.delenv("VEIL_TOKEN", raising=False)
    clip = make_video(tmp_path / "clip.mp4", frames=10, audio=False)
    args = ["review", str(clip), "--host", host, "--port", "8123", "--work-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    ((app, bound, port),) = served
    assert (bound, port) == (host, 8123)
    token = app.state.service.settings.token
    paths = {getattr(r, "path", "") for r in app.routes}
    assert {"/review", "/api/review/timeline", "/api/review/edits"} <= paths
    assert list(tmp_path.glob("*/review.json"))  # analysed before serving
    if host == "127.0.0.1":
        assert token is None and "http://127.0.0.1:8123/review\n" in result.output
    else:  # off loopback: a token is generated, printed once, carried by the page URL
        assert token and f"/review#token={token}" in result.output
