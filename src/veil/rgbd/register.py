"""Colour/depth registration: shift a depth map onto its colour image.

Sensors that claim "registered" frames are sometimes off by tens of pixels: in the PCL
Kinect frame in ../shared/data the heads in depth lie about 16 px right of the heads in
colour, and head masks grown from that depth half-miss some heads; ``--depth-shift
-16,0`` put every head under its mask (checked by eye). A constant shift is a
first-order fix (the true offset varies with distance); pixels shifted in from outside
the frame have unknown depth (0), which the depth masker treats as head (fail closed).
Estimating the shift automatically (colour vs depth edge alignment was tried) chose
-32 px on that frame, which is wrong, so it is not offered.
"""

from __future__ import annotations

import numpy as np

from veil.errors import ConfigError

__all__ = ["parse_shift", "shift_depth"]


def shift_depth(depth: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Depth ``float32 (H, W)`` moved ``dx`` px right and ``dy`` px down; new pixels are 0."""
    out = np.zeros_like(depth)
    h, w = depth.shape
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[dst_y, dst_x] = depth[src_y, src_x]
    return out


def parse_shift(text: str) -> tuple[int, int]:
    """``"DX,DY"`` (pixels) -> ints; anything else raises ``ConfigError``."""
    try:
        dx, dy = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--depth-shift: expected 'DX,DY' in pixels, got {text!r}") from None
    return dx, dy
