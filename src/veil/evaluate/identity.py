"""Identity leakage: dlib's ResNet face embeddings and the metrics built on them.

:class:`FaceEmbedder` wraps ``dlib_face_recognition_resnet_model_v1`` with the 5-point
landmark model, both shipped in ``face_recognition_models`` (the ``dlib`` extra). dlib
calls two faces the same person when their 128-d embeddings are less than
:data:`SAME_PERSON_DISTANCE` apart (99.38% on LFW).

The metric functions take plain arrays: ``anonymized (n, d)`` and ``originals (n, d)`` with
row ``i`` of both from the same photo, so they can be checked by hand.

* :func:`linkage_rank1`: share of anonymized faces whose nearest original (among all ``n``)
  is their own photo; chance is ``1 / n``.
* :func:`reidentification`: query = anonymized face ``i``, gallery = originals of every
  *other* photo, positives = photos of the same person; rank-1 and mean average precision.
* :func:`share_within`: share of anonymized faces within ``SAME_PERSON_DISTANCE`` of their own
  original, i.e. that dlib's verifier would still match to the person.
* :func:`hubness`: share of anonymized faces whose nearest original is one of the ``top``
  (3) originals most often nearest: 3/n when nearest originals spread evenly, near 1 when
  every output looks like the same few people (one replacement face for everyone).
* :func:`privacy_band`: DeepPrivacy2's bands on such a share (excellent < 10%, good 10-25%,
  moderate 25-50%, poor > 50%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from veil.errors import BackendError, MissingExtraError
from veil.types import Faces, check_image

__all__ = [
    "BANDS",
    "SAME_PERSON_DISTANCE",
    "FaceEmbedder",
    "ReIdentification",
    "embed_texture",
    "hubness",
    "linkage_rank1",
    "pairwise_distances",
    "privacy_band",
    "reidentification",
    "share_within",
]

SAME_PERSON_DISTANCE = 0.6
"""dlib's decision threshold: embeddings closer than this are the same person."""

BANDS: tuple[tuple[float, str], ...] = (
    (0.10, "excellent"),
    (0.25, "good"),
    (0.50, "moderate"),
    (float("inf"), "poor"),
)
"""DeepPrivacy2's privacy bands as ``(upper edge, label)``: excellent < 10% <= good < 25% <=
moderate <= 50% < poor (the study writes "poor > 50%", so 50% itself is moderate)."""


def _modules() -> tuple[ModuleType, ModuleType]:
    try:
        import dlib
    except ImportError as exc:
        raise MissingExtraError("dlib-bin", "dlib", "identity leakage") from exc
    try:
        import face_recognition_models
    except ImportError as exc:
        raise MissingExtraError("face_recognition_models", "dlib", "identity leakage") from exc
    return dlib, face_recognition_models


class FaceEmbedder:
    """128-d dlib ResNet embeddings of faces at given boxes. Not thread-safe.

    Args:
        jitters: dlib's ``num_jitters`` (0 = one pass; more is slower and slightly better).
    """

    def __init__(self, *, jitters: int = 0) -> None:
        dlib, models = _modules()
        self.jitters = int(jitters)
        try:
            self._shape = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
            self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        except RuntimeError as exc:
            raise BackendError(f"dlib could not load its face models: {exc}") from exc
        self._dlib = dlib
        self._hog: Any = None

    def embed(self, image: np.ndarray, box_xyxy: Sequence[float] | np.ndarray) -> np.ndarray:
        """Embedding ``float32 (128,)`` of the face in ``box_xyxy`` of an RGB ``uint8`` image.

        The box is used as given, whatever the image shows there: an attacker who knows
        where a face was embeds that region even when no detector finds a face in it.
        """
        return self.embed_with_points(image, box_xyxy)[0]

    def embed_with_points(
        self,
        image: np.ndarray,
        box_xyxy: Sequence[float] | np.ndarray,
        *,
        jitters: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embed` plus the 5 landmarks dlib aligned the face with, ``float32 (5, 2)``
        as ``x, y``: corners of one eye (0, 1), of the other (2, 3), and the nose base (4).
        ``jitters`` overrides :attr:`jitters` for this call."""
        image = np.ascontiguousarray(check_image(image))
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (round(float(v)) for v in box_xyxy)
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        rect = self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1)  # dlib corners are inclusive
        try:
            shape = self._shape(image, rect)
            jit = self.jitters if jitters is None else int(jitters)
            vector = self._net.compute_face_descriptor(image, shape, jit)
        except RuntimeError as exc:
            raise BackendError(f"dlib embedding failed on a {image.shape} image: {exc}") from exc
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float32).reshape(-1, 2)
        return np.asarray(vector, np.float32), points

    def find_and_embed(self, image: np.ndarray, *, upsample: int = 1) -> tuple[Faces, np.ndarray]:
        """Faces found by dlib HOG and their embeddings ``float32 (n, 128)``."""
        image = np.ascontiguousarray(check_image(image))
        if self._hog is None:
            self._hog = self._dlib.get_frontal_face_detector()
        rects = self._hog(image, upsample)
        xyxy = np.asarray(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.float32
        ).reshape(-1, 4)
        faces = Faces(xyxy=xyxy).clip(image.shape[:2])
        vectors = [self.embed(image, box) for box in faces.xyxy]
        return faces, np.asarray(vectors, np.float32).reshape(-1, 128)


def embed_texture(embedder: FaceEmbedder, texture: np.ndarray, shape68: np.ndarray) -> np.ndarray:
    """Embedding of a face in a canonical frame (``texture (S, S, 3)``, its 68 landmarks
    ``shape68``): upscaled 2x (cubic) so dlib sees a face of its usual size, embedded in
    the HOG-like box the landmarks imply. The synthetic faces' build scripts and the
    anonymizer (choosing a face far from the person's) measure faces this same way."""
    import cv2

    from veil.anonymize._landmarks import hog_box

    big = cv2.resize(texture, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    return embedder.embed(big, hog_box(np.asarray(shape68, np.float64) * 2))


# --- metrics on embedding arrays -------------------------------------------------------------


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``float64 (n, m)`` between rows of ``a (n, d)`` and ``b (m, d)``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.asarray(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2))


def linkage_rank1(anonymized: np.ndarray, originals: np.ndarray) -> float:
    """Share of rows ``i`` whose nearest original is ``originals[i]`` (ties: lowest index).

    ``anonymized == originals`` gives 1.0 unless two originals are identical; anonymized
    rows that are all equal give exactly ``1 / n``. NaN for no rows.
    """
    d = pairwise_distances(anonymized, originals)
    if d.size == 0:
        return float("nan")
    return float(np.mean(np.argmin(d, axis=1) == np.arange(len(d))))


def hubness(anonymized: np.ndarray, originals: np.ndarray, top: int = 3) -> float:
    """Share of rows whose nearest original is one of the ``top`` originals that are most
    often nearest (ties: lowest index). NaN for no rows."""
    d = pairwise_distances(anonymized, originals)
    if d.size == 0:
        return float("nan")
    counts = np.bincount(np.argmin(d, axis=1), minlength=d.shape[1])
    hubs = np.argsort(-counts, kind="stable")[:top]
    return float(counts[hubs].sum() / len(d))


def share_within(
    anonymized: np.ndarray, originals: np.ndarray, threshold: float = SAME_PERSON_DISTANCE
) -> float:
    """Share of rows ``i`` with ``|anonymized[i] - originals[i]| < threshold``; NaN if empty."""
    a, o = np.asarray(anonymized, np.float64), np.asarray(originals, np.float64)
    if len(a) == 0:
        return float("nan")
    return float(np.mean(np.linalg.norm(a - o, axis=1) < threshold))


@dataclass(frozen=True)
class ReIdentification:
    """Re-identification of anonymized queries against other photos' originals."""

    rank1: float  # share of queries whose nearest gallery face is the same person
    mean_ap: float  # mean over queries of the average precision of the ranked gallery
    queries: int  # queries with at least one other photo of the same person
    chance_rank1: float  # expected rank-1 of a random ranking: mean positives / gallery


def _average_precision(ranked_positive: np.ndarray) -> float:
    hits = np.flatnonzero(ranked_positive)
    return float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))


def reidentification(
    anonymized: np.ndarray, originals: np.ndarray, labels: Sequence[str]
) -> ReIdentification:
    """Rank, for each anonymized photo ``i``, the originals of all photos ``j != i``.

    Positives are the ``j`` with ``labels[j] == labels[i]``; queries without one are left
    out (``queries`` counts the rest). All numbers are NaN without any query.
    """
    d = pairwise_distances(anonymized, originals)
    lab = np.asarray(labels)
    rank1, aps, chance = [], [], []
    for i in range(len(d)):
        others = np.flatnonzero(np.arange(len(d)) != i)
        positive = lab[others] == lab[i]
        if not positive.any():
            continue
        order = np.argsort(d[i, others], kind="stable")
        rank1.append(bool(positive[order[0]]))
        aps.append(_average_precision(positive[order]))
        chance.append(positive.mean())
    if not aps:
        nan = float("nan")
        return ReIdentification(rank1=nan, mean_ap=nan, queries=0, chance_rank1=nan)
    return ReIdentification(
        rank1=float(np.mean(rank1)),
        mean_ap=float(np.mean(aps)),
        queries=len(aps),
        chance_rank1=float(np.mean(chance)),
    )


def privacy_band(share: float) -> str:
    """DeepPrivacy2's band of a leakage share in [0, 1]; ``"n/a"`` for NaN."""
    if np.isnan(share):
        return "n/a"
    if share == BANDS[2][0]:
        return BANDS[2][1]
    return next(label for edge, label in BANDS if share < edge)
