"""Replace the face outright: a solid colour, or inpainting from its surroundings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from veil.anonymize.base import Anonymizer
from veil.anonymize.filters import enlarge, shrink
from veil.errors import ConfigError

__all__ = ["Inpaint", "SolidFill"]

_INPAINT_METHODS: dict[str, int] = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def mean_colour(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB (``float64 (3,)``) of ``patch`` over ``mask``, or over all of it if empty."""
    pixels = patch[mask] if mask.any() else patch.reshape(-1, 3)
    return pixels.mean(axis=0)


def _check_colour(color: object) -> np.ndarray | None:
    """``None`` for ``"mean"``, else the colour as ``uint8 (3,)``; raise ``ConfigError``."""
    if isinstance(color, str):
        if color == "mean":
            return None
    elif isinstance(color, Sequence) and len(color) == 3:
        ok = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in color)
        if ok and all(0 <= int(c) <= 255 for c in color):
            return np.array([int(c) for c in color], np.uint8)
    raise ConfigError(
        f"solid: color must be an (r, g, b) tuple of integers in [0, 255] or 'mean', got {color!r}"
    )


class SolidFill(Anonymizer):
    """Fill the face with one colour.

    Args:
        color: ``(r, g, b)`` integers in ``[0, 255]``, or ``"mean"`` for the mean colour
            of the face. ``strength`` has no effect.
    """

    name = "solid"

    def __init__(
        self,
        *,
        strength: float = 1.0,
        seed: int | None = None,
        color: tuple[int, int, int] | str = (0, 0, 0),
    ) -> None:
        super().__init__(strength=strength, seed=seed)
        self.color = color
        self._rgb = _check_colour(color)

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> constant ``uint8 (h, w, 3)``."""
        rgb = self._rgb
        if rgb is None:
            rgb = np.round(mean_colour(patch, mask)).astype(np.uint8)
        return np.broadcast_to(rgb, patch.shape).copy()

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "color": self.color}


class Inpaint(Anonymizer):
    """Paint the face over from its surroundings (OpenCV inpainting), then smooth it.

    Works on a copy downscaled so the face is about 24 px across; the inpainting radius
    is ``face_size / 8`` and the final blur ``1.5 * strength`` px at that scale.

    Args:
        method: ``"telea"`` (default) or ``"ns"`` (Navier-Stokes).
    """

    name = "inpaint"
    _WORK_SIZE = 24.0

    def __init__(self, *, strength: float = 1.0, seed: int | None = None, method: str = "telea"):
        super().__init__(strength=strength, seed=seed)
        if method not in _INPAINT_METHODS:
            raise ConfigError(
                f"{self.name}: unknown method {method!r}; choose one of: {sorted(_INPAINT_METHODS)}"
            )
        self.method = method

    def context(self, face_size: float) -> int:
        return math.ceil(face_size / 6) + 4

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> inpainted ``uint8 (h, w, 3)`` over ``mask``."""
        factor = max(1.0, face_size / self._WORK_SIZE)
        small = shrink(patch, factor)
        # fail closed: any small pixel touching the mask, plus a ring for interpolation
        touched = (shrink(mask.astype(np.uint8) * 255, factor) > 0).astype(np.uint8)
        holes = cv2.dilate(touched, np.ones((3, 3), np.uint8), iterations=2)
        if holes.all():
            return np.broadcast_to(np.round(mean_colour(patch, mask)), patch.shape).astype(np.uint8)
        radius = max(3.0, face_size / factor / 8)
        painted = cv2.inpaint(small, holes, radius, _INPAINT_METHODS[self.method])
        painted = cv2.GaussianBlur(painted, (0, 0), 1.5 * self.strength)
        return enlarge(painted, patch.shape)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "method": self.method}
