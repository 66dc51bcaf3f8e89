"""dlib face detectors: HOG + linear SVM (fast, frontal only) and the MMOD CNN (slow, robust).

Both need the ``dlib`` extra (``dlib-bin`` and ``face_recognition_models``), imported
only when a detector is built.

**Scores.** dlib reports a raw detection margin (SVM or CNN output; 0 is dlib's own
decision boundary, good faces are typically 0.5 to 3). veil maps it to ``[0, 1]`` with
``sigmoid(2 * margin)`` (:func:`squash_margin`): margin 0 -> 0.5, 1 -> 0.88, -1 -> 0.12.
``threshold`` is given as a *raw margin*, like dlib's ``adjust_threshold``.

**Threads.** dlib detectors are not documented as thread-safe (the CNN keeps its layer
outputs inside the network object), so each thread builds and keeps its own detector.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from veil.detect.base import Detector
from veil.errors import BackendError, ConfigError, MissingExtraError
from veil.types import Faces, check_image

__all__ = ["DlibCNN", "DlibHOG", "squash_margin"]


def squash_margin(margin: np.ndarray) -> np.ndarray:
    """Raw dlib margins ``(n,)`` -> scores ``float32 (n,)`` in ``[0, 1]``: ``sigmoid(2 m)``."""
    m = np.asarray(margin, np.float64)
    return (1.0 / (1.0 + np.exp(-2.0 * m))).astype(np.float32)


def _import_dlib(feature: str) -> ModuleType:
    try:
        import dlib
    except ImportError as exc:
        raise MissingExtraError("dlib-bin", "dlib", feature) from exc
    return dlib


def _default_cnn_model() -> Path:
    try:
        import face_recognition_models
    except ImportError as exc:
        raise MissingExtraError("face_recognition_models", "dlib", "the dlib-cnn detector") from exc
    return Path(face_recognition_models.cnn_face_detector_model_location())


def _check_upsample(upsample: int, name: str) -> int:
    if int(upsample) != upsample or upsample < 0:
        raise ConfigError(f"{name}: upsample must be an integer >= 0, got {upsample}")
    return int(upsample)


def _faces(rects: list[Any], margins: list[float], shape: tuple[int, ...]) -> Faces:
    """dlib rectangles (inclusive corners) -> ``Faces`` clipped to ``shape[:2]``."""
    xyxy = np.asarray(
        [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32
    ).reshape(-1, 4)
    faces = Faces(xyxy=xyxy, scores=squash_margin(np.asarray(margins, np.float64)))
    return faces.clip((int(shape[0]), int(shape[1])))


class _DlibDetector(Detector):
    """Shared plumbing: input checks, one detector object per thread."""

    def __init__(self, *, upsample: int, threshold: float) -> None:
        self.upsample = _check_upsample(upsample, self.name)
        self.threshold = float(threshold)
        self._local = threading.local()
        self._model()  # build now so that a missing model fails here, not mid-run

    def _build(self) -> Any:
        raise NotImplementedError

    def _model(self) -> Any:
        """This thread's dlib detector, built on first use in the thread."""
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = self._build()
        return model

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in an RGB ``uint8 (H, W, 3)`` image; ``xyxy float32 (n, 4)``, scores in [0, 1]."""
        image = np.ascontiguousarray(check_image(image))
        try:
            rects, margins = self._run(image)
        except RuntimeError as exc:
            raise BackendError(f"{self.name} failed on a {image.shape} image: {exc}") from exc
        return _faces(rects, margins, image.shape)

    def _run(self, image: np.ndarray) -> tuple[list[Any], list[float]]:
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "upsample": self.upsample, "threshold": self.threshold}


class DlibHOG(_DlibDetector):
    """dlib's HOG + linear SVM frontal face detector.

    Args:
        upsample: times the image is doubled before detection (1 finds faces from about
            40 px; each step costs about 4x the time).
        threshold: raw SVM margin a face needs (dlib's ``adjust_threshold``; 0 is dlib's
            default, negative values trade precision for recall).
    """

    name = "dlib-hog"

    def __init__(self, *, upsample: int = 1, threshold: float = 0.0) -> None:
        super().__init__(upsample=upsample, threshold=threshold)

    def _build(self) -> Any:
        return _import_dlib("the dlib-hog detector").get_frontal_face_detector()

    def _run(self, image: np.ndarray) -> tuple[list[Any], list[float]]:
        rects, margins, _ = self._model().run(image, self.upsample, self.threshold)
        return list(rects), list(margins)


class DlibCNN(_DlibDetector):
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``).

    Args:
        upsample: times the image is doubled before detection (0 finds faces from about
            80 px, 1 from about 40 px at 4x the time).
        threshold: raw CNN margin a face needs; detections below it are dropped.
        model_path: the ``.dat`` model; default the file in ``face_recognition_models``.
    """

    name = "dlib-cnn"

    def __init__(
        self,
        *,
        upsample: int = 0,
        threshold: float = 0.0,
        model_path: str | Path | None = None,
    ) -> None:
        self.model_path = _default_cnn_model() if model_path is None else Path(model_path)
        if not self.model_path.is_file():
            raise BackendError(f"dlib-cnn model file not found: {self.model_path}")
        super().__init__(upsample=upsample, threshold=threshold)

    def _build(self) -> Any:
        dlib = _import_dlib("the dlib-cnn detector")
        try:
            return dlib.cnn_face_detection_model_v1(str(self.model_path))
        except RuntimeError as exc:
            raise BackendError(f"dlib-cnn could not load {self.model_path}: {exc}") from exc

    def _run(self, image: np.ndarray) -> tuple[list[Any], list[float]]:
        found = [d for d in self._model()(image, self.upsample) if d.confidence >= self.threshold]
        return [d.rect for d in found], [float(d.confidence) for d in found]

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "model_path": str(self.model_path)}
