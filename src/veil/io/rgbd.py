"""RGB-D I/O: colour + depth pairs in, anonymized colour + policy-treated depth out.

Depth files:

- **16-bit PNG** (or TIFF): integer units, metres = value x ``depth_scale`` (default 0.001:
  millimetres, as Kinect, RealSense and TUM-style datasets store them); 0 = no reading.
- **.npy**: float arrays are metres; integer arrays are scaled like PNGs.
- 32-bit float TIFF: metres.

Pairing rules (:func:`pair_inputs`), first match wins:

1. ``COLOR`` is a file: ``DEPTH`` must be a file too.
2. ``COLOR`` and ``DEPTH`` are folders: files are matched by *key*, the file stem with a
   trailing ``_color``/``_rgb``/``_image`` or ``_depth``/``_depth_mm`` (also with ``-``)
   removed: ``color/0001.png`` + ``depth/0001.png``, or ``rgb/a_color.jpg`` + ``d/a_depth.npy``.
3. ``COLOR`` is a folder and ``DEPTH`` is not given: its ``color/`` (or ``rgb/``) and
   ``depth/`` sub-folders are matched as in 2; without them, ``X_color.*`` / ``X_depth.*``
   files side by side in the folder are paired.

A colour file without depth is an error naming it (never silently skipped).

Intrinsics JSON (:func:`read_intrinsics`): ``{"fx", "fy", "cx", "cy"}``, the same under an
``"intrinsics"`` or ``"intrinsics_est"`` key, a 3x3 ``"K"`` matrix, or a list of such
records (the layout of ``meta.json`` in the PCL five-people sample; the first one is used).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.errors import ConfigError, InputError, OutputError
from veil.io.images import IMAGE_SUFFIXES, PNG_RLE

__all__ = [
    "DEPTH_POLICIES",
    "DEPTH_SUFFIXES",
    "RGBDPair",
    "apply_depth_policy",
    "pair_inputs",
    "read_depth",
    "read_intrinsics",
    "write_depth",
]

DEPTH_SUFFIXES = frozenset({".png", ".npy", ".tif", ".tiff"})
DEPTH_POLICIES = ("keep", "flatten", "noise")
_KEY = re.compile(r"[_-](color|colour|rgb|image|depth|depth_mm)$", re.IGNORECASE)


@dataclass(frozen=True)
class RGBDPair:
    """A colour file and its depth file; ``key`` is the shared name (for outputs)."""

    color: Path
    depth: Path
    key: str


def read_depth(path: str | os.PathLike[str], *, depth_scale: float = 0.001) -> np.ndarray:
    """Read a depth file as ``float32 (H, W)`` metres (0 = no reading).

    Raises:
        InputError: missing, unreadable, not single-channel, or an unsupported dtype.
    """
    path = Path(path)
    if depth_scale <= 0:
        raise ConfigError(f"depth_scale must be positive, got {depth_scale}")
    if not path.is_file():
        raise InputError(f"{path}: depth file not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read depth array: {exc}") from exc
    elif suffix in DEPTH_SUFFIXES:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise InputError(f"{path}: not a readable depth image")
    else:
        raise InputError(f"{path}: unsupported depth file type {suffix!r}")
    return _to_metres(path, raw, depth_scale)


def _to_metres(path: Path, raw: np.ndarray, scale: float) -> np.ndarray:
    if raw.ndim != 2:
        raise InputError(f"{path}: expected single-channel depth (H, W), got shape {raw.shape}")
    if raw.dtype.kind == "f":
        depth = raw.astype(np.float32)
    elif raw.dtype in (np.uint16, np.int32, np.uint32, np.int16):
        depth = raw.astype(np.float32) * np.float32(scale)
    else:
        raise InputError(
            f"{path}: depth must be 16-bit integers (scaled by depth_scale) or float "
            f"metres, got {raw.dtype}"
        )
    bad = ~np.isfinite(depth) | (depth < 0)
    depth[bad] = 0
    return depth


def write_depth(
    path: str | os.PathLike[str],
    depth: np.ndarray,
    *,
    depth_scale: float = 0.001,
    png_compression: int = 1,
) -> None:
    """Write ``float32 (H, W)`` metres atomically: ``.png`` as 16-bit units of
    ``depth_scale`` (values past 65535 units become 0, invalid; zlib level
    ``png_compression``, 0-9), ``.npy`` as float32."""
    path = Path(path)
    depth = np.asarray(depth, np.float32)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".npy"):
        raise OutputError(f"{path}: depth is written as .png (16-bit) or .npy, not {suffix!r}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder {path.parent}: {exc}") from exc
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}")
    try:
        if suffix == ".png":
            units = np.rint(np.nan_to_num(depth) / depth_scale)
            units[(units < 0) | (units > 65535)] = 0
            level = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
            if 1 <= png_compression <= 3:  # run-length strategy: faster and smaller here
                level += PNG_RLE
            if not cv2.imwrite(str(tmp), units.astype(np.uint16), level):
                raise OSError("OpenCV could not encode the PNG")
        else:
            with open(tmp, "wb") as fh:
                np.save(fh, depth)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write depth: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_intrinsics(path: str | os.PathLike[str]) -> dict[str, float]:
    """``{"fx", "fy", "cx", "cy"}`` from a JSON file (layouts in the module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: intrinsics file not found") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read intrinsics JSON: {exc}") from exc
    found = _find_intrinsics(data)
    if found is None:
        raise InputError(f"{path}: no fx, fy, cx, cy (or 3x3 'K') found in the JSON")
    if found["fx"] <= 0 or found["fy"] <= 0:
        raise InputError(f"{path}: focal lengths must be positive, got {found}")
    return found


def _find_intrinsics(data: Any) -> dict[str, float] | None:
    if isinstance(data, list):
        return _find_intrinsics(data[0]) if data else None
    if not isinstance(data, dict):
        return None
    if all(k in data for k in ("fx", "fy", "cx", "cy")):
        try:
            return {k: float(data[k]) for k in ("fx", "fy", "cx", "cy")}
        except (TypeError, ValueError):
            return None
    if "K" in data:
        k = np.asarray(data["K"], dtype=np.float64).reshape(-1)
        if k.size == 9:
            return {"fx": k[0], "fy": k[4], "cx": k[2], "cy": k[5]}
    for key in ("intrinsics", "intrinsics_est", "camera"):
        if key in data:
            return _find_intrinsics(data[key])
    return None


def pair_inputs(
    color: str | os.PathLike[str], depth: str | os.PathLike[str] | None
) -> list[RGBDPair]:
    """Colour/depth pairs, sorted by key (rules in the module docstring)."""
    color, depth_path = Path(color), None if depth is None else Path(depth)
    if not color.exists():
        raise InputError(f"{color}: not found")
    if color.is_file():
        if depth_path is None or not depth_path.is_file():
            raise InputError(f"{color}: a colour file needs a depth file (--depth), got {depth}")
        return [RGBDPair(color, depth_path, _key(color))]
    if depth_path is not None:
        if not depth_path.is_dir():
            raise InputError(f"{depth_path}: expected a depth folder to match folder {color}")
        return _match(_files(color, IMAGE_SUFFIXES), _files(depth_path, DEPTH_SUFFIXES), color)
    for sub in ("color", "rgb"):
        if (color / sub).is_dir() and (color / "depth").is_dir():
            return pair_inputs(color / sub, color / "depth")
    files = _files(color, IMAGE_SUFFIXES | DEPTH_SUFFIXES)
    colors = [f for f in files if not re.search(r"[_-]depth(_mm)?$", f.stem, re.IGNORECASE)]
    depths = [f for f in files if f not in colors]
    return _match(colors, depths, color)


def _files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def _key(path: Path) -> str:
    return _KEY.sub("", path.stem)


def _match(colors: list[Path], depths: list[Path], where: Path) -> list[RGBDPair]:
    by_key: dict[str, Path] = {}
    for d in depths:
        if _key(d) in by_key:
            raise InputError(f"{d}: two depth files for key {_key(d)!r} (also {by_key[_key(d)]})")
        by_key[_key(d)] = d
    if not colors:
        raise InputError(f"{where}: no colour images found")
    missing = [c for c in colors if _key(c) not in by_key]
    if missing:
        names = ", ".join(str(m) for m in missing[:3])
        raise InputError(f"{names}: no matching depth file ({len(missing)} colour files unmatched)")
    return sorted((RGBDPair(c, by_key[_key(c)], _key(c)) for c in colors), key=lambda p: p.key)


def apply_depth_policy(
    depth: np.ndarray,
    masks: np.ndarray,
    policy: str,
    *,
    noise: float = 0.02,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Return a new depth map with the relief inside ``masks`` (``bool (n, H, W)``) removed.

    ``keep``: unchanged copy. ``flatten``: valid depth inside each mask becomes a plane
    fitted to it (least squares in pixel coordinates), shifted to pass through the mask's
    median depth: the head's distance and tilt survive, its shape does not. ``noise``:
    ``flatten`` plus gaussian noise of ``noise`` metres (default 2 cm, above the depth of a
    nose), so the output does not show a suspiciously perfect plane. Unknown (0) pixels
    stay unknown.
    """
    if policy not in DEPTH_POLICIES:
        raise ConfigError(f"unknown depth policy {policy!r}; choose one of: {DEPTH_POLICIES}")
    out = np.array(depth, np.float32, copy=True)
    if policy == "keep":
        return out
    rng = rng or np.random.default_rng()
    for mask in masks:
        sel = mask & (out > 0)
        if sel.sum() < 3:
            continue
        ys, xs = np.nonzero(sel)
        z = out[ys, xs].astype(np.float64)
        a = np.column_stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
        coef, *_ = np.linalg.lstsq(a, z, rcond=None)
        plane = a @ coef
        plane += np.median(z) - np.median(plane)
        if policy == "noise":
            plane += rng.normal(0.0, noise, plane.shape)
        out[ys, xs] = np.maximum(plane, 1e-3).astype(np.float32)
    return out
