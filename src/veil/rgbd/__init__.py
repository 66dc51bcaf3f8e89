"""RGB-D: depth-refined head masks, heads without a visible face, sequences through video
tracking, synthetic scenes."""

from veil.rgbd.depthmask import DepthMasker, check_depth, ellipse_masks
from veil.rgbd.heads import find_heads_without_faces
from veil.rgbd.sequence import RGBDAnonymizer, RGBDConfig, RGBDResult
from veil.rgbd.synth import HEAD_SIZE, SynthFrame, default_intrinsics, make_scene

__all__ = [
    "HEAD_SIZE",
    "DepthMasker",
    "RGBDAnonymizer",
    "RGBDConfig",
    "RGBDResult",
    "SynthFrame",
    "check_depth",
    "default_intrinsics",
    "ellipse_masks",
    "find_heads_without_faces",
    "make_scene",
]
