"""End-to-end tests of the ``veil`` command (click's CliRunner, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas
from veil.cli import main


@pytest.fixture(scope="module")
def face_image() -> tuple[np.ndarray, np.ndarray]:
    return face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))


def save(path: Path, image: np.ndarray, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kw)
    return path


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def face_changed(out: np.ndarray, src: np.ndarray, box: np.ndarray) -> float:
    x0, y0, x1, y1 = box.astype(int)
    return float(np.abs(out[y0:y1, x0:x1] - src[y0:y1, x0:x1]).mean())


def test_single_file_default_output_name(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    image, box = face_image
    src = save(tmp_path / "photo.png", image)
    result = run("anonymize", src)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = tmp_path / "photo_anonymized.png"
    assert face_changed(load(out), image.astype(int), box) > 15
    assert np.array_equal(load(src), image)  # input untouched


def test_folder_is_mirrored_with_report_and_skip(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    image, _ = face_image
    src = tmp_path / "in dir é"
    save(src / "a.jpg", image, quality=95)
    save(src / "sub" / "b.png", image)
    save(src / "sub" / "skip.png", image)
    out = tmp_path / "out"
    result = run("anonymize", src, "-o", out, "--report", "--exclude", "*skip*", "-q")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert (out / "a.jpg").is_file() and (out / "sub" / "b.png").is_file()
    assert not (out / "sub" / "skip.png").exists()
    with Image.open(out / "a.jpg") as written:
        assert written.format == "JPEG"
    audit = json.loads((out / "sub" / "b.png.audit.json").read_text())
    assert audit["settings"]["detector"]["name"] == "centerface"
    assert len(audit["faces"]) >= 1 and len(audit["input_sha256"]) == 64
    # a second run skips what exists; --overwrite redoes it
    again = run("anonymize", src, "-o", out, "--exclude", "*skip*")
    assert "0 anonymized" in again.output and "2 skipped" in again.output  # type: ignore[attr-defined]
    redo = run("anonymize", src, "-o", out, "--exclude", "*skip*", "--overwrite")
    assert "2 anonymized" in redo.output  # type: ignore[attr-defined]


def test_bad_files_fail_alone_and_write_nothing(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    image, _ = face_image
    src = tmp_path / "in"
    save(src / "good.png", image)
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.png").write_text("not an image")
    good_jpeg = src / "trunc.jpg"
    save(good_jpeg, image, quality=90)
    good_jpeg.write_bytes(good_jpeg.read_bytes()[:2000])
    out = tmp_path / "out"
    result = run("anonymize", src, "-o", out)
    assert result.exit_code == 1
    text = result.output  # type: ignore[attr-defined]
    assert "1 anonymized" in text and "3 failed" in text
    for name in ("empty.jpg", "text.png", "trunc.jpg"):
        assert name in text
        assert not (out / name).exists()
    assert (out / "good.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # no temp files


def test_detector_crash_writes_no_output(tmp_path: Path, face_image, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from veil.detect import centerface

    def boom(self, image):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated inference crash")

    monkeypatch.setattr(centerface.CenterFace, "_forward", boom)
    src = save(tmp_path / "x.png", face_image[0])
    result = run("anonymize", src, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "simulated inference crash" in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "out" / "x.png").exists()


def test_output_onto_input_is_refused(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    src = save(tmp_path / "x.png", face_image[0])
    result = run("anonymize", src, "-o", src)
    assert result.exit_code == 2
    assert "overwrite" in result.output  # type: ignore[attr-defined]
    assert np.array_equal(load(src), face_image[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["anonymize", "missing.png"], "not found"),
        (["anonymize", "{img}", "--method", "sparkles"], "unknown anonymizer"),
        (["anonymize", "{img}", "--detector", "nope"], "unknown detector"),
        (["anonymize", "{img}", "--detector", "haar", "--no-upscale"], "centerface"),
        (["anonymize", "{img}", "-d", "haar", "--small-face-proposals", "0.1"], "centerface"),
    ],
)
def test_usage_errors(tmp_path: Path, face_image, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    img = save(tmp_path / "x.png", face_image[0])
    result = run(*[a.format(img=img) for a in args])
    assert result.exit_code == 2
    assert message in result.output  # type: ignore[attr-defined]


def test_detect_json_and_methods(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    image, box = face_image
    src = save(tmp_path / "x.png", image)
    result = run("detect", src, "-o", tmp_path / "boxes.json")
    assert result.exit_code == 0
    data = json.loads((tmp_path / "boxes.json").read_text())
    found = np.array([f["box"] for f in data["images"][0]["faces"]])
    assert len(found) >= 1
    assert np.abs(found - box).max(axis=1).min() < 20
    methods = run("methods").output  # type: ignore[attr-defined]
    for name in ("centerface", "haar", "dlib-hog", "gaussian", "irreversible", "inpaint"):
        assert name in methods


def test_sample_then_anonymize(tmp_path: Path) -> None:
    sample = tmp_path / "s.png"
    assert run("sample", sample).exit_code == 0  # type: ignore[attr-defined]
    result = run("anonymize", sample, "-o", tmp_path / "o.png", "--method", "pixelate")
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert "1 faces" in result.output  # type: ignore[attr-defined]


def test_folder_with_a_video_gets_both_anonymized(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    from veil.io.video import probe_video
    from video_factory import face_change, face_video

    src = tmp_path / "in"
    save(src / "a.png", face_image[0])
    (src / "clips").mkdir()
    _, boxes = face_video(src / "clips" / "c.mp4", frames=6, size=(160, 120), audio=True)
    out = tmp_path / "out"
    result = run("anonymize", src, "-o", out, "-q")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert face_changed(load(out / "a.png"), face_image[0].astype(int), face_image[1]) > 15
    info = probe_video(out / "clips" / "c.mp4")
    assert info.has_audio and (info.width, info.height) == (160, 120)
    assert min(face_change(src / "clips" / "c.mp4", out / "clips" / "c.mp4", boxes)) > 15


def test_png_compression_option_reaches_the_output(tmp_path: Path, face_image) -> None:  # type: ignore[no-untyped-def]
    src = save(tmp_path / "x.png", face_image[0])
    sizes = {}
    for level in ("0", "9"):
        result = run(
            "anonymize", src, "-o", tmp_path / f"out{level}.png", "--png-compression", level
        )
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        sizes[level] = (tmp_path / f"out{level}.png").stat().st_size
    assert sizes["0"] > sizes["9"]
    np.testing.assert_array_equal(load(tmp_path / "out0.png"), load(tmp_path / "out9.png"))
    assert not np.array_equal(load(tmp_path / "out0.png"), load(src)), "faces anonymized"
