"""A realistic replacement: a face that belongs to no one, on the face's own geometry.

For each region: dlib's 68 landmarks (:mod:`veil.anonymize._landmarks`), a texture and a
shape in the canonical frame from a :class:`FaceGenerator` (by default one of the shipped
k-Same faces, far from the person's own, chosen per track: :mod:`veil.anonymize._nobodies`),
warped piecewise-affinely onto a target geometry (the person's landmarks moved toward that
shape by ``degree``, past it above 1), recoloured to the original skin (LAB mean and std)
and blended in with a Poisson solve over the face, forehead up toward the hair line and
jaw contour. Faces whose landmarks fail go to
a strong ``fallback`` method: the anonymizer fails closed. See ``docs/synthetic.md``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.anonymize._generators import GENERATORS, FaceGenerator, GalleryFace, MeanFace
from veil.anonymize._landmarks import (
    LandmarkModel,
    LandmarkSmoother,
    apply_affine,
    similarity,
)
from veil.anonymize._warp import (
    CanonicalFrame,
    above_hair_line,
    face_outline,
    match_colour,
    poisson_blend,
    settle_colour,
    skin_patches,
)
from veil.anonymize.base import ANONYMIZERS, Anonymizer, _blend
from veil.assets import load_mean_face, load_synthetic_faces
from veil.errors import ConfigError, InputError
from veil.mask import Region
from veil.types import check_image

__all__ = ["GENERATORS", "FaceGenerator", "GalleryFace", "MeanFace", "SyntheticFace"]

log = logging.getLogger(__name__)

#: parts whose inner shape is expression (eye and mouth opening), kept at any degree
_PARTS = (slice(36, 42), slice(42, 48), slice(48, 68))
#: parts whose size is perturbed per track: jaw, brows, nose, eyes, mouth
_TRACK_PARTS = (slice(0, 17), slice(17, 27), slice(27, 36), slice(36, 48), slice(48, 68))
BLENDS = ("poisson", "alpha")
MAX_DEGREE = 2.0


def target_shape(own: np.ndarray, mean: np.ndarray, degree: float) -> np.ndarray:
    """``own (68, 2)`` moved toward ``mean`` (aligned to it by a similarity) by ``degree``;
    above 1 it goes past ``mean``, away from the person's own shape.

    Eyes and mouth move and scale with the face, but keep their own inner shape (how open,
    how wide a smile): that is expression, not identity.
    """
    fitted = apply_affine(similarity(mean, own), mean)
    target = own + degree * (fitted - own)
    for part in _PARTS:
        local = own[part] - own[part].mean(0)
        target[part] = target[part].mean(0) + local
    return target.astype(np.float32)


def _perturb(shape: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """``shape (68, 2)`` with each part scaled by ``1 + N(0, amount)`` about its centre."""
    out = shape.astype(np.float64).copy()
    for part in _TRACK_PARTS:
        c = out[part].mean(0)
        out[part] = c + (out[part] - c) * (1 + amount * rng.standard_normal(2))
    return out.astype(np.float32)


def face_box(region: Region, image_hw: tuple[int, int], drop: float = 0.05) -> np.ndarray:
    """The detector's box ``(x0, y0, x1, y1)`` (image pixels) a ``region`` was made from.

    A :class:`~veil.mask.Masker` region's full-alpha part is the box grown by the mask
    scale and moved down by ``drop`` box heights; the box size is ``region.size``. The box
    centre is the centre of that part, except on a side cut by the image edge, where the
    other side and the longer of the part's two extents (the uncut one) are used. Boxes
    are taken as squares of side ``region.size``. Regions made by the Masker carry the box
    itself (``region.box``), which is then returned as is.
    """
    if region.box is not None:
        return np.asarray(region.box, np.float64)
    core = region.alpha >= region.alpha.max()
    ys, xs = np.nonzero(core)
    extent = float(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
    centre = []
    for idx, start, limit in ((xs, region.x0, image_hw[1]), (ys, region.y0, image_hw[0])):
        a, b = float(idx.min() + start), float(idx.max() + 1 + start)
        if a <= 0 < b - a < extent - 1:
            a = b - extent
        elif b >= limit and b - a < extent - 1:
            b = a + extent
        centre.append((a + b) / 2)
    cx, cy = centre[0], centre[1] - drop * region.size
    r = region.size / 2
    return np.array([cx - r, cy - r, cx + r, cy + r])


class SyntheticFace(Anonymizer):
    """Replace each face with a synthetic one that keeps its pose and expression.

    Args:
        degree: 0 keeps the person's landmark geometry, 1 moves it all the way to the
            synthetic face's shape, above 1 (up to 2) past it, away from the person's.
        gallery: folder of donor faces; each track gets a k-Same average of ``k`` of them.
            Default: one of the shipped k-Same faces (``veil/assets/synthetic_faces.npz``).
        k: donors per average with ``gallery``.
        fallback: anonymizer used where landmarks fail or anything goes wrong.
        blend: ``"poisson"`` (seamless) or ``"alpha"`` (feathered edge, faster).
        generator: name in :data:`GENERATORS` (default ``"nobodies"``; ``gallery`` implies
            ``"gallery"``; ``"mean"``: the single shipped average).
        generator_options: keyword options of the generator (e.g. ``model_path``).
        smoothing: landmark smoothing along a track, ``[0, 1)``; 0 = off.
        min_size: faces smaller than this (pixels) go straight to ``fallback``.
        strength, seed: as for every anonymizer; ``seed`` also fixes each track's face.
    """

    name = "synthetic"

    def __init__(
        self,
        *,
        strength: float = 1.0,
        seed: int | None = None,
        degree: float = 1.0,
        gallery: str | Path | None = None,
        k: int = 10,
        fallback: str = "irreversible",
        blend: str = "poisson",
        generator: str | None = None,
        generator_options: Mapping[str, Any] | None = None,
        smoothing: float = 0.6,
        min_size: float = 32.0,
    ) -> None:
        super().__init__(strength=strength, seed=seed)
        if not 0.0 <= degree <= MAX_DEGREE:
            raise ConfigError(f"{self.name}: degree must be within [0, {MAX_DEGREE}], got {degree}")
        if blend not in BLENDS:
            raise ConfigError(f"{self.name}: unknown blend {blend!r}; choose one of: {BLENDS}")
        if fallback == self.name:
            raise ConfigError(f"{self.name}: fallback must be another method")
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(f"{self.name}: smoothing must be within [0, 1), got {smoothing}")
        self.degree, self.blend, self.min_size = float(degree), blend, float(min_size)
        self.fallback = ANONYMIZERS.create(fallback, strength=strength, seed=seed)
        self.landmarks = LandmarkModel()
        self.smoother = LandmarkSmoother(smoothing)
        self.mean_meta: dict[str, Any] = {}
        if gallery is not None:
            generator = generator or "gallery"
        self.generator_name = generator or "nobodies"
        self.frame, options = self._frame_and_options(self.generator_name)
        options |= generator_options or {}
        if gallery is not None:
            options |= {"gallery": gallery, "k": k}
        self.generator = GENERATORS.create(self.generator_name, **options)
        # per-track identity: seeded by (seed, key); unseeded runs draw one salt per instance
        self._salt = seed if seed is not None else int.from_bytes(os.urandom(4), "little")
        self._textures: OrderedDict[int, _TrackFace] = OrderedDict()
        self._lock = threading.Lock()
        self.fallbacks = 0  # faces sent to the fallback so far (for audits and benchmarks)

    def _frame_and_options(self, generator: str) -> tuple[CanonicalFrame, dict[str, Any]]:
        """The canonical frame of the generator's textures and its default options."""
        if generator == "nobodies":
            faces = load_synthetic_faces()
            self.mean_meta = faces.meta
            frame = CanonicalFrame(faces.shape, faces.textures.shape[1])
            return frame, {"frame": frame, "faces": faces}
        mean = load_mean_face()
        self.mean_meta = mean.meta
        frame = CanonicalFrame(mean.shape, mean.texture.shape[0])
        options: dict[str, Any] = {"frame": frame}
        if generator == "mean":
            options["texture"] = mean.texture
        return frame, options

    # ------------------------------------------------------------------ the Anonymizer API

    def transform(
        self, patch: np.ndarray, mask: np.ndarray, face_size: float, rng: np.random.Generator
    ) -> np.ndarray:
        """``patch`` with the face around its centre replaced; see :meth:`apply`."""
        h, w = mask.shape
        region = Region(0, 0, w, h, mask.astype(np.float32), float(face_size), 0, 0)
        return self.apply(patch, [region])

    def apply(self, image: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
        """A new image with every region's face replaced; pixels outside regions keep."""
        check_image(image)
        out = image.copy()
        taken: set[int] = set()  # identities already given to a face of this image
        for region in regions:
            try:
                done = self._replace(out, region, taken)
            except Exception as exc:  # fail closed: any failure -> the strong fallback
                log.warning("synthetic: face %d failed (%r), using fallback", region.key, exc)
                done = None
            if done is None:
                with self._lock:
                    self.fallbacks += 1
                out = self.fallback.apply(out, [region])
            else:
                _blend(out[region.slices], done, region.alpha)
        return out

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "degree": self.degree,
            "blend": self.blend,
            "fallback": self.fallback.name,
            "generator": self.generator_name,
            "identities": getattr(self.generator, "__len__", lambda: 1)(),
            "mean_face_k": self.mean_meta.get("k"),
        }

    # ------------------------------------------------------------------ one face

    def _replace(self, image: np.ndarray, region: Region, taken: set[int]) -> np.ndarray | None:
        """The region's crop with a synthetic face, or ``None`` when landmarks fail."""
        if region.size < self.min_size or not (region.alpha > 0).any():
            return None
        h, w = image.shape[:2]
        m = round(0.3 * region.size)
        wx0, wy0 = max(0, region.x0 - m), max(0, region.y0 - m)
        wx1, wy1 = min(w, region.x1 + m), min(h, region.y1 + m)
        window = np.ascontiguousarray(image[wy0:wy1, wx0:wx1])
        box = face_box(region, (h, w)) - (wx0, wy0, wx0, wy0)
        points = self.landmarks.locate(window, box)
        if points is None:
            return None
        offset = np.array([wx0, wy0], np.float32)
        points = self.smoother(region.key, points + offset) - offset
        face = self._texture(region.key, window, points, taken, tracked=region.tracked)
        taken.add(face.index)
        target = target_shape(points, face.shape, self.degree)
        drawn = self._render(window, face.texture, points, target, region.size)
        y, x = region.y0 - wy0, region.x0 - wx0
        return drawn[y : y + region.alpha.shape[0], x : x + region.alpha.shape[1]]

    def _texture(
        self,
        key: int,
        window: np.ndarray,
        points: np.ndarray,
        taken: Collection[int] = (),
        *,
        tracked: bool = False,
    ) -> _TrackFace:
        """This track's face, made once and kept (bounded LRU): a ``tracked`` key is one
        person, whose face never changes however their look does (a turn, a shadow). Still
        images reuse face indices as keys: there a kept face whose aligned image no longer
        looks like the one it was made for (:func:`~veil.anonymize._nobodies.signature`)
        is made again."""
        from veil.anonymize._nobodies import SAME_FACE, signature

        aligned = self.frame.to_frame(window, points)[0]
        sig = signature(aligned)
        with self._lock:
            entry = self._textures.get(key)
            if entry is not None and (tracked or float(entry.signature @ sig) >= SAME_FACE):
                self._textures.move_to_end(key)
                entry.signature = sig  # follow slow changes along a track
                return entry
        rng = np.random.default_rng([self._salt & 0xFFFFFFFF, key & 0xFFFFFFFF])
        texture, shape, index = self.generator.generate_face(aligned, key, rng, taken)
        if texture.shape != (self.frame.size, self.frame.size, 3) or texture.dtype != np.uint8:
            raise InputError(
                f"generator {self.generator_name}: expected uint8 texture "
                f"{(self.frame.size, self.frame.size, 3)}, got {texture.dtype} {texture.shape}"
            )
        if entry is not None:  # this key's face looks like another one now: chosen again
            log.debug(
                "synthetic: face %d changed (signature %.2f): identity %d -> %d",
                key, float(entry.signature @ sig), entry.index, index,
            )  # fmt: skip
        entry = _TrackFace(texture, _perturb(shape, rng, 0.04 * self.strength), index, sig)
        with self._lock:
            self._textures[key] = entry
            while len(self._textures) > 64:
                self._textures.popitem(last=False)
        return entry

    def _render(
        self,
        window: np.ndarray,
        texture: np.ndarray,
        own: np.ndarray,
        target: np.ndarray,
        size: float,
    ) -> np.ndarray:
        """``window`` with ``texture`` warped onto ``target``, recoloured and blended."""
        hw = window.shape[:2]
        warped, covered = self.frame.render(texture, target, hw)
        own_hull, target_hull = (
            _hull(self.frame.face_points(own), hw),
            _hull(self.frame.face_points(target), hw),
        )
        # replaced: forehead up toward the hair line, brows, jaw contour (colour stats above
        # come from the skin hulls only, so hair does not tint the face)
        region = (_hull(face_outline(own), hw) | _hull(face_outline(target), hw)) & covered
        own_skin = skin_patches(own, hw)
        if own_skin.sum() >= 16:  # the forehead stops where the person's hair starts
            region &= ~above_hair_line(window, own, region, own_skin, size)
        region = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if region.sum() < 64:
            raise InputError(f"synthetic: face area of {region.sum()} px is too small")
        coloured = match_colour(warped, window, target_hull & covered, own_hull)
        if self.blend == "poisson":
            blended = poisson_blend(coloured, window, region)
            target_skin = skin_patches(target, hw) & region
            if own_skin.sum() < 16 or target_skin.sum() < 16:  # tiny face: the whole hull
                return settle_colour(blended, window, own_hull & region, region, 0.1 * size)
            return settle_colour(blended, window, own_skin, region, 0.1 * size, target_skin)
        edge = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, 0.03 * size))
        alpha = (edge * region)[..., None]
        mixed = alpha * coloured + (1 - alpha) * window
        return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


@dataclass
class _TrackFace:
    """One track's synthetic face: texture, perturbed shape, identity, last signature."""

    texture: np.ndarray
    shape: np.ndarray
    index: int
    signature: np.ndarray


def _hull(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``bool (H, W)``: the convex hull of ``points (n, 2)``."""
    mask = np.zeros(hw, np.uint8)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)
