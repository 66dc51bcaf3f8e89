"""``--method image``: a user's picture fitted to each face (cover + centre crop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas
from veil.anonymize.base import ANONYMIZERS
from veil.anonymize.image import ReplacementImage, cover
from veil.cli import main
from veil.config import AnonymizerConfig, RunConfig
from veil.errors import ConfigError, InputError
from veil.mask import Masker, union_mask
from veil.pipeline import Pipeline
from veil.types import Faces


def picture(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 4:3 picture: red left half, blue right half."""
    pic = np.zeros((60, 80, 3), np.uint8)
    pic[:, :40] = (220, 30, 30)
    pic[:, 40:] = (30, 30, 220)
    path = tmp_path / "pic.png"
    Image.fromarray(pic).save(path)
    return path, pic


def run(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(("w", "h"), [(40, 30), (30, 40), (100, 20), (7, 9)])
def test_cover_fills_the_box_keeping_the_aspect(w: int, h: int) -> None:
    pic = np.zeros((60, 80, 3), np.uint8)
    pic[:, :40] = 255  # white left half
    out = cover(pic, w, h)
    assert out.shape == (h, w, 3)
    # centre crop of a left/right split: the left half of the box is white, the right black
    assert out[:, : max(w // 2 - 1, 1)].min() >= 200 and out[:, w // 2 + 1 :].max() <= 55


def test_pixels_in_the_mask_come_from_the_picture_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    path, pic = picture(tmp_path)
    image, box = face_on_canvas()
    faces = Faces(xyxy=[box])
    for shape in ("box", "ellipse"):
        regions = Masker(shape=shape, margin=0).regions(faces, image.shape)
        out = ReplacementImage(image=path).apply(image, regions)
        (r,) = regions
        rows, cols = np.flatnonzero(r.alpha.any(1)), np.flatnonzero(r.alpha.any(0))
        fitted = cover(pic, cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0])  # the mask's box
        box_alpha = r.alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        got = out[r.slices][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        np.testing.assert_array_equal(got[box_alpha >= 1], fitted[box_alpha >= 1])
        outside = ~union_mask(regions, image.shape)
        np.testing.assert_array_equal(out[outside], image[outside])


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (None, ConfigError, "needs a picture: --image PATH"),
        ("{tmp}/missing.png", InputError, "missing.png: file not found"),
        ("{tmp}/notes.txt", InputError, "notes.txt: not an image"),
    ],
)
def test_missing_or_unreadable_picture_is_named(
    tmp_path: Path, image: str | None, error: type[Exception], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    path = None if image is None else image.format(tmp=tmp_path)
    with pytest.raises(error, match=message):
        ANONYMIZERS.create("image", image=path)


def test_cli_image_on_a_face_and_its_errors(tmp_path: Path) -> None:
    path, pic = picture(tmp_path)
    image, box = face_on_canvas()
    src = tmp_path / "face.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "out.png"
    result = run("anonymize", src, "-o", out, "-m", "image", "--image", path, "--mask", "box")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    got = np.asarray(Image.open(out).convert("RGB")).astype(int)
    x0, y0, x1, y1 = box.astype(int)
    face = got[y0:y1, x0:x1]
    assert np.abs(face - image[y0:y1, x0:x1].astype(int)).mean() > 30  # the face changed
    red, blue = (face == pic[0, 0]).all(-1), (face == pic[0, -1]).all(-1)
    assert (red | blue).mean() > 0.95  # the picture's colours (a resampled seam between)
    assert red[:, :5].all() and blue[:, -5:].all()  # red left, blue right, as in the picture
    assert np.array_equal(got[:, 250:], image[:, 250:])  # far from the face nothing changed

    for flags, message in [
        (["-m", "image", "--image", tmp_path / "nope.png"], "nope.png: file not found"),
        (["-m", "image"], "needs a picture: --image PATH"),
        (["--image", path], "--image applies to --method image only"),
    ]:
        bad = tmp_path / "bad.png"
        result = run("anonymize", src, "-o", bad, *flags)
        assert result.exit_code == 2, flags  # type: ignore[attr-defined]
        assert message in result.output  # type: ignore[attr-defined]
        assert not bad.exists()


def test_video_with_a_replacement_picture(tmp_path: Path) -> None:
    from video_factory import face_change, face_video

    path, _ = picture(tmp_path)
    src, boxes = face_video(tmp_path / "in.mp4", frames=6, audio=False)
    out = tmp_path / "out.mp4"
    result = run("video", src, "-o", out, "-q", "-m", "image", "--image", path)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert min(face_change(src, out, boxes)) > 30


def test_describe_names_the_picture(tmp_path: Path) -> None:
    path, _ = picture(tmp_path)
    config = RunConfig(anonymizer=AnonymizerConfig(method="image", options={"image": str(path)}))
    described = Pipeline.from_config(config).describe()["anonymizer"]
    assert described["name"] == "image" and described["image"] == str(path)
    assert described["image_size"] == [80, 60]


def test_rgbd_takes_the_picture_too(tmp_path: Path) -> None:
    from veil.io.rgbd import write_depth

    path, _ = picture(tmp_path)
    image, box = face_on_canvas()
    for sub in ("color", "depth"):
        (tmp_path / sub).mkdir()
    Image.fromarray(image).save(tmp_path / "color" / "0.png")
    write_depth(tmp_path / "depth" / "0.png", np.full(image.shape[:2], 1.5, np.float32))
    flags = ["--no-tracking", "-m", "image", "--image", path]
    result = run("rgbd", tmp_path, "-o", tmp_path / "out", *flags)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (colour,) = (p for p in (tmp_path / "out").rglob("*.png") if "depth" not in p.parts)
    got = np.asarray(Image.open(colour).convert("RGB")).astype(int)
    x0, y0, x1, y1 = box.astype(int)
    assert np.abs(got[y0:y1, x0:x1] - image[y0:y1, x0:x1]).mean() > 30
