"""Edit lists (veil.edits): the schema, its errors, and what applying one does to faces
and to real images (pixels checked)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from factories import face_on_canvas
from veil.config import DetectorConfig, RunConfig
from veil.edits import (
    IOU,
    AddEdit,
    EditList,
    EditLog,
    MethodEdit,
    RemoveEdit,
    load_edits,
    save_edits,
)
from veil.errors import InputError
from veil.pipeline import Pipeline
from veil.types import Faces

FULL = {
    "version": 1,
    "add": [
        {"frames": [2, 9], "box": [10, 20, 50, 70], "track": True, "at": 4, "method": "pixelate"},
        {"frames": [0, 0], "box": [1.5, 2.5, 3.5, 4.5], "track": False},
    ],
    "remove": [{"frames": [3, 3], "box": [100, 100, 140, 150]}],
    "methods": [{"frames": [0, 99], "box": [0, 0, 30, 30], "method": "solid"}],
}


def test_every_field_is_read_and_written_back(tmp_path: Path) -> None:
    edits = EditList.from_dict(FULL, source="e.json")
    assert edits.add[0] == AddEdit((2, 9), (10.0, 20.0, 50.0, 70.0), True, 4, "pixelate")
    assert edits.add[0].seed_frame == 4
    assert edits.add[1] == AddEdit((0, 0), (1.5, 2.5, 3.5, 4.5), track=False)
    assert edits.add[1].seed_frame == 0  # "at" defaults to the first frame
    assert edits.remove == (RemoveEdit((3, 3), (100.0, 100.0, 140.0, 150.0)),)
    assert edits.methods == (MethodEdit((0, 99), (0.0, 0.0, 30.0, 30.0), "solid"),)
    assert EditList.from_dict(edits.to_dict()) == edits
    path = tmp_path / "edits.json"
    save_edits(path, edits)
    assert load_edits(path) == edits
    assert json.loads(path.read_text())["add"][1] == {
        "frames": [0, 0],
        "box": [1.5, 2.5, 3.5, 4.5],
        "track": False,
    }
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left over


def test_defaults_and_empty_lists() -> None:
    edits = EditList.from_dict({"version": 1, "add": [{"frames": [0, 0], "box": [0, 0, 1, 1]}]})
    assert edits.add[0].track is True and edits.add[0].at is None and edits.add[0].method is None
    assert not EditList.from_dict({"version": 1}) and edits


def _with(kind: str, entry: Any) -> dict[str, Any]:
    """A list whose ``kind[1]`` is ``entry`` (``kind[0]`` valid)."""
    valid: dict[str, Any] = {"frames": [0, 0], "box": [0, 0, 9, 9]}
    if kind == "methods":
        valid["method"] = "pixelate"
    return {"version": 1, kind: [valid, entry]}


BOX = [0, 0, 9, 9]
MALFORMED = [
    ([], "expected a JSON object"),
    ({}, "edit list: missing key 'version'"),
    ({"version": 2}, "version: unsupported version 2"),
    ({"version": True}, "version: unsupported version True"),
    ({"version": 1, "adds": []}, "edit list: unknown key 'adds'"),
    ({"version": 1, "add": {}}, "add: expected a list"),
    (_with("add", "x"), "add[1]: expected an object"),
    (_with("add", {"frames": [0, 0]}), "add[1]: missing key 'box'"),
    (_with("add", {"frames": [0, 0], "box": BOX, "colour": 1}), "add[1]: unknown key 'colour'"),
    (_with("add", {"frames": [0], "box": BOX}), "add[1].frames: expected [first, last]"),
    (_with("add", {"frames": [0, 1.5], "box": BOX}), "add[1].frames: expected a whole frame"),
    (_with("add", {"frames": [-1, 2], "box": BOX}), "add[1].frames: frame numbers start at 0"),
    (_with("add", {"frames": [5, 2], "box": BOX}), "add[1].frames: last frame 2 is before"),
    (_with("add", {"frames": [0, 0], "box": [5, 0, 3, 4]}), "add[1].box: x2 must be greater"),
    (_with("add", {"frames": [0, 0], "box": [0, 5, 3, 5]}), "add[1].box: y2 must be greater"),
    (_with("add", {"frames": [0, 0], "box": [-1, 0, 3, 4]}), "add[1].box: coordinates must be"),
    (_with("add", {"frames": [0, 0], "box": [0, 0, 3]}), "add[1].box: expected [x1, y1, x2, y2]"),
    (_with("add", {"frames": [0, 0], "box": [0, 0, "3", 4]}), "add[1].box: expected four"),
    (_with("add", {"frames": [0, 0], "box": [0, 0, math.inf, 4]}), "add[1].box: expected four"),
    (_with("add", {"frames": [0, 0], "box": BOX, "track": 1}), "add[1].track: expected true"),
    (_with("add", {"frames": [2, 4], "box": BOX, "at": 5}), "add[1].at: frame 5 is outside"),
    (_with("add", {"frames": [0, 0], "box": BOX, "method": "x"}), "add[1].method: unknown method"),
    (_with("remove", {"frames": [0, 0], "box": BOX, "track": True}), "remove[1]: unknown key"),
    (_with("remove", {"frames": [3, 1], "box": BOX}), "remove[1].frames: last frame 1"),
    (_with("methods", {"frames": [0, 0], "box": BOX}), "methods[1]: missing key 'method'"),
    (
        _with("methods", {"frames": [0, 0], "box": BOX, "method": ""}),
        "methods[1].method: expected a method name",
    ),
    (
        _with("methods", {"frames": [0, 0], "box": BOX, "method": "smudge"}),
        "methods[1].method: unknown method 'smudge'; choose one of: ",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_lists_name_the_file_and_entry(data: Any, message: str) -> None:
    with pytest.raises(InputError) as err:
        EditList.from_dict(data, source="edits.json")
    assert str(err.value).startswith("edits.json: ")
    assert message in str(err.value)


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        load_edits(bad)
    with pytest.raises(InputError, match=r"missing\.json: cannot read edit list"):
        load_edits(tmp_path / "missing.json")
    bad.write_text(json.dumps(_with("add", {"frames": [0, 0], "box": [4, 0, 2, 2]})))
    with pytest.raises(InputError, match=r"bad\.json: add\[1\]\.box: x2 must be greater than x1"):
        load_edits(bad)


@pytest.mark.parametrize(
    ("data", "frame_count", "message"),
    [
        ({"remove": [{"frames": [0, 10], "box": BOX}]}, 10, "remove[0].frames: frame 10 is beyond"),
        ({"add": [{"frames": [0, 1], "box": BOX}]}, 1, "an image has only frame 0"),
        ({"add": [{"frames": [0, 0], "box": [320, 0, 330, 9]}]}, 1, "add[0].box: [320.0"),
        ({"methods": [{"frames": [0, 0], "box": [0, 240, 9, 250], "method": "solid"}]}, 1, "240"),
    ],
)
def test_entries_beyond_the_media_are_errors(
    data: dict[str, Any], frame_count: int, message: str
) -> None:
    edits = EditList.from_dict({"version": 1, **data}, source="e.json")
    with pytest.raises(InputError) as err:
        edits.check_media(width=320, height=240, frame_count=frame_count)
    assert str(err.value).startswith("e.json: ") and message in str(err.value)
    edits.check_media(width=400, height=300, frame_count=None)  # unknown length: not checked


def test_the_last_frame_of_the_media_is_allowed() -> None:
    edits = EditList.from_dict({"version": 1, "remove": [{"frames": [3, 9], "box": BOX}]})
    edits.check_media(width=10, height=10, frame_count=10)


FACE = [100.0, 100.0, 160.0, 170.0]
OTHER = [10.0, 10.0, 50.0, 60.0]


def _faces(*boxes: list[float], tracked: bool = False) -> Faces:
    n = len(boxes)
    track = np.arange(n) + 1 if tracked else None
    data = {"source": ["detected"] * n} if tracked else {}
    return Faces(np.array(boxes, np.float32), np.full(n, 0.9), track_id=track, data=data)


def _shift(box: list[float], dx: float) -> list[float]:
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


def test_remove_drops_overlapping_detections_on_its_frames_only() -> None:
    edits = EditList.from_dict({"version": 1, "remove": [{"frames": [3, 5], "box": FACE}]})
    faces = _faces(_shift(FACE, 20), OTHER, tracked=True)  # IoU 0.5 with the remove box
    for frame, gone in [(2, False), (3, True), (4, True), (5, True), (6, False)]:
        done = edits.apply(frame, faces, shape=(240, 320))
        assert len(done.removed) == int(gone), frame  # inclusive ends, nothing outside
        assert len(done.faces) == 2 - int(gone)
        if gone:
            assert done.removed.data["edit"] == ["remove[0]"]
            assert done.removed.xyxy[0].tolist() == _shift(FACE, 20)
            assert done.changes == [("remove[0]", tuple(_shift(FACE, 20)))]
            assert done.faces.xyxy.tolist() == [OTHER]  # the other face is still anonymized


def test_remove_needs_an_iou_of_0_3() -> None:
    edits = EditList.from_dict({"version": 1, "remove": [{"frames": [0, 0], "box": FACE}]})
    # 60 px wide boxes: a shift of dx leaves IoU (60 - dx) / (60 + dx)
    near, far = _shift(FACE, 27), _shift(FACE, 33)
    assert IOU == 0.3
    done = edits.apply(0, _faces(near, far), shape=(240, 320))
    assert done.removed.xyxy.tolist() == [near] and done.faces.xyxy.tolist() == [far]


def test_untracked_add_is_the_drawn_box_on_its_frames_clipped_to_the_picture() -> None:
    edits = EditList.from_dict(
        {"version": 1, "add": [{"frames": [1, 2], "box": [300, 200, 340, 260], "track": False}]}
    )
    for frame in (0, 3):
        assert len(edits.apply(frame, _faces(OTHER), shape=(240, 320)).faces) == 1
    done = edits.apply(2, _faces(OTHER, tracked=True), shape=(240, 320))
    assert done.faces.xyxy.tolist() == [OTHER, [300, 200, 320, 240]]
    assert done.faces.scores.tolist() == [pytest.approx(0.9), 1.0]  # type: ignore[union-attr]
    assert done.faces.track_id.tolist() == [1, -1]  # type: ignore[union-attr]
    assert done.faces.data["source"] == ["detected", "edit"]
    assert done.faces.data["edit"] == [None, "add[0]"]
    assert done.changes == [("add[0]", (300.0, 200.0, 320.0, 240.0))]


def test_tracked_add_uses_the_followed_boxes_and_its_drawn_box_elsewhere() -> None:
    edits = EditList.from_dict({"version": 1, "add": [{"frames": [0, 3], "box": FACE}]})
    followed = edits.with_tracks({0: {1: tuple(_shift(FACE, 8))}})
    assert followed == edits  # the followed boxes are not part of the list
    assert followed.apply(1, Faces.empty(), shape=(240, 320)).faces.xyxy.tolist() == [
        _shift(FACE, 8)
    ]
    assert followed.apply(2, Faces.empty(), shape=(240, 320)).faces.xyxy.tolist() == [FACE]
    assert len(followed.apply(4, Faces.empty(), shape=(240, 320)).faces) == 0


def test_methods_pick_the_method_of_overlapping_faces() -> None:
    data = {
        "version": 1,
        "methods": [
            {"frames": [0, 4], "box": FACE, "method": "pixelate"},
            {"frames": [0, 4], "box": _shift(FACE, 2), "method": "solid"},
        ],
        "add": [{"frames": [0, 0], "box": OTHER, "method": "noise"}],
    }
    edits = EditList.from_dict(data)
    done = edits.apply(0, _faces(_shift(FACE, 1), [200, 10, 240, 60]), shape=(240, 320))
    assert done.faces.data["method"] == ["pixelate", None, "noise"]  # best IoU wins
    assert done.faces.data["edit"] == ["methods[0]", None, "add[0]"]
    assert edits.apply(5, _faces(FACE), shape=(240, 320)).faces.data["method"] == [None]


def test_edit_log_records_each_entry_with_what_it_changed() -> None:
    edits = EditList.from_dict(FULL)
    log = EditLog(edits)
    for frame in range(4):
        log.add(frame, edits.apply(frame, _faces([100, 100, 140, 150]), shape=(240, 320)).changes)
    records = {r["entry"]: r for r in log.records()}
    assert list(records) == ["add[0]", "add[1]", "remove[0]", "methods[0]"]
    add = records["add[0]"]
    assert (add["kind"], add["index"], add["frames"], add["track"]) == ("add", 0, [2, 9], True)
    assert add["frames_changed"] == 2 and [c["frame"] for c in add["changed"]] == [2, 3]
    assert records["add[1]"]["changed"] == [{"frame": 0, "box": [1.5, 2.5, 3.5, 4.5]}]
    assert records["remove[0]"]["changed"] == [{"frame": 3, "box": [100, 100, 140, 150]}]
    assert records["methods[0]"]["frames_changed"] == 0  # its box overlaps no face


# -- on real images ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.from_config(RunConfig())


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, list[float]]:
    image, box = face_on_canvas(scale=0.6, offset=(60, 0), canvas=(240, 320))
    return image, [float(v) for v in box]


def _changed(a: np.ndarray, b: np.ndarray, box: list[float]) -> float:
    x0, y0, x1, y1 = (int(v) for v in box)
    return float(np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1]).mean())


def test_removing_a_detected_face_leaves_the_image_as_it_was(
    pipeline: Pipeline, photo: tuple[np.ndarray, list[float]]
) -> None:
    image, face = photo
    plain = pipeline.process(image)
    assert len(plain.faces) == 1 and _changed(image, plain.image, face) > 10
    edits = EditList.from_dict({"version": 1, "remove": [{"frames": [0, 0], "box": face}]})
    result = pipeline.process(image, edits=edits)
    assert np.array_equal(result.image, image) and len(result.faces) == 0
    assert len(result.removed) == 1 and result.removed.data["edit"] == ["remove[0]"]


def test_an_added_box_is_anonymized_when_the_detector_misses_the_face(
    photo: tuple[np.ndarray, list[float]],
) -> None:
    image, face = photo
    blind = Pipeline.from_config(RunConfig(detector=DetectorConfig(threshold=0.999)))
    assert len(blind.process(image).faces) == 0
    edits = EditList.from_dict({"version": 1, "add": [{"frames": [0, 0], "box": face}]})
    result = blind.process(image, edits=edits)
    assert _changed(image, result.image, face) > 10
    x0, y0, x1, y1 = (int(v) for v in face)
    outside = np.ones(image.shape[:2], bool)
    outside[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    assert np.array_equal(result.image[outside], image[outside])  # only around the box
    assert result.faces.data["edit"] == ["add[0]"]


def test_a_method_entry_changes_how_that_face_is_anonymized(
    pipeline: Pipeline, photo: tuple[np.ndarray, list[float]]
) -> None:
    image, face = photo
    data = {"version": 1, "methods": [{"frames": [0, 0], "box": face, "method": "solid"}]}
    result = pipeline.process(image, edits=EditList.from_dict(data))
    solid = Pipeline.from_config(RunConfig.from_dict({"anonymizer": {"method": "solid"}}))
    assert np.array_equal(result.image, solid.process(image).image)
    assert not np.array_equal(result.image, pipeline.process(image).image)


# -- veil anonymize --edits ------------------------------------------------------------


def _cli(*args: object) -> Any:
    from click.testing import CliRunner

    from veil.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_cli_applies_an_edit_list_to_one_image_and_audits_it(
    tmp_path: Path, photo: tuple[np.ndarray, list[float]]
) -> None:
    image, face = photo
    src = _png(tmp_path / "photo.png", image)
    corner = [10.0, 150.0, 70.0, 230.0]  # no face there: a reviewer's extra box
    edits = tmp_path / "edits.json"
    edits.write_text(
        json.dumps(
            {
                "version": 1,
                "remove": [{"frames": [0, 0], "box": face}],
                "add": [{"frames": [0, 0], "box": corner, "track": False}],
            }
        )
    )
    out = tmp_path / "out.png"
    result = _cli("anonymize", src, "-o", out, "--edits", edits, "--report", "-q")
    assert result.exit_code == 0, result.output
    anonymized = _read(out)
    assert _changed(image, anonymized, face) == 0  # the removed detection: untouched
    assert _changed(image, anonymized, corner) > 10  # the added box: anonymized
    audit = json.loads((tmp_path / "out.png.audit.json").read_text())
    assert [f["edit"] for f in audit["faces"]] == ["add[0]"]
    assert audit["removed"][0]["edit"] == "remove[0]" and audit["removed"][0]["score"] > 0.5
    entries = {e["entry"]: e for e in audit["edits"]}
    assert entries["remove[0]"]["frames_changed"] == 1
    assert entries["add[0]"]["changed"] == [{"frame": 0, "box": corner}]


@pytest.mark.parametrize("several", ["two files", "a folder"])
def test_cli_refuses_edits_for_several_inputs(
    tmp_path: Path, photo: tuple[np.ndarray, list[float]], several: str
) -> None:
    image, face = photo
    a = _png(tmp_path / "a.png", image)
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "remove": [{"frames": [0, 0], "box": face}]}))
    inputs = [a, _png(tmp_path / "b.png", image)] if several == "two files" else [tmp_path]
    result = _cli("anonymize", *inputs, "-o", tmp_path / "out", "--edits", edits)
    assert result.exit_code == 2
    assert "--edits applies to exactly one input file" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_image_edit_list_for_other_frames(
    tmp_path: Path, photo: tuple[np.ndarray, list[float]]
) -> None:
    image, face = photo
    src = _png(tmp_path / "a.png", image)
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"version": 1, "add": [{"frames": [0, 3], "box": face}]}))
    result = _cli("anonymize", src, "-o", tmp_path / "out.png", "--edits", edits)
    assert result.exit_code == 1
    assert "add[0].frames: frame 3 is beyond the end; an image has only frame 0" in result.output
    assert not (tmp_path / "out.png").exists()


def test_run_image_job_and_the_cli_give_the_same_bytes(
    tmp_path: Path, photo: tuple[np.ndarray, list[float]], pipeline: Pipeline
) -> None:
    import veil
    from veil.runner import run_image_job

    assert veil.EditList is EditList and veil.load_edits is load_edits
    image, face = photo
    src = _png(tmp_path / "photo.png", image)
    edits = EditList.from_dict(
        {"version": 1, "methods": [{"frames": [0, 0], "box": face, "method": "pixelate"}]}
    )
    save_edits(tmp_path / "edits.json", edits)
    outcome = run_image_job(src, tmp_path / "api.png", RunConfig(), pipeline=pipeline, edits=edits)
    assert outcome.status == "done" and outcome.faces == 1
    result = _cli("anonymize", src, "-o", tmp_path / "cli.png", "--edits", tmp_path / "edits.json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "api.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
    assert _changed(image, _read(tmp_path / "api.png"), face) > 10
    bad = run_image_job(
        src,
        tmp_path / "bad.png",
        RunConfig(),
        pipeline=pipeline,
        edits=EditList(add=(AddEdit((0, 2), (0.0, 0.0, 9.0, 9.0)),), source="page"),
    )
    assert bad.status == "failed" and "page: add[0].frames" in str(bad.error)
    assert not (tmp_path / "bad.png").exists()
