"""Data files shipped with veil, loaded through :mod:`importlib.resources`.

``mean_face.npz`` is the default texture of the ``synthetic`` anonymizer: a k-Same average
(Newton et al., 2005) over many identities, built by ``scripts/build_mean_face.py``. It
holds no photo of anyone, only the average of every source face after aligning each one to
a common landmark frame; its ``meta`` records how it was built and how far (in dlib's
embedding space) it lies from every source photo.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import InputError

__all__ = [
    "MEAN_FACE",
    "SYNTHETIC_FACES",
    "MeanFace",
    "SyntheticFaces",
    "load_mean_face",
    "load_synthetic_faces",
]

MEAN_FACE = "mean_face.npz"
SYNTHETIC_FACES = "synthetic_faces.npz"


@dataclass(frozen=True)
class MeanFace:
    """An average face in a canonical frame.

    Attributes:
        texture: RGB ``uint8 (S, S, 3)``, the averaged, aligned faces.
        shape: ``float32 (68, 2)``, the mean iBUG-68 landmarks in ``texture`` pixels.
        meta: how it was built: ``k`` (identities averaged), ``images``, ``source``,
            ``command``, ``min_distance`` (dlib distance to the nearest source photo), ...
    """

    texture: np.ndarray
    shape: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        """Write ``texture``, ``shape`` and ``meta`` (as JSON) to a compressed ``.npz``."""
        _save_npz(path, texture=self.texture, shape=self.shape, meta=self.meta)


def _save_npz(path: str | Path, *, meta: dict[str, Any], **arrays: np.ndarray) -> None:
    """``arrays`` and ``meta`` (as JSON) in a compressed ``.npz`` at ``path``, written to a
    temporary file beside it first, so an interrupted build never leaves half an asset."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")  # savez adds .npz to other names
    try:
        payload: dict[str, Any] = {**arrays, "meta": np.array(json.dumps(meta))}
        np.savez_compressed(tmp, **payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_mean_face(path: str | Path | None = None) -> MeanFace:
    """Read a :class:`MeanFace` from ``path``; default the one shipped with veil."""
    try:
        if path is None:
            with resources.files(__name__).joinpath(MEAN_FACE).open("rb") as f:
                data = dict(np.load(f, allow_pickle=False))
        else:
            data = dict(np.load(path, allow_pickle=False))
        texture = np.asarray(data["texture"], np.uint8)
        shape = np.asarray(data["shape"], np.float32)
        meta = json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        where = path if path is not None else f"veil/assets/{MEAN_FACE}"
        raise InputError(f"could not read the mean face {where}: {exc}") from exc
    if texture.ndim != 3 or texture.shape[2] != 3 or shape.shape != (68, 2):
        raise InputError(
            f"mean face: expected texture (S, S, 3) and shape (68, 2), "
            f"got {texture.shape} and {shape.shape}"
        )
    return MeanFace(texture=texture, shape=shape, meta=meta)


@dataclass(frozen=True)
class SyntheticFaces:
    """Many k-Same faces in one canonical frame (``scripts/build_synthetic_faces.py``).

    Attributes:
        textures: RGB ``uint8 (N, S, S, 3)``, each drawn on the frame's mean ``shape``.
        shapes: ``float32 (N, 68, 2)``, each face's own landmark shape in the frame.
        embeddings: ``float32 (N, 128)``, dlib embeddings of each texture on its shape.
        shape: ``float32 (68, 2)``, the frame's mean landmarks in texture pixels.
        meta: how they were built; per face ``k`` and ``min_distance_photo`` (lists).
    """

    textures: np.ndarray
    shapes: np.ndarray
    embeddings: np.ndarray
    shape: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        """Write every array and ``meta`` (as JSON) to a compressed ``.npz``."""
        _save_npz(
            path,
            textures=self.textures,
            shapes=self.shapes,
            embeddings=self.embeddings,
            shape=self.shape,
            meta=self.meta,
        )


def load_synthetic_faces(path: str | Path | None = None) -> SyntheticFaces:
    """Read :class:`SyntheticFaces` from ``path``; default the set shipped with veil."""
    try:
        if path is None:
            with resources.files(__name__).joinpath(SYNTHETIC_FACES).open("rb") as f:
                data = dict(np.load(f, allow_pickle=False))
        else:
            data = dict(np.load(path, allow_pickle=False))
        faces = SyntheticFaces(
            textures=np.asarray(data["textures"], np.uint8),
            shapes=np.asarray(data["shapes"], np.float32),
            embeddings=np.asarray(data["embeddings"], np.float32),
            shape=np.asarray(data["shape"], np.float32),
            meta=json.loads(str(data["meta"])),
        )
    except (OSError, KeyError, ValueError) as exc:
        where = path if path is not None else f"veil/assets/{SYNTHETIC_FACES}"
        raise InputError(f"could not read the synthetic faces {where}: {exc}") from exc
    n = len(faces.textures)
    if (
        faces.textures.ndim != 4
        or faces.textures.shape[3] != 3
        or faces.shapes.shape != (n, 68, 2)
        or faces.embeddings.shape != (n, 128)
        or faces.shape.shape != (68, 2)
        or n == 0
    ):
        raise InputError(
            f"synthetic faces: expected textures (N, S, S, 3), shapes (N, 68, 2), embeddings "
            f"(N, 128), shape (68, 2), got {faces.textures.shape}, {faces.shapes.shape}, "
            f"{faces.embeddings.shape}, {faces.shape.shape}"
        )
    return faces
