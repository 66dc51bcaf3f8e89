"""Replace each face with a picture chosen by the user (``--method image --image PATH``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from veil.anonymize.base import Anonymizer
from veil.errors import ConfigError, InputError

__all__ = ["ReplacementImage", "cover"]

_CACHED_SIZES = 32


def cover(picture: np.ndarray, width: int, height: int) -> np.ndarray:
    """``picture`` scaled to cover ``width x height`` (aspect kept) and centre-cropped to
    exactly that size: RGB ``uint8 (height, width, 3)``."""
    ph, pw = picture.shape[:2]
    scale = max(width / pw, height / ph)
    w, h = max(width, round(pw * scale)), max(height, round(ph * scale))
    shrink = w < pw or h < ph
    resized = cv2.resize(
        picture, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    x0, y0 = (w - width) // 2, (h - height) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


class ReplacementImage(Anonymizer):
    """Put a picture over every face: scaled to cover the bounding box of the face's mask
    (the face box grown by the mask's scale and margin; aspect kept, centre-cropped) and
    blended with the mask's alpha like every method, so nothing outside the mask changes.

    Args:
        image: path of the picture (any format veil reads; transparency is flattened).
            Read when the anonymizer is built: a missing or unreadable file is an error
            naming it before any output is written. ``strength`` has no effect.
    """

    name = "image"

    def __init__(
        self, *, strength: float = 1.0, seed: int | None = None, image: str | Path | None = None
    ) -> None:
        super().__init__(strength=strength, seed=seed)
        if image is None or not str(image):
            raise ConfigError("method 'image' needs a picture: --image PATH")
        from veil.io.images import read_image

        self.path = Path(image)
        try:
            self.picture = read_image(self.path).image
        except InputError as exc:
            raise InputError(f"--image {exc}") from exc
        self._sizes: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> the picture fitted to the box of ``mask``."""
        out = patch.copy()
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if not len(rows):
            return out
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        out[y0:y1, x0:x1] = self._fitted(x1 - x0, y1 - y0)
        return out

    def _fitted(self, width: int, height: int) -> np.ndarray:
        """:func:`cover` of the picture, cached per size (a video repeats a few sizes)."""
        key = (int(width), int(height))
        with self._lock:
            if key in self._sizes:
                self._sizes.move_to_end(key)
                return self._sizes[key]
        fitted = cover(self.picture, *key)
        with self._lock:
            self._sizes[key] = fitted
            if len(self._sizes) > _CACHED_SIZES:
                self._sizes.popitem(last=False)
        return fitted

    def describe(self) -> dict[str, object]:
        h, w = self.picture.shape[:2]
        return {**super().describe(), "image": str(self.path), "image_size": [w, h]}
