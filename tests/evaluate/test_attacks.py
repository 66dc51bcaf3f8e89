"""Reversal attacks: shape and dtype kept, only the face region touched, and they help."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from factories import face_on_canvas
from veil.anonymize.pixelate import _block_means
from veil.evaluate.attacks import (
    ATTACKS,
    denoise,
    estimate_block,
    richardson_lucy,
    sharpen_upsample,
    wiener,
)


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    return face_on_canvas(scale=1.0, canvas=(300, 300), offset=(-60, 0))


def _face_mse(image: np.ndarray, reference: np.ndarray, box: np.ndarray) -> float:
    x0, y0, x1, y1 = box.astype(int)
    diff = image[y0:y1, x0:x1].astype(np.float64) - reference[y0:y1, x0:x1]
    return float(np.mean(diff**2))


def test_attack_names() -> None:
    assert set(ATTACKS) == {"wiener", "richardson_lucy", "sharpen_upsample", "denoise"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_returns_new_uint8_image_changed_only_near_the_face(
    face: tuple[np.ndarray, np.ndarray], name: str
) -> None:
    image, box = face
    before = image.copy()
    out = ATTACKS[name](image, box)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # input untouched
    far = np.ones(image.shape[:2], bool)
    far[: int(box[3] + 60), : int(box[2] + 60)] = False  # box grown by half the face size
    np.testing.assert_array_equal(out[far], image[far])


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("box", [[0, 0, 3, 2], [298, 298, 300, 300], [-20, -20, 10, 10]])
def test_attack_on_tiny_or_edge_boxes(name: str, box: list[float]) -> None:
    image = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert ATTACKS[name](image, box).shape == image.shape


@pytest.mark.parametrize("attack", [wiener, richardson_lucy], ids=["wiener", "richardson_lucy"])
@pytest.mark.parametrize("sigma", [2.0, 6.0])
def test_deconvolution_of_a_known_gaussian_blur_gets_closer(
    face: tuple[np.ndarray, np.ndarray], attack: object, sigma: float
) -> None:
    image, box = face
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    restored = attack(blurred, box, sigma=sigma)  # type: ignore[operator]
    assert _face_mse(restored, image, box) < 0.8 * _face_mse(blurred, image, box)


@pytest.mark.parametrize("block", [4, 8, 16])
@pytest.mark.parametrize("offset", [0, 3])
def test_mosaic_grid_is_found_and_resampling_gets_closer(
    face: tuple[np.ndarray, np.ndarray], block: int, offset: int
) -> None:
    image, box = face
    x0, y0, x1, y1 = box.astype(int)
    mosaic = image.copy()
    mosaic[y0 + offset : y1, x0 + offset : x1] = _block_means(
        image[y0 + offset : y1, x0 + offset : x1], block
    )
    assert estimate_block(mosaic[y0:y1, x0:x1]) == (block, offset % block, offset % block)
    restored = sharpen_upsample(mosaic, box)
    assert _face_mse(restored, image, box) < 0.9 * _face_mse(mosaic, image, box)


def test_no_mosaic_in_a_photo(face: tuple[np.ndarray, np.ndarray]) -> None:
    image, box = face
    x0, y0, x1, y1 = box.astype(int)
    assert estimate_block(image[y0:y1, x0:x1])[0] == 1


def test_denoise_gets_closer_to_the_clean_face(face: tuple[np.ndarray, np.ndarray]) -> None:
    image, box = face
    noise = np.random.default_rng(0).normal(0, 20, image.shape)
    noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
    assert _face_mse(denoise(noisy, box), image, box) < 0.7 * _face_mse(noisy, image, box)
