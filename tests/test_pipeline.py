from __future__ import annotations

import numpy as np
import pytest

import veil
from factories import face_on_canvas
from veil.anonymize.base import ANONYMIZERS
from veil.detect.base import Detector
from veil.errors import BackendError
from veil.mask import Masker
from veil.pipeline import Pipeline
from veil.types import Faces


class FixedDetector(Detector):
    """Returns the same boxes for every image (the in-memory backend for tests)."""

    name = "fixed"

    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> Faces:
        return Faces(xyxy=np.asarray(self.boxes, np.float32).reshape(-1, 4))


class CrashingDetector(Detector):
    name = "crash"

    def detect(self, image: np.ndarray) -> Faces:
        raise RuntimeError("model exploded")


def test_pipeline_changes_only_the_masked_face() -> None:
    image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    pipe = Pipeline(FixedDetector([[20, 20, 50, 60]]), ANONYMIZERS.create("solid"), Masker())
    result = pipe.process(image)
    assert len(result.faces) == 1 and len(result.regions) == 1
    assert (result.image[40, 35] == 0).all()  # face centre filled
    np.testing.assert_array_equal(result.image[90:, 100:], image[90:, 100:])
    assert not np.shares_memory(result.image, image)


def test_detector_crash_raises_backend_error_and_returns_nothing() -> None:
    pipe = Pipeline(CrashingDetector(), ANONYMIZERS.create("gaussian"))
    with pytest.raises(BackendError, match="model exploded"):
        pipe.process(np.zeros((10, 10, 3), np.uint8))


def test_anonymize_image_api_blurs_the_face() -> None:
    image, box = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))
    out = veil.anonymize_image(image)
    x0, y0, x1, y1 = box.astype(int)
    face_diff = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1]).mean()
    assert face_diff > 15
    # far from the face nothing changes
    np.testing.assert_array_equal(out[-20:, -20:], image[-20:, -20:])
    assert len(veil.detect_faces(image)) >= 1


def test_describe_names_every_stage() -> None:
    pipe = Pipeline(FixedDetector([]), ANONYMIZERS.create("pixelate"))
    d = pipe.describe()
    assert d["veil_version"] == veil.__version__
    assert d["anonymizer"]["name"] == "pixelate"  # type: ignore[index]
    assert d["mask"]["shape"] == "ellipse"  # type: ignore[index]
