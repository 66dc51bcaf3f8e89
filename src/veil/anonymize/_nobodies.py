"""The default texture source of the ``synthetic`` anonymizer: many faces of nobody.

:class:`Nobodies` holds the shipped set of k-Same faces (``veil/assets/synthetic_faces.npz``,
built by ``scripts/build_synthetic_faces.py``): each is the average of ``k`` similar
identities on their average landmark shape, at least dlib's same-person distance from every
source photo and distinct from the others. Each face (track) gets one of them:

* never one that resembles the person: the person's face, unwarped into the canonical frame,
  is embedded with dlib (once per track) and only the farther half of the set is eligible;
* chosen by a random order seeded by ``(seed, track key)``, so a track keeps its face and a
  seed reproduces a run, and faces replaced in the same image avoid each other's choice;
* bent by a small smooth random warp, like the single mean face before it.

:func:`signature` is the cheap check that a cached choice still belongs to the same person
(still images reuse face indices as keys): a small normalized grey image of the aligned face.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

import cv2
import numpy as np

from veil.anonymize._generators import FaceGenerator, bend
from veil.anonymize._warp import CanonicalFrame
from veil.assets import SyntheticFaces, load_synthetic_faces
from veil.errors import ConfigError

__all__ = ["SAME_FACE", "Nobodies", "bend", "signature"]

#: correlation of two :func:`signature` s above which two sightings of an untracked key (a
#: face index that still images reuse) are taken for the same face (the same photo
#: re-encoded, darkened or blurred: >= 0.99; different people on the same spot of centred
#: photos: mostly 0.3-0.8; the same photo with another synthetic face on it: 0.84-0.87,
#: see docs/synthetic.md). Tracked keys keep their face without this test.
SAME_FACE = 0.9


def signature(aligned: np.ndarray, size: int = 24) -> np.ndarray:
    """``float32 (size * size,)``: the aligned face's centre, grey, zero mean, unit norm."""
    s = aligned.shape[0]
    core = aligned[s // 5 : s - s // 8, s // 5 : s - s // 5]
    grey = cv2.cvtColor(
        cv2.resize(core, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )
    v = grey.astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


class Nobodies(FaceGenerator):
    """Pick one of a set of k-Same faces per track, far from the person's own face.

    Args:
        frame: the canonical frame of ``faces`` (``faces.shape`` its mean landmarks).
        faces: the set (textures, shapes, embeddings); default the shipped one.
        warp: smooth random bend of each track's copy, as a share of the frame size.
        far: share of the set, nearest to the person first, that is never chosen
            (``0.5``: only the farther half; ``0``: any).
    """

    name = "nobodies"

    def __init__(
        self,
        *,
        frame: CanonicalFrame,
        faces: SyntheticFaces | None = None,
        warp: float = 0.02,
        far: float = 0.5,
    ) -> None:
        super().__init__(frame=frame)
        self.faces = faces if faces is not None else load_synthetic_faces()
        if not 0.0 <= far < 1.0:
            raise ConfigError(f"nobodies: far must be within [0, 1), got {far}")
        self.warp, self.far = float(warp), float(far)
        self._embedder: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.faces.textures)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """dlib embedding of an aligned face, measured as the set's faces were."""
        from veil.evaluate.identity import FaceEmbedder, embed_texture

        with self._lock:  # dlib's network is not thread-safe
            if self._embedder is None:
                self._embedder = FaceEmbedder()
            return embed_texture(self._embedder, aligned, self.frame.shape)

    def choose(
        self, aligned: np.ndarray, rng: np.random.Generator, taken: Collection[int] = ()
    ) -> int:
        """Index of the face for the person in ``aligned``: the first in ``rng``'s order
        among the eligible (not in the nearest ``far`` share), preferring ones not
        ``taken``."""
        order = rng.permutation(len(self))
        d = np.linalg.norm(self.faces.embeddings - self.embed(aligned), axis=1)
        banned = set(np.argsort(d, kind="stable")[: int(self.far * len(self))].tolist())
        eligible = [int(i) for i in order if int(i) not in banned]
        free = [i for i in eligible if i not in taken]
        return (free or eligible)[0]

    def generate_face(
        self,
        aligned: np.ndarray,
        key: int,
        rng: np.random.Generator,
        taken: Collection[int] = (),
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(texture uint8 (S, S, 3), shape float32 (68, 2), index)`` for one track."""
        index = self.choose(aligned, rng, taken)
        texture = bend(self.faces.textures[index], rng, self.warp)
        return texture, self.faces.shapes[index].astype(np.float32), index

    def generate(self, aligned: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
        """The texture only (the plain :class:`FaceGenerator` API)."""
        return self.generate_face(aligned, key, rng)[0]
