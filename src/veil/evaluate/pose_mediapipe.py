"""MediaPipe's pose landmark model as a top-down COCO pose estimator.

The ``mediapipe`` wheel ships ``modules/pose_landmark/pose_landmark_full.tflite``
(BlazePose GHUM "full", Apache-2.0). OpenVINO reads ``.tflite`` files directly, so veil
runs the model without importing mediapipe: ``pip install --no-deps mediapipe==0.10.14``
only places the files, and nothing is downloaded at run time.

Top-down, MediaPipe's region-of-interest convention: each person box becomes a square
centred on the box, ``1.25 x`` its longer side (no rotation: the boxes carry none), cropped
with zero padding and resized to ``256 x 256``, RGB floats in ``[0, 1]`` (NHWC). The model
answers 39 landmarks ``(x, y, z, visibility, presence)`` in input pixels; the first 33 are
the body. Visibility and presence are logits (MediaPipe applies a sigmoid); a second output
is the probability that a person is in the crop at all. A keypoint's confidence is
``sigmoid(visibility) * pose presence``, so a crop without a person ranks low in COCO AP.
MediaPipe's "left" is the person's left, as in COCO.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from veil.errors import BackendError, InputError, MissingExtraError
from veil.types import check_image

__all__ = [
    "MEDIAPIPE_TO_COCO",
    "MediaPipePoseEstimator",
    "OpenVinoPoseRunner",
    "PoseRunner",
    "crop_roi",
    "find_mediapipe_pose_model",
    "landmarks_to_coco",
    "square_roi",
]

#: MediaPipe body landmark index of each COCO keypoint, in COCO order (nose, eyes, ears,
#: shoulders, elbows, wrists, hips, knees, ankles; left before right).
MEDIAPIPE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
INPUT_SIZE = 256
ROI_SCALE = 1.25
MODEL_IN_PACKAGE = ("modules", "pose_landmark", "pose_landmark_full.tflite")
INSTALL_HINT = "pip install --no-deps mediapipe==0.10.14"

#: ``runner(x)`` with ``x`` float32 ``(1, 256, 256, 3)`` in ``[0, 1]`` -> ``(landmarks,
#: presence)``: raw float32 ``(39, 5)`` (or ``(195,)``) rows x, y (input pixels), z,
#: visibility and presence logits; and the pose presence probability in ``[0, 1]``.
PoseRunner = Callable[[np.ndarray], tuple[np.ndarray, float]]


def find_mediapipe_pose_model() -> Path:
    """The ``pose_landmark_full.tflite`` of the installed mediapipe package (not imported)."""
    try:
        spec = find_spec("mediapipe")
    except (ImportError, ValueError):
        spec = None
    origin = None if spec is None else spec.origin
    if origin is None and spec is not None and spec.submodule_search_locations:
        origin = str(Path(next(iter(spec.submodule_search_locations))) / "__init__.py")
    if origin is None:
        raise InputError(
            "pose model 'mediapipe': the mediapipe package is not installed; "
            f"{INSTALL_HINT} places its model files (veil does not import it)"
        )
    path = Path(origin).parent.joinpath(*MODEL_IN_PACKAGE)
    if not path.is_file():
        raise InputError(
            f"pose model 'mediapipe': {path} not found in the installed mediapipe; {INSTALL_HINT}"
        )
    return path


def square_roi(box_xyxy: np.ndarray, scale: float = ROI_SCALE) -> tuple[float, float, float]:
    """``(cx, cy, side)``: the square centred on a box, ``scale`` times its longer side
    (at least one pixel)."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box_xyxy).reshape(4))
    return (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) * scale, (y1 - y0) * scale, 1.0)


def crop_roi(image: np.ndarray, roi: tuple[float, float, float], size: int) -> np.ndarray:
    """The square ``roi`` of an RGB ``uint8`` image as float32 ``(size, size, 3)`` in [0, 1].

    Outside the image is zero. Continuous coordinates: crop position ``u`` (0..size) is
    image position ``cx - side / 2 + u * side / size``.
    """
    cx, cy, side = roi
    s = size / side
    # pixel index i covers [i, i + 1): u_i + 0.5 = s * (x_i + 0.5 - x0)
    tx, ty = s * (0.5 - (cx - side / 2)) - 0.5, s * (0.5 - (cy - side / 2)) - 0.5
    m = np.array([[s, 0, tx], [0, s, ty]], np.float64)
    # bilinear, as MediaPipe's own CPU crop (ImageToTensorCalculator, OpenCV warpAffine)
    crop = cv2.warpAffine(
        image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop.astype(np.float32) / 255


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -60, 60)))


def landmarks_to_coco(
    raw: np.ndarray,
    roi: tuple[float, float, float],
    *,
    size: int = INPUT_SIZE,
    presence: float = 1.0,
) -> np.ndarray:
    """Raw landmarks ``(39, 5)`` of the crop ``roi`` -> COCO ``float32 (17, 3)``, image px;
    confidence ``sigmoid(visibility) * presence``."""
    lm = np.asarray(raw, np.float64).reshape(-1, 5)
    if lm.shape[0] < 33:
        raise BackendError(f"pose landmarks: expected 33+ landmarks x 5, got shape {raw.shape}")
    cx, cy, side = roi
    body = lm[list(MEDIAPIPE_TO_COCO)]
    out = np.empty((len(MEDIAPIPE_TO_COCO), 3), np.float32)
    out[:, 0] = cx - side / 2 + body[:, 0] * side / size
    out[:, 1] = cy - side / 2 + body[:, 1] * side / size
    out[:, 2] = _sigmoid(body[:, 3]) * float(np.clip(presence, 0, 1))
    return out


class OpenVinoPoseRunner:
    """Runs the ``.tflite`` pose landmark model with OpenVINO; one request, serialised.

    Outputs used: ``Identity`` ``(1, 195)`` landmarks and ``Identity_1`` ``(1, 1)`` pose
    presence (already a probability in the model).
    """

    def __init__(self, path: str | Path) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise MissingExtraError("openvino", "openvino", "the MediaPipe pose model") from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"pose model {self.path}: no such file")
        try:
            core = ov.Core()
            compiled = core.compile_model(core.read_model(str(self.path)), "CPU")
            self._landmarks = compiled.output("Identity")
            self._presence = compiled.output("Identity_1")
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise BackendError(f"pose model {self.path}: cannot load: {exc}") from exc
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        try:
            with self._lock:
                out = self._request.infer({0: x})
                landmarks = np.array(out[self._landmarks], np.float32).reshape(-1, 5)
                presence = float(np.asarray(out[self._presence]).reshape(-1)[0])
        except Exception as exc:
            raise BackendError(f"pose model {self.path}: inference failed: {exc}") from exc
        return landmarks, presence


class MediaPipePoseEstimator:
    """Top-down COCO keypoints from MediaPipe's pose landmark model (see the module docs).

    Args:
        model_path: ``pose_landmark_full.tflite``; ``None`` finds it in the installed
            mediapipe package (:func:`find_mediapipe_pose_model`).
        runner: replaces the OpenVINO runner (tests): see :data:`PoseRunner`.
        person_boxes: ``person_boxes(image) -> xyxy (n, 4)`` used by :meth:`estimate`;
            ``None``: the whole image is one person.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        runner: PoseRunner | None = None,
        person_boxes: Callable[[np.ndarray], np.ndarray] | None = None,
        input_size: int = INPUT_SIZE,
        roi_scale: float = ROI_SCALE,
    ) -> None:
        if runner is None:
            runner = OpenVinoPoseRunner(model_path or find_mediapipe_pose_model())
        self.runner = runner
        self.person_boxes = person_boxes
        self.size = input_size
        self.roi_scale = roi_scale

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """One ``float32 (17, 3)`` per box of ``person_boxes`` (or the whole image)."""
        image = check_image(image_rgb)
        if self.person_boxes is not None:
            return self.estimate_in_boxes(image, self.person_boxes(image))
        h, w = image.shape[:2]
        return [self._run(image, (w / 2, h / 2, max(w, h)))]  # the whole image, no margin

    def estimate_in_boxes(self, image_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
        """One ``float32 (17, 3)`` per person box ``xyxy`` (image pixels), in box order."""
        image = check_image(image_rgb)
        boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
        return [self._run(image, square_roi(b, self.roi_scale)) for b in boxes]

    def _run(self, image: np.ndarray, roi: tuple[float, float, float]) -> np.ndarray:
        landmarks, presence = self.runner(crop_roi(image, roi, self.size)[None])
        return landmarks_to_coco(landmarks, roi, size=self.size, presence=presence)
