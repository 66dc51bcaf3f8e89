"""int8 CenterFace: calibration scenes generated from packaged images, NNCF build, lookup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factories import best_iou, face_on_canvas
from veil.detect.centerface import CenterFace, default_model_path
from veil.detect.int8 import calibration_images, int8_model, int8_path


def test_calibration_scenes_are_varied_and_reproducible() -> None:
    a = list(calibration_images(4, size=(320, 192), seed=3))
    b = list(calibration_images(4, size=(320, 192), seed=3))
    assert all(x.shape == (192, 320, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])


def test_calibration_scenes_hold_faces() -> None:
    detector = CenterFace(precision="f32")
    found = [len(detector.detect(scene)) for scene in calibration_images(4)]
    assert min(found) >= 1 and sum(found) >= 8


def test_no_model_and_no_build_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    assert int8_path(default_model_path()).parent == tmp_path
    assert int8_model(default_model_path(), build=False) is None


@pytest.mark.slow
def test_built_int8_model_finds_the_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    from veil.detect.int8 import build_int8_model

    out = build_int8_model(default_model_path(), int8_path(default_model_path()), images=4)
    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert int8_model(default_model_path(), build=False) == out
    detector = CenterFace(precision="int8")
    assert detector.precision == "int8"
    image, box = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))
    assert best_iou(detector.detect(image), box) > 0.5


def test_failed_build_is_not_retried_by_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import veil.detect.int8 as int8

    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(int8, "nncf_installed", lambda: True)
    builds = []

    def broken(source: Path, out: Path) -> Path:
        builds.append(out)
        raise RuntimeError("quantization failed")

    monkeypatch.setattr(int8, "build_int8_model", broken)
    source = default_model_path()
    assert int8_model(source, build=True) is None
    assert "quantization failed" in int8_path(source).with_suffix(".failed").read_text()
    assert int8_model(source, build=True) is None and len(builds) == 1
    assert int8_model(source, build=True, retry=True) is None and len(builds) == 2
    assert not int8_path(source).exists()
