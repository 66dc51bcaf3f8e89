"""Pixelation: a mosaic of about 5 blocks across the face at ``strength`` 1."""

from __future__ import annotations

import numpy as np

from veil.anonymize.base import Anonymizer

__all__ = ["Pixelate"]


def _block_starts(n: int, block: int) -> np.ndarray:
    """Start index of each block along an axis of ``n`` px; a last sliver joins its neighbour."""
    starts = np.arange(0, n, block)
    if len(starts) > 1 and n - starts[-1] < block / 2:
        starts = starts[:-1]
    return starts


def _block_means(patch: np.ndarray, block: int) -> np.ndarray:
    """Mosaic of ``patch`` (``uint8 (h, w, 3)``): each block replaced by its exact mean."""
    h, w = patch.shape[:2]
    rows, cols = _block_starts(h, block), _block_starts(w, block)
    sums = np.add.reduceat(np.add.reduceat(patch.astype(np.float32), rows, 0), cols, 1)
    heights, widths = np.diff(rows, append=h), np.diff(cols, append=w)
    means = sums / np.outer(heights, widths)[..., None]
    small = np.round(means).astype(np.uint8)
    return np.repeat(np.repeat(small, heights, 0), widths, 1)


class Pixelate(Anonymizer):
    """Mosaic with blocks of ``strength * face_size / 5`` px (at least 2).

    The grid starts at the region's top-left corner, so a face keeps its grid as long
    as its region does not move. Each block is the exact mean of its pixels (what
    ``INTER_AREA`` down + ``INTER_NEAREST`` up approximate when the size is not a
    multiple of the block).
    """

    name = "pixelate"

    def block(self, face_size: float) -> int:
        return max(2, round(self.strength * face_size / 5))

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` ``uint8 (h, w, 3)`` -> mosaic ``uint8 (h, w, 3)``."""
        return _block_means(patch, self.block(face_size))
