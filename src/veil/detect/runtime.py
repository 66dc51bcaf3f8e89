"""CenterFace runners (OpenVINO, ONNX Runtime) and the choice between them.

:func:`choose_runner` turns a backend and a precision (``auto``, ``f32``, ``bf16``,
``int8``) into a runner. ``auto`` asks :func:`veil.detect.precision.select`, which times
the candidates on :func:`probe_inputs` once per machine and caches the choice in
``<veil cache>/precision.json``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from veil._machine import cache_dir, cpu_count, cpu_model
from veil.detect.precision import Candidate, Choice, ChoiceCache, Decode, select
from veil.errors import ConfigError, MissingExtraError

__all__ = ["BACKENDS", "choose_runner", "face_scene", "forget_choices", "probe_inputs"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "openvino", "onnxruntime")
_MAX_REQUESTS = 12  # input shapes kept planned per thread (frames, windows, batches)
#: bump when the probe inputs or the rules change, so cached choices are measured again
_SELECTION_VERSION = 1


class _OpenVINO:
    """OpenVINO runner: the model is read once and compiled once per calling thread.

    Each thread gets its own compiled model with ``threads`` inference threads and CPU
    pinning off. With pinning on (OpenVINO's default), single-threaded models in several
    threads or processes were all pinned to the same core and ran one at a time; shared
    streams were no better, and two streams with dynamic shapes deadlocked (2026.4).
    ``precision`` sets ``INFERENCE_PRECISION_HINT`` (``None``: OpenVINO's default, bf16
    where the CPU has it); an int8 model runs its remaining float layers in f32.
    """

    name = "openvino"

    def __init__(self, path: Path, threads: int, precision: str | None = "f32") -> None:
        from veil.detect._openvino import import_openvino

        ov = import_openvino()  # without the model-conversion tool: faster start-up
        from openvino.preprocess import PrePostProcessor

        self._core = ov.Core()
        _use_model_cache(self._core)
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
        if precision is not None:
            self._config["INFERENCE_PRECISION_HINT"] = "bf16" if precision == "bf16" else "f32"
        self.precision = precision or "default"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._compile()  # fail early (bad model) in the constructing thread

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


def _use_model_cache(core: Any) -> None:
    """Keep compiled models in ``<veil cache>/openvino``: loading one took 0.13 s against
    0.32 s to compile it again (median of 6, 2-core EPYC, bf16), paid per thread."""
    folder = cache_dir() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(folder)})
    except Exception as exc:  # a read-only home: compile every time
        log.info("OpenVINO model cache off (%s): %s", folder, exc)


class _OnnxRuntime:
    """ONNX Runtime runner (f32); the model's fixed input shape is made dynamic with ``onnx``."""

    name = "onnxruntime"
    precision = "f32"

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

    def __call__(self, image: np.ndarray) -> list[np.ndarray]:
        """Outputs for one RGB ``uint8 (H, W, 3)`` image or a batch ``(N, H, W, 3)``
        (sides multiples of 32)."""
        batch = image[None] if image.ndim == 3 else image
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        return list(self.session.run(None, {self.input_name: blob}))


Runner = _OpenVINO | _OnnxRuntime


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _openvino_capabilities() -> frozenset[str] | None:
    """OpenVINO's CPU capabilities (``BF16``, ``INT8``...); ``None`` without OpenVINO."""
    from veil.detect._openvino import import_openvino

    try:
        ov = import_openvino()
    except ImportError:
        return None
    try:
        return frozenset(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception as exc:  # a CPU plug-in that cannot load: no OpenVINO candidates
        log.info("OpenVINO CPU plug-in unavailable: %s", exc)
        return None


@functools.lru_cache(maxsize=8)
def _file_hash(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """First 16 hex digits of the sha256 of ``path`` (remembered per mtime and size)."""
    st = path.stat()
    return _file_hash(path, st.st_mtime_ns, st.st_size)


#: (x, y) of the photo's top-left corner as a share of the scene, its scale x scene
#: height / 736, mirrored: faces of ~15-90 px in a 1280x736 scene
_LAYOUT = [
    ((0.016, 0.04), 0.9, False),
    ((0.44, 0.05), 0.5, True),
    ((0.69, 0.08), 0.35, False),
    ((0.86, 0.41), 0.22, True),
    ((0.47, 0.57), 0.16, False),
]


def face_scene(
    size: tuple[int, int] = (1280, 736), shift: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """A generated photo with five faces: scikit-image's coffee photo as background and
    its astronaut portrait pasted at five sizes (faces ~2-12% of the height), moved by
    ``shift (dx, dy)`` pixels. Returns ``(RGB uint8 (h, w, 3), face boxes xyxy (5, 4))``."""
    import skimage.data

    w, h = size
    scene = cv2.resize(skimage.data.coffee(), (w, h), interpolation=cv2.INTER_AREA)
    photo = skimage.data.astronaut()
    face = np.array([176, 66, 272, 162], np.float32)  # the astronaut's face box
    boxes = []
    for (fx, fy), rel, mirror in _LAYOUT:
        scale = rel * h / 736
        x, y = int(fx * w) + shift[0], int(fy * h) + shift[1]
        src = photo[:, ::-1] if mirror else photo
        part = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + part.shape[1], w), min(y + part.shape[0], h)
        if x1 > x0 and y1 > y0:
            scene[y0:y1, x0:x1] = part[y0 - y : y1 - y, x0 - x : x1 - x]
        fx0, fx1 = (512 - face[2], 512 - face[0]) if mirror else (face[0], face[2])
        boxes.append(np.array([fx0, face[1], fx1, face[3]]) * scale + [x, y, x, y])
    return np.ascontiguousarray(scene), np.array(boxes, np.float32)


def probe_inputs() -> list[np.ndarray]:
    """Inputs shaped like veil's work, with faces of 15-90 px: a 1280x736 frame, the same
    scene at 640x384, and a batch of eight 128-px small-face windows (uint8 RGB)."""
    scene, boxes = face_scene((1280, 736))
    windows = []
    for i in range(8):
        x0, y0, x1, y1 = boxes[i % len(boxes)]
        side = 2.5 * (x1 - x0) * (1 + 0.2 * (i // len(boxes)))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ax, ay = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
        crop = scene[ay : ay + int(side), ax : ax + int(side)]
        windows.append(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_LINEAR))
    small = cv2.resize(scene, (640, 368), interpolation=cv2.INTER_AREA)
    small = cv2.copyMakeBorder(small, 0, 16, 0, 0, cv2.BORDER_CONSTANT, value=0)
    return [scene, small, np.stack(windows)]


def _choices_file() -> Path:
    return cache_dir() / "precision.json"


def forget_choices() -> None:
    """Delete the cached choices (every key): the next ``auto`` measures again."""
    _choices_file().unlink(missing_ok=True)


def _candidates(backend: str, path: Path, threads: int, int8: Path | None) -> list[Candidate]:
    caps = _openvino_capabilities() if backend in ("auto", "openvino") else None
    out = []
    if caps is not None:
        out.append(Candidate("openvino-f32", "f32", lambda: _OpenVINO(path, threads, "f32")))
    if backend in ("auto", "onnxruntime"):
        out.append(Candidate("onnxruntime-f32", "f32", lambda: _OnnxRuntime(path, threads)))
    if caps is not None and "BF16" in caps:
        out.append(Candidate("openvino-bf16", "bf16", lambda: _OpenVINO(path, threads, "bf16")))
    if caps is not None and int8 is not None:
        out.append(Candidate("openvino-int8", "int8", lambda: _OpenVINO(int8, threads, "int8")))
    return out


def _explicit(backend: str, precision: str, path: Path, threads: int) -> Runner:
    """The runner for an explicit precision; ``ConfigError`` where it cannot run."""
    from veil.detect.int8 import int8_model

    caps = _openvino_capabilities() if backend in ("auto", "openvino") else None
    if precision == "f32":
        if caps is not None:
            return _OpenVINO(path, threads, "f32")
        if backend == "openvino":
            raise MissingExtraError("openvino", "openvino", "the openvino backend")
        return _OnnxRuntime(path, threads)
    if caps is None:
        raise ConfigError(f"precision {precision} needs the openvino backend (backend={backend})")
    if precision == "bf16":
        if "BF16" not in caps:
            raise ConfigError("precision bf16: this CPU has no bf16 support in OpenVINO")
        return _OpenVINO(path, threads, "bf16")
    int8 = int8_model(path, build=True, retry=True)
    if int8 is None:
        raise ConfigError(
            "precision int8 needs an int8 CenterFace: install nncf (pip install nncf) so "
            "veil builds it on first use, or run scripts/build_int8_centerface.py"
        )
    return _OpenVINO(int8, threads, "int8")


def choose_runner(
    backend: str,
    precision: str,
    path: Path,
    threads: int,
    decode: Callable[[float], Decode],
) -> tuple[Runner, Choice]:
    """The runner for ``backend`` and ``precision`` (already resolved, see
    :func:`veil.detect.precision.resolve_precision`) and why it was chosen.
    ``decode(threshold)`` turns model outputs into boxes for the comparison."""
    from veil.detect.int8 import int8_model, int8_selectable

    if backend not in BACKENDS:
        raise ConfigError(f"unknown centerface backend {backend!r}; choose one of: {BACKENDS}")
    if precision != "auto":
        runner = _explicit(backend, precision, path, threads)
        return runner, Choice(f"{runner.name}-{runner.precision}", f"precision={precision}")
    int8 = int8_model(path, build=int8_selectable()) if backend != "onnxruntime" else None
    candidates = _candidates(backend, path, threads, int8)
    if not candidates:
        if backend == "openvino":
            raise MissingExtraError("openvino", "openvino", "the openvino backend")
        raise MissingExtraError("onnxruntime", "onnxruntime", "the centerface detector")
    if len(candidates) == 1:
        try:
            only = cast(Runner, candidates[0].build())
        except ImportError as exc:
            raise MissingExtraError(
                "onnxruntime", "onnxruntime", "the centerface detector"
            ) from exc
        return only, Choice(candidates[0].name, "the only candidate for this backend")
    key = {
        "cpu": cpu_model(),
        "openvino": _version("openvino"),
        "onnxruntime": _version("onnxruntime"),
        "model": file_hash(path),
        "int8": file_hash(int8) if int8 is not None else None,
        "threads": threads if threads > 0 else cpu_count(),
        "backend": backend,
        "selection": _SELECTION_VERSION,
    }
    cache = ChoiceCache(_choices_file())
    choice, chosen = select(candidates, probe_inputs, decode(0.15), key=key, cache=cache)
    return cast(Runner, chosen), choice
