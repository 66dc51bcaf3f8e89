"""Measurements of anonymization quality: does every face change, and nothing else?"""

from veil.evaluate.coverage import (
    COVERED_THRESHOLD,
    SIZE_BINS,
    CoverageReport,
    GTImage,
    ImageCoverage,
    changed_mask,
    evaluate_pair,
    face_coverage,
    false_alarms,
    load_ground_truth,
    outside_change,
    size_bin,
)

__all__ = [
    "COVERED_THRESHOLD",
    "SIZE_BINS",
    "CoverageReport",
    "GTImage",
    "ImageCoverage",
    "changed_mask",
    "evaluate_pair",
    "face_coverage",
    "false_alarms",
    "load_ground_truth",
    "outside_change",
    "size_bin",
]
