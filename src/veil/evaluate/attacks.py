"""Simple reversal attempts an attacker could try on an anonymized face before recognition.

Each attack is ``attack(image, box_xyxy) -> image``: it takes an RGB ``uint8 (H, W, 3)``
image and the face box the attacker believes the anonymized face occupies, and returns a
new image of the same shape and dtype in which only the region around the box (the box
grown by :data:`MARGIN` of the face size on every side) was processed. None of them knows
which method or strength was used; each assumes the method it is meant to reverse.

* ``wiener``, ``richardson_lucy``: deconvolution with a Gaussian PSF of
  ``sigma = face_size / 2.5`` (veil's default blur; face size = mean of box width and
  height), run on a copy downscaled so that the PSF sigma is :data:`WORK_SIGMA` px.
* ``sharpen_upsample``: for a mosaic, the block grid (size and phase) is estimated from the
  periodicity of edges inside the box, its block values are resampled bicubically and an
  unsharp mask applied.
* ``denoise``: OpenCV's non-local means, for additive noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from veil.types import check_image

__all__ = [
    "ATTACKS",
    "MARGIN",
    "WORK_SIGMA",
    "Attack",
    "BoxLike",
    "denoise",
    "estimate_block",
    "gaussian_psf",
    "richardson_lucy",
    "sharpen_upsample",
    "wiener",
]

BoxLike = Sequence[float] | np.ndarray
"""A face box ``x0, y0, x1, y1`` in pixels."""

Attack = Callable[[np.ndarray, BoxLike], np.ndarray]

MARGIN = 0.5
"""The attacked region: the box grown by this share of the face size on every side."""

WORK_SIGMA = 3.0
"""Deconvolution works on a copy downscaled until the PSF sigma is at most this many px."""


def _face_size(box: BoxLike) -> float:
    x0, y0, x1, y1 = (float(v) for v in box)
    return max(1.0, ((x1 - x0) + (y1 - y0)) / 2)


def _bounds(shape: tuple[int, ...], box: BoxLike) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)`` of the attacked region: the box grown, clipped to the image."""
    grow = MARGIN * _face_size(box)
    x0, y0, x1, y1 = (float(v) for v in box)
    c0, r0 = max(0, math.floor(x0 - grow)), max(0, math.floor(y0 - grow))
    c1, r1 = min(shape[1], math.ceil(x1 + grow)), min(shape[0], math.ceil(y1 + grow))
    return r0, r1, c0, c1


def _on_region(
    image: np.ndarray, box: BoxLike, fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Copy of ``image`` with the region around ``box`` replaced by ``fn(region)``."""
    image = check_image(image)
    r0, r1, c0, c1 = _bounds(image.shape, box)
    out = image.copy()
    if r1 - r0 < 2 or c1 - c0 < 2:
        return out
    region = fn(image[r0:r1, c0:c1])
    out[r0:r1, c0:c1] = np.clip(np.round(region), 0, 255).astype(np.uint8)
    return out


def gaussian_psf(sigma: float) -> np.ndarray:
    """Normalized Gaussian kernel ``float64 (k, k)`` with ``k = 2 * ceil(3 sigma) + 1``."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    psf = np.outer(g, g)
    return np.asarray(psf / psf.sum())


def _deconvolve(
    crop: np.ndarray, sigma: float, step: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Per-channel ``step(channel in [0, 1], psf)`` at a scale where sigma <= WORK_SIGMA."""
    factor = max(1.0, sigma / WORK_SIGMA)
    h, w = crop.shape[:2]
    size = (max(2, round(w / factor)), max(2, round(h / factor)))
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    psf = gaussian_psf(sigma / factor)
    pad = psf.shape[0] // 2
    padded = np.pad(small, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    channels = [step(padded[..., c], psf) for c in range(3)]
    restored = np.stack(channels, axis=-1)[pad : pad + size[1], pad : pad + size[0]]
    restored = np.clip(restored, 0, 1).astype(np.float32) * 255
    if factor == 1.0:
        return np.asarray(restored)
    return np.asarray(cv2.resize(restored, (w, h), interpolation=cv2.INTER_CUBIC))


def wiener(
    image: np.ndarray,
    box: BoxLike,
    *,
    sigma: float | None = None,
    balance: float = 0.02,
) -> np.ndarray:
    """Wiener deconvolution (``skimage.restoration.wiener``) of a Gaussian blur.

    ``sigma`` is the assumed blur in px (default ``face_size / 2.5``); ``balance`` trades
    sharpness for noise (smaller = sharper).
    """
    from skimage import restoration

    s = _face_size(box) / 2.5 if sigma is None else float(sigma)

    def step(channel: np.ndarray, psf: np.ndarray) -> np.ndarray:
        return np.asarray(restoration.wiener(channel, psf, balance, clip=False))

    return _on_region(image, box, lambda crop: _deconvolve(crop, s, step))


def richardson_lucy(
    image: np.ndarray,
    box: BoxLike,
    *,
    sigma: float | None = None,
    iterations: int = 30,
) -> np.ndarray:
    """Richardson-Lucy deconvolution of a Gaussian blur (``sigma`` as in :func:`wiener`)."""
    from skimage import restoration

    s = _face_size(box) / 2.5 if sigma is None else float(sigma)

    def step(channel: np.ndarray, psf: np.ndarray) -> np.ndarray:
        return np.asarray(restoration.richardson_lucy(channel, psf, num_iter=iterations))

    return _on_region(image, box, lambda crop: _deconvolve(crop, s, step))


def _edge_profiles(crop: np.ndarray, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of rows with an edge after each column, and of columns after each row."""
    a = crop.astype(np.int16)
    cols = (np.abs(np.diff(a, axis=1)).max(axis=2) > tol).mean(axis=0)
    rows = (np.abs(np.diff(a, axis=0)).max(axis=2) > tol).mean(axis=1)
    return cols, rows


def _best_phase(profile: np.ndarray, block: int) -> tuple[float, int]:
    """Mean edge share on the best grid of period ``block`` and that grid's phase."""
    scores = [float(profile[p::block].mean()) for p in range(min(block, len(profile)))]
    phase = int(np.argmax(scores))
    return scores[phase], phase


def estimate_block(crop: np.ndarray, *, tol: int = 2) -> tuple[int, int, int]:
    """Mosaic grid of ``crop`` as ``(block, x_phase, y_phase)``; block 1 if not a mosaic.

    A mosaic has edges only between blocks, so the edge share along columns (rows) peaks
    on a grid of period ``block``; the smallest period scoring within 90% of the best wins
    (multiples of the period score as high). Phases are the first edge positions + 1.
    """
    if crop.ndim != 3 or min(crop.shape[:2]) < 4:
        return 1, 0, 0
    cols, rows = _edge_profiles(crop, tol)
    limit = min(len(cols), len(rows)) // 2
    if limit < 2:
        return 1, 0, 0
    scores = {b: _best_phase(cols, b)[0] + _best_phase(rows, b)[0] for b in range(2, limit + 1)}
    best = max(scores.values())
    if best < 2 * (cols.mean() + rows.mean()) or best < 0.5:
        return 1, 0, 0
    block = min(b for b, v in scores.items() if v >= 0.9 * best)
    return (
        block,
        (_best_phase(cols, block)[1] + 1) % block,
        (_best_phase(rows, block)[1] + 1) % block,
    )


def _resample_grid(crop: np.ndarray, block: int, px: int, py: int) -> np.ndarray:
    """Block values of an aligned mosaic, upsampled bicubically: ``float32`` like ``crop``."""
    h, w = crop.shape[:2]
    left, top = (block - px) % block, (block - py) % block
    right, bottom = (-(w + left)) % block, (-(h + top)) % block
    padded = cv2.copyMakeBorder(crop, top, bottom, left, right, cv2.BORDER_REPLICATE)
    grid = (padded.shape[1] // block, padded.shape[0] // block)
    small = cv2.resize(padded, grid, interpolation=cv2.INTER_AREA).astype(np.float32)
    up = cv2.resize(small, padded.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    return np.asarray(up[top : top + h, left : left + w])


def sharpen_upsample(
    image: np.ndarray, box: BoxLike, *, block: int | None = None, amount: float = 0.5
) -> np.ndarray:
    """Undo a mosaic: bicubic resampling of the block grid, then an unsharp mask.

    The grid (block size and phase) is estimated inside the box (:func:`estimate_block`);
    ``block`` forces the size (phase 0 relative to the attacked region).
    """
    image = check_image(image)
    x0, y0, x1, y1 = (max(0, round(float(v))) for v in box)
    if block is None:  # estimated inside the box; phases made relative to the region
        b, px, py = estimate_block(image[y0:y1, x0:x1])
        r0, _, c0, _ = _bounds(image.shape, box)
        px, py = (px + x0 - c0) % b, (py + y0 - r0) % b
    else:
        b, px, py = int(block), 0, 0

    def run(crop: np.ndarray) -> np.ndarray:
        smooth = _resample_grid(crop, b, px, py) if b >= 2 else crop.astype(np.float32)
        blurred = cv2.GaussianBlur(smooth, (0, 0), max(1.0, b / 2))
        return np.asarray(smooth + amount * (smooth - blurred))

    return _on_region(image, box, run)


def denoise(image: np.ndarray, box: BoxLike, *, strength: float = 15.0) -> np.ndarray:
    """Non-local means denoising (``cv2.fastNlMeansDenoisingColored``) of the face region."""

    def run(crop: np.ndarray) -> np.ndarray:
        bgr = np.ascontiguousarray(crop[..., ::-1])
        out = cv2.fastNlMeansDenoisingColored(bgr, None, strength, strength, 7, 21)
        return np.asarray(out[..., ::-1])

    return _on_region(image, box, run)


ATTACKS: dict[str, Attack] = {
    "wiener": wiener,
    "richardson_lucy": richardson_lucy,
    "sharpen_upsample": sharpen_upsample,
    "denoise": denoise,
}
"""Attack name -> ``attack(image, box_xyxy) -> image``."""
