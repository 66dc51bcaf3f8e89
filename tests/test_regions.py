"""Regions (--region, --exclude-region, --regions-file): parsing, the fail-safe rules on
boxes, and every command on real faces (the packaged astronaut and cameraman)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from factories import box_change as changed
from factories import load_rgb as load
from factories import run_cli as run
from factories import save_png as save
from factories import two_people
from veil.config import RegionConfig, RunConfig
from veil.errors import ConfigError, InputError
from veil.regions import (
    RegionFilter,
    load_regions_file,
    parse_box,
    rasterize,
    region_config,
    region_records,
)
from veil.types import Faces

SIZE = (300, 640)  # canvas: the astronaut on the left half, the cameraman on the right


def split(config: RegionConfig, boxes: list[tuple[float, ...]], shape=(100, 200)) -> list:  # type: ignore[no-untyped-def]
    """The region reason of each box (None = anonymized)."""
    return RegionFilter(config).reasons(Faces(xyxy=np.array(boxes, np.float32)), shape)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "error"),
    [
        ("10,20,110,220", ((10, 20), (110, 20), (110, 220), (10, 220)), None),
        ("0.5, 0, 1, 0.3", ((0.5, 0), (1, 0), (1, 0.3), (0.5, 0.3)), None),
        ("0,0,1,1", ((0, 0), (1, 0), (1, 1), (0, 1)), None),  # fractions: the whole frame
        ("10,20,110", None, "expected four numbers"),
        ("a,b,c,d", None, "expected four numbers"),
        ("10,20,110,nan", None, "expected four numbers"),
        ("110,20,10,220", None, "x1 < x2"),
        ("-5,0,10,10", None, "0 <= x1"),
        ("0.5,0,640,360", None, "mixes fractions"),
    ],
)
def test_box_syntax(text: str, expected: object, error: str | None) -> None:
    if error is None:
        assert parse_box(text) == expected
    else:
        with pytest.raises(ConfigError, match=error) as info:
            parse_box(text)
        assert repr(text) in str(info.value)  # the message names the box as given


def test_pixel_box_covers_exactly_its_pixels_and_fractions_scale_with_the_frame() -> None:
    mask = rasterize([parse_box("2,3,6,5")], (8, 10))
    expected = np.zeros((8, 10), bool)
    expected[3:5, 2:6] = True
    np.testing.assert_array_equal(mask, expected)
    half = parse_box("0.5,0,1,1")
    for shape in ((10, 20), (30, 64)):
        m = rasterize([half], shape)
        assert m[:, shape[1] // 2 :].all() and not m[:, : shape[1] // 2].any()


def test_polygon_is_filled_by_pixel_centres() -> None:
    triangle = ((0, 0), (10, 0), (0, 10))
    mask = rasterize([triangle], (10, 10))
    yy, xx = np.mgrid[0:10, 0:10]
    inside = (xx + 0.5) + (yy + 0.5) < 10  # strictly inside the hypotenuse
    assert (mask | ~inside).all()  # every pixel centre inside is in the mask
    assert not mask[9, 9] and not mask[5, 9]


def test_random_polygons_match_a_plain_even_odd_test() -> None:
    """Every pixel centre against the polygon by ray casting, on random (self-crossing)
    polygons in pixels and fractions."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(8, 40, 2))
        n = int(rng.integers(3, 9))
        scale = (1.0, 1.0) if rng.random() < 0.5 else (w * 1.2, h * 1.2)
        polygon = tuple(
            (float(x), float(y)) for x, y in rng.uniform(0, 1, (n, 2)) * np.array(scale)
        )
        pts = np.array(polygon) * (np.array([w, h]) if max(scale) == 1.0 else 1.0)
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        inside = np.zeros((h, w), bool)
        for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0), strict=True):
            if y0 == y1:
                continue
            crosses = (np.minimum(y0, y1) <= yy) & (yy < np.maximum(y0, y1))
            x_at = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
            inside ^= crosses & (x_at <= xx)
        np.testing.assert_array_equal(rasterize([polygon], (h, w)), inside)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"include": [[[0, 0], [1, 0]]]}', "needs 3 to 1000 points, got 2"),
        (json.dumps({"include": [[[0, 0], [1, 0], [1, 1]]] * 65}), "at most 64, got 65"),
        ("\ufeff" + json.dumps({"include": [[[0, 0], [1, 0]]]}), "got 2"),  # a BOM is fine
        ('{"include": [[[0, 0], [0.5, 0], [300, 200]]]}', "mixes fractions"),
        ('{"exclude": [[[0, 0], [10, -1], [5, 5]]]}', ">= 0"),
        ('{"include": "everywhere"}', "must be a list of polygons"),
        ('{"inside": []}', "expected"),
        ('{"include": [[[0, 0, 3], [1, 0], [1, 1]]]}', "list of \\[x, y\\] points"),
        ("[]", "expected"),
    ],
)
def test_malformed_regions_file_names_the_file_and_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "zones.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        load_regions_file(path)
    assert str(path) in str(info.value)


def test_regions_file_polygons_in_pixels_and_fractions(tmp_path: Path) -> None:
    path = tmp_path / "zones.json"
    path.write_text(
        json.dumps(
            {
                "include": [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]],  # left half, fractions
                "exclude": [[[0, 0], [40, 0], [40, 40], [0, 40]]],  # top-left corner, px
            }
        )
    )
    config = region_config(["150,0,200,100"], (), path)
    assert len(config.include) == 2 and len(config.exclude) == 1
    reasons = split(config, [(5, 5, 30, 30), (50, 50, 80, 80), (120, 40, 140, 60)])
    assert reasons == ["excluded", None, "outside"]


def test_region_settings_round_trip_and_change_the_settings_hash() -> None:
    from veil.distributed.manifest import settings_hash

    config = RunConfig(regions=region_config(["0,0,0.5,1"], ["10,10,50,50"]))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "regions" not in RunConfig().to_dict()  # no regions: settings as before
    assert settings_hash(config) != settings_hash(RunConfig())


# --- the rules --------------------------------------------------------------------------------


def test_include_region_leaves_only_faces_wholly_outside() -> None:
    config = region_config(["50,0,100,100"])  # pixels 50-99
    reasons = split(config, [(60, 10, 80, 30), (30, 10, 50.5, 30), (10, 10, 49.9, 30)])
    # inside; partly inside (half a pixel over the edge): anonymized; wholly outside: visible
    assert reasons == [None, None, "outside"]


def test_exclude_region_needs_the_centre_and_half_the_box() -> None:
    config = region_config((), ["0,0,100,100"])  # pixels 0-99 of a 200-wide frame
    reasons = split(
        config,
        [
            (10, 10, 40, 40),  # wholly inside: visible
            (80, 10, 110, 40),  # centre 95 inside, 2/3 inside: visible
            (90, 10, 130, 40),  # centre 110 outside: anonymized
            (70, 10, 150, 40),  # centre 110 outside, 3/8 inside: anonymized
        ],
    )
    assert reasons == ["excluded", "excluded", None, None]
    # a U-shaped zone: most of the box inside, its centre in the gap -> anonymized
    u_shape = ((0, 0), (100, 0), (100, 100), (60, 100), (60, 20), (40, 20), (40, 100), (0, 100))
    assert split(RegionConfig(exclude=(u_shape,)), [(10, 10, 90, 90)]) == [None]


def test_exclude_wins_over_include_and_fractions_follow_the_frame() -> None:
    config = region_config(["0,0,1,1"], ["0.75,0,1,0.25"])  # presenter corner, top right
    for shape in ((100, 200), (300, 600)):
        h, w = shape
        face = (0.8 * w, 0.05 * h, 0.95 * w, 0.2 * h)
        other = (0.3 * w, 0.3 * h, 0.5 * w, 0.5 * h)
        assert split(config, [face, other], shape) == ["excluded", None]


def test_split_and_records_name_the_reason() -> None:
    faces = Faces(xyxy=[(10, 10, 30, 30), (150, 10, 170, 30)], track_id=[4, 7])
    hidden, skipped = RegionFilter(region_config(["0,0,100,100"])).split(faces, (100, 200))
    assert hidden.track_id.tolist() == [4]  # type: ignore[union-attr]
    (record,) = region_records(skipped)
    assert record["region"] == "outside" and record["track_id"] == 7


# --- every command, real faces -----------------------------------------------------------------


def test_cli_exclude_region_leaves_that_face_and_audits_it(tmp_path: Path) -> None:
    image, a_box, c_box = two_people()
    src = save(tmp_path / "scene.png", image)
    out = tmp_path / "out.png"
    result = run("anonymize", src, "-o", out, "--exclude-region", "0,0,0.5,1", "--report")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    pixels = load(out)
    assert changed(pixels, image, a_box) == 0.0  # in the excluded half: exactly as it was
    assert changed(pixels, image, c_box) > 8.0  # the other person: anonymized
    audit = json.loads((tmp_path / "out.png.audit.json").read_text())
    (skipped,) = audit["skipped"]
    assert skipped["region"] == "excluded" and skipped["box"][2] < 320
    assert len(audit["faces"]) == 1 and audit["settings"]["regions"]["exclude"]


def test_cli_include_region_and_regions_file(tmp_path: Path) -> None:
    image, a_box, c_box = two_people()
    src = save(tmp_path / "scene.png", image)
    zones = tmp_path / "zones.json"
    zones.write_text(json.dumps({"include": [[[400, 0], [640, 0], [640, 300], [400, 300]]]}))
    for flags in (["--region", "0.5,0,1,1"], ["--regions-file", zones]):
        out = tmp_path / "out.png"
        result = run("anonymize", src, "-o", out, "--overwrite", *flags)
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        pixels = load(out)
        assert changed(pixels, image, a_box) == 0.0, flags  # outside the include region
        assert changed(pixels, image, c_box) > 8.0, flags


def test_face_partly_inside_an_include_region_is_anonymized(tmp_path: Path) -> None:
    image, a_box, _ = two_people()
    src = save(tmp_path / "scene.png", image)
    edge = int(a_box[2]) - 8  # the region starts 8 px before the face's right edge
    out = tmp_path / "out.png"
    result = run("anonymize", src, "-o", out, "--region", f"{edge},0,640,300")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert changed(load(out), image, a_box) > 8.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--region", "1,2,3"], "'1,2,3': expected four numbers"),
        (["--exclude-region", "0.2,0,400,300"], "mixes fractions"),
        (["--regions-file", "{missing}"], "does not exist"),
        (["--regions-file", "{bad}"], "zones.json: regions: not valid JSON"),
    ],
)
def test_cli_bad_region_fails_before_any_output(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    src = save(tmp_path / "scene.png", two_people()[0])
    (tmp_path / "zones.json").write_text("{oops")
    paths = {"missing": tmp_path / "nope.json", "bad": tmp_path / "zones.json"}
    args = [f.format(**paths) for f in flags]
    result = run("anonymize", src, "-o", tmp_path / "out.png", *args)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert message in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "out.png").exists()


def test_video_regions_apply_per_frame_to_a_face_crossing_the_edge(tmp_path: Path) -> None:
    from video_factory import face_change, face_video

    src, boxes = face_video(tmp_path / "in.mp4", frames=16, audio=False)
    out = tmp_path / "out.mp4"
    # the face (x 115-173 at frame 0) moves right 4 px a frame into a region from x = 190
    result = run("video", src, "-o", out, "--region", "190,0,320,240", "--report", "-q")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    change = face_change(src, out, boxes)
    frames = json.loads((tmp_path / "out.mp4.audit.json").read_text())["frames"]
    masked = [(f["faces"] or f["skipped"])[0]["box"] for f in frames]  # one face a frame
    outside = [i for i, f in enumerate(frames) if f.get("skipped")]
    inside = [i for i, f in enumerate(frames) if f["faces"]]
    assert outside == list(range(len(outside))) and inside == list(range(len(outside), 16))
    assert len(outside) >= 4 and len(inside) >= 4  # the face crossed the edge mid-clip
    assert all(masked[i][2] <= 190 for i in outside)  # its box wholly left of the region
    assert all(masked[i][2] > 190 for i in inside)  # over the edge: anonymized
    assert all(frames[i]["skipped"][0]["region"] == "outside" for i in outside)
    assert all(change[i] < 3.0 for i in outside), change  # re-encoding only
    assert all(change[i] > 8.0 for i in inside), change


def test_batch_live_and_rgbd_take_the_region_options(tmp_path: Path) -> None:
    from veil.io.rgbd import write_depth
    from video_factory import face_change, face_video

    image, a_box, c_box = two_people()
    save(tmp_path / "in" / "scene.png", image)
    result = run("batch", tmp_path / "in", "-o", tmp_path / "b", "--exclude-region", "0,0,0.5,1")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    pixels = load(tmp_path / "b" / "scene.png")
    assert changed(pixels, image, a_box) == 0.0 and changed(pixels, image, c_box) > 8.0

    save(tmp_path / "rgbd" / "color" / "0000.png", image)
    write_depth(tmp_path / "rgbd" / "depth" / "0000.png", np.full(SIZE, 2.0, np.float32))
    flags = ["--no-tracking", "--exclude-region", "0,0,0.5,1"]
    result = run("rgbd", tmp_path / "rgbd", "-o", tmp_path / "r", *flags)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (colour,) = (p for p in (tmp_path / "r").rglob("*.png") if "depth" not in p.parts)
    pixels = load(colour)
    assert changed(pixels, image, a_box) == 0.0 and changed(pixels, image, c_box) > 8.0

    src, boxes = face_video(tmp_path / "clip.mp4", frames=6, audio=False)
    out = tmp_path / "live.mp4"
    result = run("live", src, "-o", out, "-q", "--crf", 10, "--exclude-region", "0,0,1,1")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert max(face_change(src, out, boxes)) < 3.0  # excluded everywhere: re-encoding only
    result = run("live", src, "-o", out, "-q", "--crf", 10, "--region", "0,0,1,1")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert min(face_change(src, out, boxes)) > 8.0
