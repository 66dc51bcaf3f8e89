"""The dlib HOG and CNN detectors (extra: dlib)."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from factories import BAD_IMAGES, assert_valid_faces, best_iou, face_on_canvas, flat_grey
from veil.detect.base import DETECTORS
from veil.detect.dlib import DlibCNN, DlibHOG, squash_margin
from veil.errors import BackendError, ConfigError, InputError, MissingExtraError


@pytest.fixture(scope="module")
def hog() -> DlibHOG:
    pytest.importorskip("dlib")
    return DlibHOG()


@pytest.fixture(scope="module")
def cnn() -> DlibCNN:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    return DlibCNN()


def small_face() -> tuple[np.ndarray, np.ndarray]:
    """A 200 x 200 crop with a 96 px face: big enough for the CNN without upsampling."""
    return face_on_canvas(scale=1.0, offset=(-120, -20), canvas=(200, 200))


def test_squash_maps_margins_into_unit_interval_monotonically() -> None:
    margins = np.array([-50.0, -1.0, 0.0, 1.0, 50.0])
    scores = squash_margin(margins)
    assert scores.dtype == np.float32
    assert np.all(np.diff(scores) >= 0) and scores[0] >= 0 and scores[-1] <= 1
    assert scores[2] == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["dlib-hog", "dlib-cnn"])
def test_missing_dlib_names_the_extra(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    with pytest.raises(
        MissingExtraError, match=r"pip install .* \(in a clone of veil: pip install '\.\[dlib\]'\)"
    ):
        DETECTORS.get(name)()


@pytest.mark.dlib
class TestHOG:
    @pytest.mark.parametrize("mirror", [False, True], ids=["original", "mirrored"])
    def test_finds_the_face_pasted_into_noise(self, hog: DlibHOG, mirror: bool) -> None:
        image, face = face_on_canvas(mirror=mirror)
        faces = hog.detect(image)
        assert_valid_faces(faces, image.shape)
        assert best_iou(faces, face) >= 0.4

    def test_flat_grey_image_has_no_faces(self, hog: DlibHOG) -> None:
        assert len(hog.detect(flat_grey())) == 0

    def test_threshold_is_a_raw_margin(self) -> None:
        image, _ = face_on_canvas()
        assert len(DlibHOG(threshold=5.0).detect(image)) == 0

    def test_face_cut_by_the_border_is_clipped(self, hog: DlibHOG) -> None:
        image, face = face_on_canvas(offset=(-80, -30), canvas=(120, 120))
        faces = hog.detect(image)
        assert_valid_faces(faces, image.shape)
        assert best_iou(faces, np.clip(face, 0, 120)) >= 0.4

    def test_threads_share_one_detector(self, hog: DlibHOG) -> None:
        images = [face_on_canvas(seed=s)[0] for s in range(4)]
        serial = [hog.detect(im).xyxy for im in images]
        with ThreadPoolExecutor(max_workers=2) as pool:
            parallel = [f.xyxy for f in pool.map(hog.detect, images)]
        for a, b in zip(serial, parallel, strict=True):
            np.testing.assert_array_equal(a, b)

    @pytest.mark.parametrize("value", [v for _, v in BAD_IMAGES], ids=[i for i, _ in BAD_IMAGES])
    def test_bad_input_raises_input_error(self, hog: DlibHOG, value: object) -> None:
        with pytest.raises(InputError):
            hog.detect(value)  # type: ignore[arg-type]

    @pytest.mark.parametrize("upsample", [-1, 1.5])
    def test_bad_upsample_is_a_config_error(self, upsample: float) -> None:
        with pytest.raises(ConfigError, match="upsample"):
            DlibHOG(upsample=upsample)  # type: ignore[arg-type]

    def test_registry_builds_it(self) -> None:
        detector = DETECTORS.create("dlib-hog", upsample=0)
        assert isinstance(detector, DlibHOG)
        assert detector.describe() == {"name": "dlib-hog", "upsample": 0, "threshold": 0.0}


@pytest.mark.dlib
class TestCNN:
    def test_finds_the_face(self, cnn: DlibCNN) -> None:
        image, face = small_face()
        faces = cnn.detect(image)
        assert_valid_faces(faces, image.shape)
        assert best_iou(faces, face) >= 0.4

    def test_flat_grey_image_has_no_faces(self, cnn: DlibCNN) -> None:
        assert len(cnn.detect(flat_grey((120, 160)))) == 0

    def test_bad_input_raises_input_error(self, cnn: DlibCNN) -> None:
        with pytest.raises(InputError):
            cnn.detect(np.zeros((8, 8), np.uint8))

    def test_missing_model_file_names_the_path(self, tmp_path) -> None:
        pytest.importorskip("dlib")
        missing = tmp_path / "nope.dat"
        with pytest.raises(BackendError, match=re.escape(str(missing))):
            DlibCNN(model_path=missing)

    def test_corrupt_model_file_is_a_backend_error(self, tmp_path) -> None:
        pytest.importorskip("dlib")
        bad = tmp_path / "bad.dat"
        bad.write_bytes(b"not a dlib model")
        with pytest.raises(BackendError, match=re.escape(str(bad))):
            DlibCNN(model_path=bad)

    def test_registry_builds_it(self, cnn: DlibCNN) -> None:
        detector = DETECTORS.create("dlib-cnn", model_path=cnn.model_path)
        assert isinstance(detector, DlibCNN)
        assert detector.describe()["model_path"] == str(cnn.model_path)
