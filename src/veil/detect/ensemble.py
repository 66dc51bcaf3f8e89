"""Ensemble: several detectors on the same image, boxes fused (recall first)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from veil.boxes import fuse_boxes
from veil.detect.base import DETECTORS, Detector
from veil.errors import ConfigError
from veil.types import Faces, check_image

__all__ = ["Ensemble"]


class Ensemble(Detector):
    """Run every member detector and fuse overlapping boxes (weighted box fusion).

    Args:
        members: detector instances or registry names (``"centerface"``, ``"haar"``...).
        iou: boxes overlapping at least this much are the same face.
        min_votes: members that must agree for a face to be kept (1 = union, recall
            first; raise it to trade recall for precision).
        threshold: minimum fused score.
    """

    name = "ensemble"

    def __init__(
        self,
        *,
        members: Sequence[Detector | str] = ("centerface", "haar"),
        iou: float = 0.3,
        min_votes: int = 1,
        threshold: float = 0.0,
    ) -> None:
        if not members:
            raise ConfigError("ensemble needs at least one member detector")
        if any(m == "ensemble" for m in members):
            raise ConfigError("an ensemble cannot contain another 'ensemble' by name")
        self.members = [DETECTORS.create(m) if isinstance(m, str) else m for m in members]
        if not 1 <= min_votes <= len(self.members):
            raise ConfigError(f"min_votes must be within [1, {len(self.members)}], got {min_votes}")
        self.iou = iou
        self.min_votes = min_votes
        self.threshold = threshold

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "members": [m.describe() for m in self.members],
            "iou": self.iou,
            "min_votes": self.min_votes,
        }

    def detect(self, image: np.ndarray) -> Faces:
        check_image(image)
        return self._vote([m.detect(image) for m in self.members])

    def detect_window(self, image: np.ndarray) -> Faces:
        check_image(image)
        return self._vote([m.detect_window(image) for m in self.members])

    def detect_keyframe(self, image: np.ndarray) -> Faces:
        check_image(image)
        return self._vote([m.detect_keyframe(image) for m in self.members])

    def _vote(self, found: list[Faces]) -> Faces:
        source = np.concatenate([np.full(len(f), i) for i, f in enumerate(found)])
        merged = Faces.merge([Faces(xyxy=f.xyxy, scores=f.scores) for f in found])
        if not len(merged):
            return Faces.empty()
        xyxy, scores, groups = fuse_boxes(merged.xyxy, merged.scores, self.iou)  # type: ignore[arg-type]
        votes = np.array([len(set(source[g].tolist())) for g in groups])
        keep = (votes >= self.min_votes) & (scores >= self.threshold)
        return Faces(xyxy=xyxy[keep], scores=scores[keep], data={"votes": votes[keep].tolist()})
