"""RGB-D I/O (depth files, pairing, intrinsics, depth policies) and the CLI end to end."""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from veil.commands.rgbd import _Job, rgbd_command, synth_group
from veil.errors import BackendError, ConfigError, InputError
from veil.io.rgbd import (
    apply_depth_policy,
    pair_inputs,
    read_depth,
    read_intrinsics,
    write_depth,
)
from veil.pipeline import Pipeline
from veil.types import Faces

_REAL_RUN = _Job.run

SHARED_META = [
    {"name": "x", "intrinsics_est": {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5}}
]


def test_public_names() -> None:
    import veil.rgbd

    names = ("DepthMasker", "SynthFrame", "find_heads_without_faces", "make_scene")
    for name in (*names, "RGBDAnonymizer", "RGBDConfig", "RGBDResult"):
        assert hasattr(veil.rgbd, name)


def test_depth_png_round_trip_in_millimetres(tmp_path: Path) -> None:
    depth = np.array([[0.0, 1.2345], [2.5, 70.0]], np.float32)
    write_depth(tmp_path / "d.png", depth)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[0, 1234], [2500, 0]])  # past 65.535 m: invalid
    back = read_depth(tmp_path / "d.png")
    np.testing.assert_allclose(back, [[0, 1.234], [2.5, 0]], atol=1e-6)
    np.testing.assert_allclose(read_depth(tmp_path / "d.png", depth_scale=0.0001)[1, 0], 0.25)
    assert [p.name for p in tmp_path.iterdir()] == ["d.png"], "no temporary file left"


def test_depth_npy_round_trip(tmp_path: Path) -> None:
    depth = np.random.default_rng(0).uniform(0.5, 5, (6, 8)).astype(np.float32)
    write_depth(tmp_path / "d.npy", depth)
    np.testing.assert_array_equal(read_depth(tmp_path / "d.npy"), depth)
    np.save(tmp_path / "nan.npy", np.array([[np.nan, -1.0, 2.0]]))
    np.testing.assert_array_equal(read_depth(tmp_path / "nan.npy"), [[0, 0, 2]])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rgb.npy", np.zeros((4, 4, 3), np.float32), "single-channel"),
        ("bytes.npy", np.zeros((4, 4), np.uint8), "16-bit"),
        ("missing.png", None, "not found"),
    ],
)
def test_bad_depth_names_the_file(tmp_path: Path, name: str, content: object, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    with pytest.raises(InputError, match=message) as err:
        read_depth(path)
    assert str(path) in str(err.value)


def test_intrinsics_layouts(tmp_path: Path) -> None:
    layouts = [
        {"fx": 500, "fy": 501, "cx": 320, "cy": 240},
        {"intrinsics": {"fx": 500, "fy": 501, "cx": 320, "cy": 240}},
        {"K": [[500, 0, 320], [0, 501, 240], [0, 0, 1]]},
    ]
    for i, data in enumerate(layouts):
        (tmp_path / f"{i}.json").write_text(json.dumps(data))
        assert read_intrinsics(tmp_path / f"{i}.json") == {
            "fx": 500,
            "fy": 501,
            "cx": 320,
            "cy": 240,
        }
    (tmp_path / "meta.json").write_text(json.dumps(SHARED_META))
    assert read_intrinsics(tmp_path / "meta.json")["cx"] == 319.5
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match=r"bad\.json"):
        read_intrinsics(tmp_path / "bad.json")


def test_pairing_rules(tmp_path: Path) -> None:
    grey = np.zeros((4, 4, 3), np.uint8)
    for folder, names in (("color", ["0001.png", "0002.png"]), ("depth", ["0001.png", "0002.png"])):
        for n in names:
            (tmp_path / "seq" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(grey).save(tmp_path / "seq" / folder / n)
    pairs = pair_inputs(tmp_path / "seq", None)
    assert [(p.color.parent.name, p.depth.parent.name, p.key) for p in pairs] == [
        ("color", "depth", "0001"),
        ("color", "depth", "0002"),
    ]
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(grey).save(flat / "a_color.png")
    np.save(flat / "a_depth.npy", np.ones((4, 4), np.float32))
    Image.fromarray(grey).save(flat / "b_color.png")
    with pytest.raises(InputError, match=r"b_color\.png"):
        pair_inputs(flat, None)
    (flat / "b_color.png").unlink()
    [pair] = pair_inputs(flat, None)
    assert pair.depth.name == "a_depth.npy" and pair.key == "a"


def test_depth_policies_remove_relief_inside_masks_only() -> None:
    ys, xs = np.mgrid[0:40, 0:40]
    relief = 2.0 + 0.03 * np.exp(-((xs - 20.0) ** 2 + (ys - 20.0) ** 2) / 40)
    depth = relief.astype(np.float32)
    depth[0, 0] = 0
    mask = np.zeros((1, 40, 40), bool)
    mask[0, 10:30, 10:30] = True
    assert np.array_equal(apply_depth_policy(depth, mask, "keep"), depth)
    flat = apply_depth_policy(depth, mask, "flatten")
    assert np.ptp(flat[10:30, 10:30]) < 0.01 < np.ptp(depth[10:30, 10:30])
    assert np.array_equal(flat[~mask[0]], depth[~mask[0]])
    noisy = apply_depth_policy(depth, mask, "noise", rng=np.random.default_rng(0))
    assert 0.01 < np.std(noisy[10:30, 10:30]) < 0.04
    with pytest.raises(ConfigError, match="keep"):
        apply_depth_policy(depth, mask, "blur")


@pytest.fixture(scope="module")
def cli() -> click.Group:
    group = click.Group("veil")
    group.add_command(synth_group)
    group.add_command(rgbd_command)
    return group


def test_synth_then_anonymize_end_to_end(tmp_path: Path, cli: click.Group) -> None:
    runner = CliRunner()
    scene = tmp_path / "scene"
    res = runner.invoke(
        cli, ["synth", "rgbd", str(scene), "--frames", "2", "--people", "3", "--seed", "4"]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (scene / "color").iterdir()) == ["0000.png", "0001.png"]
    heads = np.asarray(Image.open(scene / "gt" / "0000_heads.png"))
    assert set(np.unique(heads)) == {0, 1, 2, 3}
    k = read_intrinsics(scene / "intrinsics.json")
    assert k["fx"] == 525.0
    out = tmp_path / "out"
    res = runner.invoke(cli, ["rgbd", str(scene), "-o", str(out), "--heads", "--seed", "1"])
    assert res.exit_code == 0, res.output
    before = np.asarray(Image.open(scene / "color" / "0000.png")).astype(int)
    after = np.asarray(Image.open(out / "color" / "0000.png")).astype(int)
    changed = np.abs(after - before).sum(axis=2) > 0
    for label in (1, 2, 3):  # every head changed, faces visible or not
        assert changed[heads == label].mean() > 0.5, label
    assert changed[heads == 0].mean() < 0.1
    d_in, d_out = read_depth(scene / "depth" / "0000.png"), read_depth(out / "depth" / "0000.png")
    assert d_out.shape == d_in.shape
    assert not np.array_equal(d_in[heads == 1], d_out[heads == 1]), "facial relief flattened"
    far = (heads == 0) & ~changed
    np.testing.assert_array_equal(d_in[far], d_out[far])


def test_mismatched_depth_fails_that_pair(tmp_path: Path, cli: click.Group) -> None:
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "x_color.png")
    write_depth(tmp_path / "x_depth.png", np.ones((40, 64), np.float32))
    res = CliRunner().invoke(cli, ["rgbd", str(tmp_path), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "x_depth.png" in res.output
    assert not (tmp_path / "o" / "color").exists()


@pytest.fixture(scope="module")
def walking(tmp_path_factory: pytest.TempPathFactory, cli: click.Group) -> Path:
    """Six frames of one person walking, face visible throughout."""
    scene = tmp_path_factory.mktemp("walking") / "scene"
    args = ["synth", "rgbd", str(scene), "--frames", "6", "--people", "1", "--seed", "4"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return scene


def _scripted_detector(
    monkeypatch: pytest.MonkeyPatch,
    blink: set[int] = frozenset(),
    crash: set[int] = frozenset(),  # type: ignore[assignment]
) -> list[int]:
    """Full detections (``Pipeline.detect``, and ``detect_keyframe`` when tracking) find
    nothing on calls in ``blink`` and raise on those in ``crash``; returns the list of
    calls made."""
    calls: list[int] = []

    def scripted(real: Callable[[Pipeline, np.ndarray], Faces]) -> Callable[..., Faces]:
        def detect(self: Pipeline, image: np.ndarray) -> Faces:
            calls.append(len(calls))
            if calls[-1] in crash:
                raise BackendError(f"model exploded on call {calls[-1]}")
            return Faces.empty() if calls[-1] in blink else real(self, image)

        return detect

    for name in ("detect", "detect_keyframe"):
        monkeypatch.setattr(Pipeline, name, scripted(getattr(Pipeline, name)))
    return calls


def _head_changed(scene: Path, out: Path, name: str) -> float:
    """Share of person 1's head pixels that differ in the output colour ``name``."""
    head = np.asarray(Image.open(scene / "gt" / f"{Path(name).stem}_heads.png")) == 1
    before = np.asarray(Image.open(scene / "color" / name)).astype(int)
    after = np.asarray(Image.open(out / "color" / name)).astype(int)
    return float((np.abs(after - before).sum(axis=2) > 0)[head].mean())


@pytest.mark.parametrize(("flags", "tracked"), [([], True), (["--no-tracking"], False)])
def test_sequence_tracking_masks_faces_the_detector_misses(
    tmp_path: Path,
    cli: click.Group,
    walking: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    tracked: bool,
) -> None:
    calls = _scripted_detector(monkeypatch, blink={2, 3})
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["rgbd", str(walking), "-o", str(out), *flags])
    assert res.exit_code == 0, res.output
    assert len(calls) == 6, "one full detection per frame"
    for name in ("0000.png", "0001.png", "0004.png", "0005.png"):
        assert _head_changed(walking, out, name) > 0.5, name
    for name in ("0002.png", "0003.png"):  # the detector missed the face here
        changed = _head_changed(walking, out, name)
        assert changed > 0.5 if tracked else changed < 0.1, (name, changed)
    assert ("2 of them from tracking only" in res.output) is tracked


def test_speed_mode_writes_every_frame_with_fewer_detections(
    tmp_path: Path, cli: click.Group, walking: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _scripted_detector(monkeypatch)
    out = tmp_path / "out"
    args = ["rgbd", str(walking), "-o", str(out), "--detect-every", "3", "--lookahead", "2"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (walking / "color").iterdir())
    assert sorted(p.name for p in (out / "color").iterdir()) == names
    assert sorted(p.name for p in (out / "depth").iterdir()) == names
    assert len(calls) < 6, "full detections only every 3rd frame (plus re-checks)"
    for name in names:
        assert _head_changed(walking, out, name) > 0.5, name


@pytest.mark.parametrize("failure", ["unreadable colour", "detection fails"])
def test_failing_pair_mid_sequence_gets_no_output(
    tmp_path: Path,
    cli: click.Group,
    walking: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    scene = tmp_path / "scene"
    shutil.copytree(walking, scene)
    if failure == "unreadable colour":
        (scene / "color" / "0002.png").write_bytes(b"not a png")
    else:
        _scripted_detector(monkeypatch, crash={2})
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["rgbd", str(scene), "-o", str(out)])
    assert res.exit_code == 1
    assert "0002.png" in res.output and "5 pairs anonymized" in res.output
    rest = ["0000.png", "0001.png", "0003.png", "0004.png", "0005.png"]
    assert sorted(p.name for p in (out / "color").iterdir()) == rest
    assert sorted(p.name for p in (out / "depth").iterdir()) == rest
    for name in rest:  # the frames after the failure are still tracked and masked
        assert _head_changed(walking, out, name) > 0.5, name


def test_speed_mode_needs_tracking(tmp_path: Path, cli: click.Group, walking: Path) -> None:
    args = ["rgbd", str(walking), "-o", str(tmp_path / "o"), "--no-tracking", "--detect-every", "2"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "needs tracking" in res.output
    assert not (tmp_path / "o").exists()


def test_help_documents_sequence_options(cli: click.Group) -> None:
    res = CliRunner().invoke(cli, ["rgbd", "--help"])
    assert res.exit_code == 0
    for text in ("--head-margin METRES", "--no-tracking", "--detect-every", "--lookahead"):
        assert text in res.output


def test_missing_intrinsics_are_warned_about(
    tmp_path: Path, cli: click.Group, walking: Path
) -> None:
    out = tmp_path / "out"
    with_k = CliRunner().invoke(cli, ["rgbd", str(walking), "-o", str(out), "--heads"])
    assert with_k.exit_code == 0, with_k.output
    assert "no intrinsics" not in with_k.output
    bare = tmp_path / "bare"
    for sub in ("color", "depth"):
        (bare / sub).mkdir(parents=True)
        for f in sorted((walking / sub).iterdir())[:2]:
            (bare / sub / f.name).write_bytes(f.read_bytes())
    res = CliRunner().invoke(cli, ["rgbd", str(bare), "-o", str(tmp_path / "o2"), "--heads"])
    assert res.exit_code == 0, res.output
    assert "warning: no intrinsics" in res.output and "Kinect-like lens" in res.output


def test_help_does_not_recommend_a_depth_shift(cli: click.Group) -> None:
    text = " ".join(CliRunner().invoke(cli, ["rgbd", "--help"]).output.split())
    assert "Keep 0,0" in text and "--head-margin 0.04" in text


def test_overlapped_stages_write_the_same_bytes_as_serial(
    tmp_path: Path, cli: click.Group, walking: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading, tracking and writing overlap; the outputs are those of one pair after the
    other, byte for byte, with a pair failing in the middle (no output for it)."""
    scene = tmp_path / "scene"
    shutil.copytree(walking, scene)
    (scene / "depth" / "0003.png").write_bytes(b"not a png")
    calls = _scripted_detector(monkeypatch, blink={1, 6})  # frame 1 of either run
    outputs = {}
    for stages in (True, False):
        monkeypatch.setattr(_Job, "run", functools.partialmethod(_REAL_RUN, stages=stages))
        out = tmp_path / f"stages-{stages}"
        args = ["rgbd", str(scene), "-o", str(out), "--heads", "--depth-policy", "noise"]
        res = CliRunner().invoke(cli, [*args, "--seed", "2"])
        assert res.exit_code == 1 and "0003.png" in res.output, res.output
        assert "5 pairs anonymized" in res.output and "1 of them from tracking" in res.output
        outputs[stages] = {
            p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))
        }
    assert len(calls) == 10, "one detection per readable frame in each run"
    assert len(outputs[True]) == 10 and "color/0003.png" not in outputs[True]
    assert outputs[True] == outputs[False]
    assert _head_changed(walking, tmp_path / "stages-True", "0001.png") > 0.5


def test_a_real_face_is_anonymized_through_the_staged_command(
    tmp_path: Path, cli: click.Group
) -> None:
    """The staged `veil rgbd` (read | detect | track | finish | write) on pairs holding a
    real face (the astronaut) in front of a wall: the face changes in every pair, the wall
    far from it does not, depth is written for every pair."""
    from factories import face_on_canvas

    src = tmp_path / "pairs"
    for i in range(4):
        color, box = face_on_canvas(scale=0.6, offset=(20 + 6 * i, 10), canvas=(240, 320))
        x0, y0, x1, y1 = box.astype(int)
        depth = np.full((240, 320), 3.0, np.float32)  # the wall
        depth[max(y0 - 20, 0) : y1 + 60, max(x0 - 10, 0) : x1 + 10] = 1.2  # head and body
        (src / "color").mkdir(parents=True, exist_ok=True)
        Image.fromarray(color).save(src / "color" / f"{i:04d}.png")
        write_depth(src / "depth" / f"{i:04d}.png", depth)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["rgbd", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    for i in range(4):
        before = np.asarray(Image.open(src / "color" / f"{i:04d}.png")).astype(int)
        after = np.asarray(Image.open(out / "color" / f"{i:04d}.png")).astype(int)
        _, box = face_on_canvas(scale=0.6, offset=(20 + 6 * i, 10), canvas=(240, 320))
        x0, y0, x1, y1 = box.astype(int)
        assert np.abs(after[y0:y1, x0:x1] - before[y0:y1, x0:x1]).mean() > 15, i
        assert np.array_equal(after[-40:, -60:], before[-40:, -60:]), i  # far wall untouched
        assert (out / "depth" / f"{i:04d}.png").is_file()
