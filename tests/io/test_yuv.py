"""YUV420 frames: conversions agree with a whole-frame conversion, edits touch only what
changed, and the pipeline anonymizes a YUV frame like the RGB one."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from factories import ASTRONAUT_FACE
from veil.anonymize.base import ANONYMIZERS
from veil.detect.base import Detector
from veil.errors import InputError
from veil.io.yuv import YUV420, as_rgb, even_box, merge_boxes
from veil.mask import Masker
from veil.pipeline import Pipeline
from veil.types import Faces


@pytest.fixture(scope="module")
def frame() -> YUV420:
    return YUV420.from_rgb(skimage.data.astronaut())  # 512 x 512


class NoDetector(Detector):
    name = "none"

    def detect(self, image: np.ndarray) -> Faces:
        return Faces.empty()


def test_shape_planes_and_validation(frame: YUV420) -> None:
    assert frame.shape == (512, 512, 3) and frame.y.shape == (512, 512)
    y, u, v = frame.planes()
    assert u.shape == v.shape == (256, 256) and np.shares_memory(y, frame.data)
    with pytest.raises(InputError, match="even"):
        YUV420(np.zeros((9, 7), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        YUV420(np.zeros((9, 8), np.float32))


def test_rgb_roundtrip_is_close(frame: YUV420) -> None:
    rgb = skimage.data.astronaut().astype(int)
    assert np.abs(frame.rgb().astype(int) - rgb).mean() < 3  # 4:2:0 loses some colour
    assert as_rgb(frame).shape == (512, 512, 3)
    plain = np.zeros((4, 4, 3), np.uint8)
    assert as_rgb(plain) is plain


def test_crop_equals_the_whole_frame_conversion(frame: YUV420) -> None:
    box = (100, 50, 300, 250)
    assert np.array_equal(frame.crop_rgb(box), frame.rgb()[50:250, 100:300])
    with pytest.raises(ValueError, match="even"):
        frame.crop_rgb((101, 50, 300, 250))
    with pytest.raises(ValueError, match="outside"):
        frame.crop_rgb((100, 50, 600, 250))


def test_identity_edit_is_bit_exact_and_input_untouched(frame: YUV420) -> None:
    before = frame.data.copy()
    out = frame.edit([(101, 51, 299, 249)], lambda crop, i: crop)
    assert np.array_equal(out.data, before) and np.array_equal(frame.data, before)


def test_edit_writes_only_changed_pixels(frame: YUV420) -> None:
    def paint(crop: np.ndarray, i: int) -> np.ndarray:
        crop[10:20, 10:20] = (255, 0, 0)  # crop starts at (100, 50)
        return crop

    out = frame.edit([(100, 50, 200, 150)], paint)
    y_in, u_in, _ = frame.planes()
    y_out, u_out, _ = out.planes()
    diff = y_out != y_in
    ys, xs = np.nonzero(diff)
    assert ys.min() >= 60 and ys.max() < 70 and xs.min() >= 110 and xs.max() < 120
    cys, cxs = np.nonzero(u_out != u_in)
    assert cys.min() >= 30 and cys.max() < 35 and cxs.min() >= 55 and cxs.max() < 60
    assert np.allclose(out.rgb()[62:68, 112:118], (255, 0, 0), atol=8)


def test_even_box_and_merge() -> None:
    assert even_box((1.5, 3.2, 9.1, 10.0), 8, 100) == (0, 2, 8, 10)
    groups = merge_boxes([(0, 0, 10, 10), (5, 5, 20, 20), (30, 30, 40, 40), (100, 0, 110, 10)])
    assert sorted(m for _, m in groups) == [[0, 1], [2], [3]]
    assert ((0, 0, 20, 20), [0, 1]) in groups
    chained = merge_boxes([(0, 0, 10, 10), (30, 0, 40, 10), (8, 0, 32, 4)])  # a bridge
    assert chained == [((0, 0, 40, 10), [0, 1, 2])]


@pytest.mark.parametrize("method", ["gaussian", "pixelate", "solid", "noise"])
def test_pipeline_anonymizes_a_yuv_frame_like_the_rgb_one(frame: YUV420, method: str) -> None:
    pipe = Pipeline(NoDetector(), ANONYMIZERS.create(method, seed=1), Masker())
    faces = Faces(xyxy=np.array([ASTRONAUT_FACE, [20, 300, 80, 360]], np.float32))
    rgb = frame.rgb()
    expected = pipe.anonymize(rgb, faces)
    got = pipe.anonymize_yuv(frame, faces).y.astype(int)
    want = YUV420.from_rgb(expected.image).y.astype(int)
    inside = np.zeros(rgb.shape[:2], bool)
    for r in expected.regions:
        inside[r.slices] |= r.alpha > 0
    # the same anonymized luma (chroma is 4:2:0 either way), exact copies elsewhere
    assert np.abs(got[inside] - want[inside]).max() <= 1
    assert np.abs(got[inside] - frame.y[inside].astype(int)).mean() > 8  # it did change
    assert np.array_equal(got[~inside], frame.y[~inside])


def test_no_face_returns_the_frame_itself(frame: YUV420) -> None:
    pipe = Pipeline(NoDetector(), ANONYMIZERS.create("gaussian"), Masker())
    assert pipe.anonymize_yuv(frame, Faces.empty()) is frame
