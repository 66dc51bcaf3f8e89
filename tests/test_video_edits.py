"""Edit lists on video (veil.video.edits, anonymize_video(edits=...), veil video --edits):
a real face moving 4 px per frame, the pixels of its box checked frame by frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from veil.boxes import box_iou
from veil.commands.video import video
from veil.config import DetectorConfig, OutputConfig, RunConfig
from veil.edits import EditList
from veil.errors import InputError
from veil.files import file_sha256
from veil.pipeline import Pipeline
from veil.video.edits import resolve_tracked_adds
from veil.video.job import run_video_job
from veil.video.pipeline import VideoConfig, anonymize_video
from video_factory import face_change, face_video, face_video_boxes

FRAMES = 16
CHANGED, UNCHANGED = 20.0, 6.0  # mean grey change in the face box: anonymized / re-encoded
BLIND = RunConfig(detector=DetectorConfig(threshold=0.999))  # finds no face in the clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[float]]]:
    path, boxes = face_video(tmp_path_factory.mktemp("clip") / "face.mp4", frames=FRAMES)
    return path, [[float(v) for v in b] for b in boxes]


@pytest.fixture(scope="module")
def pipelines() -> dict[str, Pipeline]:
    return {"default": Pipeline.from_config(RunConfig()), "blind": Pipeline.from_config(BLIND)}


def _run(
    src: Path,
    out: Path,
    pipeline: Pipeline,
    edits: dict[str, Any] | None,
    *,
    audit: Path | None = None,
) -> list[float]:
    listed = None if edits is None else EditList.from_dict({"version": 1, **edits})
    config = RunConfig()
    anonymize_video(src, out, config, VideoConfig(), pipeline=pipeline, edits=listed, audit=audit)
    return face_change(src, out, _face_boxes(src))


def _face_boxes(src: Path) -> list[np.ndarray]:
    """The face boxes of the module's clip (``face_video`` with these settings)."""
    assert src.name == "face.mp4"
    return face_video_boxes(FRAMES)


def test_the_blind_pipeline_leaves_the_face_as_it_was(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    change = _run(clip[0], tmp_path / "out.mp4", pipelines["blind"], None)
    assert max(change) < UNCHANGED  # so any change below comes from the edit list


def test_an_untracked_add_changes_its_box_on_exactly_its_frames(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    add = {"frames": [5, 7], "box": boxes[6], "track": False}
    change = _run(src, tmp_path / "out.mp4", pipelines["blind"], {"add": [add]})
    for frame, value in enumerate(change):
        if 5 <= frame <= 7:
            assert value > CHANGED, (frame, change)
        else:
            assert value < UNCHANGED, (frame, change)


def test_a_tracked_add_follows_a_missed_face_forward_and_backward(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    at = 8
    tracked = {"frames": [0, FRAMES - 1], "box": boxes[at], "at": at}
    fixed = {**tracked, "track": False}
    edits = EditList.from_dict({"version": 1, "add": [tracked]})
    followed = resolve_tracked_adds(src, edits, pipelines["blind"])[0]
    assert sorted(followed) == list(range(FRAMES))
    iou = [float(box_iou(np.array(followed[f]), np.array(boxes[f]))[0, 0]) for f in followed]
    assert min(iou) > 0.85, iou  # the face moved 32 px each way; the box went with it
    change = _run(src, tmp_path / "t.mp4", pipelines["blind"], {"add": [tracked]})
    still = _run(src, tmp_path / "f.mp4", pipelines["blind"], {"add": [fixed]})
    assert min(change) > CHANGED
    assert min(change) > 0.95 * max(change)  # the whole face, on every frame
    for frame in (0, 1, FRAMES - 2, FRAMES - 1):  # far from `at`, the drawn box misses part
        assert still[frame] < 0.85 * change[frame], (frame, still, change)


def test_following_backward_in_small_chunks_gives_the_same_boxes(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline]
) -> None:
    src, boxes = clip
    edits = EditList.from_dict(
        {"version": 1, "add": [{"frames": [1, 14], "box": boxes[12], "at": 12}]}
    )
    whole = resolve_tracked_adds(src, edits, pipelines["default"])
    chunked = resolve_tracked_adds(src, edits, pipelines["default"], memory=1)  # one frame each
    assert whole == chunked and sorted(whole[0]) == list(range(1, 15))


def test_remove_leaves_a_detected_face_in_its_range_only(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    audit = tmp_path / "out.json"
    edits = {"remove": [{"frames": [4, 9], "box": boxes[6]}]}
    change = _run(src, tmp_path / "out.mp4", pipelines["default"], edits, audit=audit)
    for frame, value in enumerate(change):
        if 4 <= frame <= 9:
            assert value < UNCHANGED, (frame, change)
        else:
            assert value > CHANGED, (frame, change)
    record = json.loads(audit.read_text())
    (entry,) = record["edits"]
    assert (entry["entry"], entry["kind"], entry["index"]) == ("remove[0]", "remove", 0)
    assert entry["frames"] == [4, 9] and entry["frames_changed"] == 6
    assert [c["frame"] for c in entry["changed"]] == list(range(4, 10))
    frames = record["frames"]
    assert all(f["removed"][0]["edit"] == "remove[0]" for f in frames[4:10])
    assert not any("removed" in f for f in frames[:4] + frames[10:])
    assert all(f["faces"] for f in frames[:4] + frames[10:])


def test_a_method_entry_gives_the_bytes_of_that_method(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    halves = [  # the face moves 32 px in 8 frames: one box per half overlaps it enough
        {"frames": [0, 7], "box": boxes[4], "method": "pixelate"},
        {"frames": [8, FRAMES - 1], "box": boxes[12], "method": "pixelate"},
    ]
    _run(src, tmp_path / "m.mp4", pipelines["default"], {"methods": halves})
    config = RunConfig.from_dict({"anonymizer": {"method": "pixelate"}})
    anonymize_video(src, tmp_path / "p.mp4", config, VideoConfig())
    _run(src, tmp_path / "g.mp4", pipelines["default"], None)
    assert file_sha256(tmp_path / "m.mp4") == file_sha256(tmp_path / "p.mp4")
    assert file_sha256(tmp_path / "m.mp4") != file_sha256(tmp_path / "g.mp4")


def test_the_same_edit_list_gives_the_same_bytes(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    edits = {
        "add": [
            {"frames": [0, 12], "box": boxes[3], "at": 3},
            {"frames": [2, 5], "box": [10, 150, 60, 200], "track": False, "method": "solid"},
        ],
        "remove": [{"frames": [13, 15], "box": boxes[14]}],
    }
    for name in ("a.mp4", "b.mp4"):
        _run(src, tmp_path / name, pipelines["default"], edits, audit=tmp_path / f"{name}.json")
    assert file_sha256(tmp_path / "a.mp4") == file_sha256(tmp_path / "b.mp4")
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a.mp4", "b.mp4"))
    assert a["edits"] == b["edits"] and a["frames"] == b["frames"]


def test_entries_past_the_clip_fail_with_no_output(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    out = tmp_path / "out.mp4"
    edits = {"add": [{"frames": [0, 0], "box": boxes[0]}, {"frames": [10, 16], "box": boxes[0]}]}
    with pytest.raises(InputError, match=r"add\[1\]\.frames: frame 16 is beyond the end"):
        _run(src, out, pipelines["default"], edits)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_run_video_job_takes_edits_and_reports_progress(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    src, boxes = clip
    seen: list[tuple[int, int]] = []
    halves = [{"frames": [0, 7], "box": boxes[4]}, {"frames": [8, 15], "box": boxes[12]}]
    edits = EditList.from_dict({"version": 1, "remove": halves})
    config = RunConfig(output=OutputConfig(report=True))
    outcome = run_video_job(
        src,
        tmp_path / "out.mp4",
        config,
        quiet=True,
        pipeline=pipelines["default"],
        edits=edits,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert outcome.status == "done"
    assert seen[-1] == (FRAMES, FRAMES) and len(seen) == FRAMES
    assert max(face_change(src, tmp_path / "out.mp4", _face_boxes(src))) < UNCHANGED
    audit = json.loads((tmp_path / "out.mp4.audit.json").read_text())
    assert [e["frames_changed"] for e in audit["edits"]] == [8, 8]


# -- veil video --edits ----------------------------------------------------------------


def invoke(*args: object) -> Result:
    return CliRunner().invoke(video, [str(a) for a in args], catch_exceptions=False)


def test_cli_applies_the_edit_list(clip: tuple[Path, list[list[float]]], tmp_path: Path) -> None:
    src, boxes = clip
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "remove": [{"frames": [0, 7], "box": boxes[4]}]}))
    out = tmp_path / "out.mp4"
    result = invoke(src, "-o", out, "--edits", edits, "--report", "-q")
    assert result.exit_code == 0, result.output
    change = face_change(src, out, _face_boxes(src))
    assert max(change[:8]) < UNCHANGED and min(change[8:]) > CHANGED
    assert json.loads((tmp_path / "out.mp4.audit.json").read_text())["edits"][0]["entry"] == (
        "remove[0]"
    )


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"version": 1, "add": [{"frames": [0, 1], "box": [9, 9, 1, 1]}]}, 2, "add[0].box: x2"),
        ({"version": 1, "remove": [{"frames": [3, 99], "box": [0, 0, 9, 9]}]}, 1, "remove[0]"),
        ({"version": 3}, 2, "version: unsupported version 3"),
    ],
)
def test_cli_bad_edit_lists_name_the_entry(
    clip: tuple[Path, list[list[float]]], tmp_path: Path, data: Any, code: int, message: str
) -> None:
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps(data))
    out = tmp_path / "out.mp4"
    result = invoke(clip[0], "-o", out, "--edits", edits, "-q")
    assert result.exit_code == code
    assert str(edits) in result.output and message in result.output
    assert not out.exists()


def test_cli_and_run_video_job_give_the_same_bytes(
    clip: tuple[Path, list[list[float]]], tmp_path: Path
) -> None:
    src, boxes = clip
    data = {"version": 1, "add": [{"frames": [2, 12], "box": boxes[6], "at": 6}]}
    (tmp_path / "edits.json").write_text(json.dumps(data))
    result = invoke(src, "-o", tmp_path / "cli.mp4", "--edits", tmp_path / "edits.json", "-q")
    assert result.exit_code == 0, result.output
    edits = EditList.from_dict(data)
    outcome = run_video_job(src, tmp_path / "api.mp4", RunConfig(), quiet=True, edits=edits)
    assert outcome.status == "done"
    assert file_sha256(tmp_path / "cli.mp4") == file_sha256(tmp_path / "api.mp4")


def test_following_can_run_first_with_its_own_progress(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], tmp_path: Path
) -> None:
    from veil.video.edits import prepare_edits

    src, boxes = clip
    edits = EditList.from_dict(
        {
            "version": 1,
            "add": [
                {"frames": [2, 12], "box": boxes[6], "at": 6},
                {"frames": [0, 3], "box": boxes[0], "track": False},
                {"frames": [9, 15], "box": boxes[9]},
            ],
        }
    )
    seen: list[tuple[int, int]] = []
    prepared = prepare_edits(src, edits, pipelines["blind"], progress=lambda *a: seen.append(a))
    assert seen == [(k, 16) for k in range(1, 17)]  # (12 - 2) + (15 - 9) frames followed
    assert sorted(prepared.tracks) == [0, 2] and prepared == edits
    assert prepare_edits(src, prepared, pipelines["blind"]) is prepared  # not followed again
    for name, listed in (("raw.mp4", edits), ("prepared.mp4", prepared)):
        anonymize_video(
            src, tmp_path / name, RunConfig(), pipeline=pipelines["blind"], edits=listed
        )
    assert file_sha256(tmp_path / "raw.mp4") == file_sha256(tmp_path / "prepared.mp4")


def test_veil_anonymize_takes_edits_for_one_video(
    clip: tuple[Path, list[list[float]]], tmp_path: Path
) -> None:
    from veil.cli import main

    src, boxes = clip
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "remove": [{"frames": [0, 5], "box": boxes[2]}]}))
    out = tmp_path / "out.mp4"
    args = ["anonymize", src, "-o", out, "--edits", edits, "-q"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    change = face_change(src, out, _face_boxes(src))
    assert max(change[:6]) < UNCHANGED and min(change[6:]) > CHANGED


def test_several_tracked_adds_share_one_decode_and_give_the_same_boxes(
    clip: tuple[Path, list[list[float]]], pipelines: dict[str, Pipeline], monkeypatch: Any
) -> None:
    import veil.video.edits as module

    src, boxes = clip
    adds = [
        {"frames": [0, 9], "box": boxes[4], "at": 4},
        {"frames": [5, 15], "box": boxes[15], "at": 15},
    ]
    one_by_one = [
        resolve_tracked_adds(
            src, EditList.from_dict({"version": 1, "add": [a]}), pipelines["blind"]
        )[0]
        for a in adds
    ]
    decodes: list[tuple[int, int]] = []
    frames = module._frames

    def counted(path: Path, first: int, last: int) -> Any:
        decodes.append((first, last))
        return frames(path, first, last)

    monkeypatch.setattr(module, "_frames", counted)
    together = resolve_tracked_adds(
        src, EditList.from_dict({"version": 1, "add": adds}), pipelines["blind"]
    )
    assert decodes == [(0, 15)]  # both ranges' frames in one pass
    assert together == {0: one_by_one[0], 1: one_by_one[1]}
    assert sorted(together[1]) == list(range(5, 16))
