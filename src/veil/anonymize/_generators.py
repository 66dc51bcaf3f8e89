"""Texture sources of the ``synthetic`` anonymizer: the :class:`FaceGenerator` plug-in point,
the single shipped average (:class:`MeanFace`), k-Same over donor photos (:class:`GalleryFace`)
and the registry :data:`GENERATORS` (the default, ``nobodies``, lives in
:mod:`veil.anonymize._nobodies`). Re-exported by :mod:`veil.anonymize.synthetic`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from veil.anonymize._landmarks import LandmarkModel
from veil.anonymize._warp import CanonicalFrame
from veil.errors import ConfigError
from veil.registry import Registry

__all__ = ["GENERATORS", "FaceGenerator", "GalleryFace", "MeanFace", "bend"]


def bend(texture: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """``texture (S, S, 3)`` bent by a smooth random warp of ``amount * S`` pixels."""
    s = texture.shape[0]
    coarse = rng.standard_normal((2, 3, 3)).astype(np.float32) * np.float32(amount * s)
    dx, dy = (cv2.resize(c, (s, s), interpolation=cv2.INTER_CUBIC) for c in coarse)
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    return cv2.remap(texture, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


class FaceGenerator:
    """Plug-in point: makes the texture of a face that belongs to no one.

    A generator works in a :class:`~veil.anonymize._warp.CanonicalFrame` (``frame.size``
    square, ``frame.shape`` the mean landmarks) and returns one texture per track: the
    anonymizer calls :meth:`generate` once per track key and caches the result, so a
    track keeps one identity. Register new ones (a GAN, a diffusion model) in
    :data:`GENERATORS` or the entry-point group ``veil.face_generators``; they receive
    their options (e.g. ``model_path``) as keywords and must not download anything.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, frame: CanonicalFrame) -> None:
        self.frame = frame

    def generate(self, aligned: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
        """A texture, RGB ``uint8 (S, S, 3)`` in the frame.

        Args:
            aligned: the original face unwarped into the frame, ``uint8 (S, S, 3)``, for
                generators that condition on pose, light or expression (it must not leak
                into the output's identity).
            key: the track key (or face index) the texture is for.
            rng: a generator seeded by ``(seed, key)``: same key, same face.
        """
        raise NotImplementedError

    def generate_face(
        self,
        aligned: np.ndarray,
        key: int,
        rng: np.random.Generator,
        taken: Collection[int] = (),
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(texture, shape (68, 2), index)``: a texture, the landmark shape (in the frame)
        to draw it on, and which of the generator's identities it is (``-1``: no such
        notion). Generators with several identities avoid those in ``taken`` (chosen for
        other faces of the same image); the default draws :meth:`generate` on the frame's
        mean shape."""
        return self.generate(aligned, key, rng), self.frame.shape, -1


class MeanFace(FaceGenerator):
    """The shipped k-Same average, each track's copy bent by a small smooth random warp."""

    name = "mean"

    def __init__(self, *, frame: CanonicalFrame, texture: np.ndarray, warp: float = 0.02) -> None:
        super().__init__(frame=frame)
        self.texture = texture
        self.warp = float(warp)

    def generate(self, aligned: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
        return bend(self.texture, rng, self.warp)


class GalleryFace(FaceGenerator):
    """k-Same over a folder of donor faces (consenting or synthetic): each track gets the
    average of ``k`` donors drawn by its key, so it is none of them.

    Args:
        gallery: folder of images, one face each (the largest dlib-HOG face is used).
        k: donors per average, ``1 <= k <=`` faces found.
    """

    name = "gallery"

    def __init__(self, *, frame: CanonicalFrame, gallery: str | Path, k: int = 10) -> None:
        super().__init__(frame=frame)
        import dlib

        from veil.io.images import iter_image_files, read_image

        hog, model, faces = dlib.get_frontal_face_detector(), LandmarkModel(), []
        for path in iter_image_files(gallery):
            image = np.ascontiguousarray(read_image(path).image)
            rects = hog(image, 1)
            if not rects:
                continue
            r = max(rects, key=lambda r: r.width() * r.height())
            box = (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
            points = model.locate(image, box, hog=True)
            if points is not None:
                faces.append(frame.to_frame(image, points)[0])
        if not 1 <= k <= len(faces):
            raise ConfigError(
                f"gallery {gallery}: k must be within [1, {len(faces)}] (faces found), got {k}"
            )
        self.faces = np.stack(faces)
        self.k = int(k)

    def generate(self, aligned: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
        pick = rng.choice(len(self.faces), self.k, replace=False)
        return np.round(self.faces[pick].mean(0)).astype(np.uint8)


GENERATORS: Registry[FaceGenerator] = Registry("face generator", group="veil.face_generators")
GENERATORS.register("mean", MeanFace, "the shipped k-Same average face (default)")
GENERATORS.register("gallery", GalleryFace, "k-Same average over a folder of donor faces")
GENERATORS.register(
    "nobodies",
    "veil.anonymize._nobodies:Nobodies",
    "one of the shipped k-Same faces per track, far from the person's (default)",
)
