"""The OpenCV Haar-cascade ensemble detector."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from factories import (
    BAD_IMAGES,
    assert_valid_faces,
    best_iou,
    cameraman,
    face_on_canvas,
    flat_grey,
)
from veil.detect.base import DETECTORS
from veil.detect.haar import HaarCascade
from veil.errors import BackendError, ConfigError, InputError


@pytest.fixture(scope="module")
def haar() -> HaarCascade:
    return HaarCascade()


@pytest.mark.parametrize("mirror", [False, True], ids=["original", "mirrored"])
def test_finds_the_face_pasted_into_noise(haar: HaarCascade, mirror: bool) -> None:
    image, face = face_on_canvas(mirror=mirror)
    faces = haar.detect(image)
    assert_valid_faces(faces, image.shape)
    assert best_iou(faces, face) >= 0.4
    assert faces.scores is not None and faces.scores.max() == pytest.approx(1.0)


def test_flat_grey_image_has_no_faces(haar: HaarCascade) -> None:
    assert len(haar.detect(flat_grey())) == 0


def test_input_is_not_modified(haar: HaarCascade) -> None:
    image, _ = face_on_canvas()
    before = image.copy()
    haar.detect(image)
    np.testing.assert_array_equal(image, before)


def test_mirrored_profile_pass_finds_the_other_side_of_the_head() -> None:
    # The cameraman looks right; the profile cascade alone only knows left-looking
    # faces, so it finds him only on the mirrored image, and the box must map back.
    image, face = cameraman(), np.array([88, 48, 142, 100], np.float32)
    with_flip = HaarCascade(scale_factors=(1.05,)).detect(image)
    without = HaarCascade(scale_factors=(1.05,), flip=False).detect(image)
    assert best_iou(with_flip, face) >= 0.4
    assert best_iou(without, face) == 0.0


def test_threshold_keeps_only_faces_all_passes_agree_on() -> None:
    image, face = face_on_canvas()
    faces = HaarCascade(threshold=1.0).detect(image)
    assert faces.scores is not None and np.all(faces.scores == 1.0)
    assert best_iou(faces, face) >= 0.4


def test_threads_share_one_detector() -> None:
    haar = HaarCascade(scale_factors=(1.1,), profile=False)  # light: 3 passes
    images = [face_on_canvas()[0], face_on_canvas(mirror=True)[0]]
    serial = [haar.detect(im) for im in images]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = list(pool.map(haar.detect, images))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("value", [v for _, v in BAD_IMAGES], ids=[i for i, _ in BAD_IMAGES])
def test_bad_input_raises_input_error(haar: HaarCascade, value: object) -> None:
    with pytest.raises(InputError):
        haar.detect(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"scale_factors": (1.0,)}, "scale_factors"),
        ({"scale_factors": ()}, "scale_factors"),
        ({"min_neighbors": -1}, "min_neighbors"),
        ({"min_size": (0, 10)}, "min_size"),
        ({"nms_iou": 0.0}, "nms_iou"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        HaarCascade(**options)  # type: ignore[arg-type]


def test_missing_cascade_file_names_the_path(tmp_path) -> None:
    expected = tmp_path / "haarcascade_frontalface_default.xml"
    with pytest.raises(BackendError, match=re.escape(str(expected))):
        HaarCascade(cascade_dir=tmp_path)


def test_corrupt_cascade_file_is_a_backend_error(tmp_path) -> None:
    for name in ("default", "alt", "alt2"):
        (tmp_path / f"haarcascade_frontalface_{name}.xml").write_text("not xml")
    with pytest.raises(BackendError, match="could not be loaded"):
        HaarCascade(cascade_dir=tmp_path, profile=False)


def test_registry_builds_it_with_options() -> None:
    detector = DETECTORS.create("haar", threshold=0.5, flip=False)
    assert isinstance(detector, HaarCascade)
    settings = detector.describe()
    assert settings["name"] == "haar"
    assert settings["threshold"] == 0.5 and settings["flip"] is False
