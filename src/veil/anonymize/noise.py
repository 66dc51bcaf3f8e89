"""Random replacements: gaussian noise, and an irreversible warp-and-resample.

All randomness comes from the ``rng`` the base class passes per face: seeded, a face
(or a track) keeps one pattern; unseeded, every call draws fresh entropy, so the
output is not a function of the input alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from veil.anonymize.base import Anonymizer
from veil.anonymize.fill import mean_colour
from veil.anonymize.filters import enlarge, shrink
from veil.errors import ConfigError

__all__ = ["GaussianNoise", "Irreversible"]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _random_warp(image: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (``(h, w, 3)``) remapped by a smooth random field of ~``amplitude`` px."""
    h, w = image.shape[:2]
    coarse = rng.standard_normal((2, 4, 4)).astype(np.float32) * amplitude
    dx = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


class GaussianNoise(Anonymizer):
    """Replace the face with gaussian noise (std ``50 * strength``) around its mean colour."""

    name = "noise"

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> noise ``uint8 (h, w, 3)``."""
        mean = mean_colour(patch, mask).astype(np.float32)
        noise = rng.standard_normal(patch.shape, dtype=np.float32)
        return _to_uint8(mean + noise * np.float32(50 * self.strength))


class Irreversible(Anonymizer):
    """Random warp, downscale to ``across / strength`` px per face, noise, blur, cubic upscale.

    The warp (amplitude ``strength * face_size / 8``) and the noise added at the coarse
    scale (std ``12 * strength``) come from ``rng``; without a seed the result cannot be
    reproduced from the input, so it cannot be inverted by re-running the pipeline.

    Args:
        across: pixels across the face at the coarse scale (2 to 64) at ``strength`` 1.
    """

    name = "irreversible"

    def __init__(self, *, strength: float = 1.0, seed: int | None = None, across: float = 8.0):
        super().__init__(strength=strength, seed=seed)
        if not 2.0 <= across <= 64.0:
            raise ConfigError(f"{self.name}: across must be within [2, 64], got {across}")
        self.across = float(across)

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> scrambled ``uint8 (h, w, 3)``."""
        warped = _random_warp(patch, self.strength * face_size / 8, rng)
        across = max(2.0, self.across / self.strength)
        factor = max(1.0, face_size / across)
        small = shrink(warped, factor).astype(np.float32)
        small += rng.standard_normal(small.shape, dtype=np.float32) * np.float32(12 * self.strength)
        smooth = cv2.GaussianBlur(small, (0, 0), 0.6)
        big = enlarge(smooth, patch.shape, cubic=True)
        return _to_uint8(big)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "across": self.across}
