"""RGB-D: depth-refined head masks, heads without a visible face, synthetic scenes."""

from veil.rgbd.depthmask import DepthMasker, check_depth, ellipse_masks
from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.synth import HEAD_SIZE, SynthFrame, default_intrinsics, make_scene

__all__ = [
    "HEAD_SIZE",
    "DepthMasker",
    "SynthFrame",
    "check_depth",
    "default_intrinsics",
    "ellipse_masks",
    "find_heads_without_faces",
    "make_scene",
]
