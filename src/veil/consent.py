"""Choose who is anonymized: a consent keep-list (``--keep``) or an erasure list (``--only``).

A :class:`ConsentList` holds dlib ResNet embeddings of reference photos (one face each,
found by the pipeline's own detector) and decides, face by face, whether a detected face
is anonymized. It is fail safe in both modes:

* ``keep``: a face is left as it is only when it is embedded reliably (:func:`check_face`:
  big enough, sharp enough, not turned), its nearest reference is closer than
  ``keep_threshold`` (strictly) and every reference of another person is at least
  ``margin`` further away. Anything else is anonymized.
* ``only``: a face is anonymized when it is within ``only_threshold`` of any reference, or
  when it cannot be embedded reliably; so ``--only`` may hide more than asked, never less.

In video the decision is per track (:class:`TrackConsent`): votes from a track's embedded
frames, anonymized until decided, and a decision that only ever turns towards hiding.

People: a reference path that is a file is one person (its stem); in a folder, each image
directly inside is a person of its own and each sub-folder is one person (all its images).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.config import ConsentConfig
from veil.errors import InputError
from veil.types import Faces

__all__ = [
    "ConsentList",
    "FaceCheck",
    "TrackConsent",
    "check_face",
    "kept_records",
    "reference_photos",
]

SAME_PERSON_DISTANCE = 0.6  # dlib's verification threshold (veil.evaluate.identity)
REFERENCE_JITTERS = 10
"""dlib ``num_jitters`` of reference embeddings: 10 resampled copies averaged, a steadier
reference (measured on identity-lfw158: more of the person's photos kept, see
docs/benchmarks.md); references are few, so the 10x cost is paid once per run."""
MIN_SHARPNESS = 20.0
"""Variance of the Laplacian of the face resized to 64 x 64 grey pixels, below which the
face is too blurred to embed reliably."""
MAX_TURN = 0.3
"""Offset of the nose from the middle of the eyes, as a share of the eye distance, above
which the face is too turned to embed reliably (0 = frontal)."""

Detect = Callable[[np.ndarray], Faces]


@dataclass(frozen=True)
class FaceCheck:
    """One face measured for a consent decision.

    ``reason`` is ``None`` when the face was embedded reliably, else why not
    (``"small"``, ``"blurred"``, ``"turned"``); ``embedding`` is ``None`` for small faces.
    """

    reason: str | None
    embedding: np.ndarray | None = None


def sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face in ``box`` resized to 64 x 64 grey pixels."""
    h, w = image.shape[:2]
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def turn(points: np.ndarray) -> float:
    """How turned a face is, from dlib's 5 landmarks ``(5, 2)``: the nose's offset from the
    middle of the eyes along the eye line, as a share of the eye distance (0 = frontal)."""
    eye_a, eye_b, nose = points[0:2].mean(0), points[2:4].mean(0), points[4]
    axis = eye_b - eye_a
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        return float("inf")
    return abs(float(np.dot(nose - (eye_a + eye_b) / 2, axis / length))) / length


def check_face(
    embedder: Any,
    image: np.ndarray,
    box: np.ndarray,
    *,
    min_size: float = 40.0,
    jitters: int = 0,
) -> FaceCheck:
    """Measure one face for a decision: too small (the shorter box side under
    ``min_size`` pixels), too blurred (:data:`MIN_SHARPNESS`), too turned
    (:data:`MAX_TURN`), else reliable, each with its embedding when one was computed.
    ``jitters``: dlib's resampled passes averaged into the embedding (references)."""
    if min(box[2] - box[0], box[3] - box[1]) < min_size:
        return FaceCheck("small")
    vector, points = embedder.embed_with_points(image, box, jitters=jitters)
    if sharpness(image, box) < MIN_SHARPNESS:
        return FaceCheck("blurred", vector)
    if turn(points) > MAX_TURN:
        return FaceCheck("turned", vector)
    return FaceCheck(None, vector)


def reference_photos(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """``(person, photo)`` for every reference path: a file is one person (its stem); in a
    folder each image directly inside is one person and each sub-folder one person."""
    from veil.io.images import IMAGE_SUFFIXES

    def images(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)

    out: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            out.append((path.stem, path))
        elif path.is_dir():
            found = len(out)
            for child in sorted(path.iterdir()):
                if child.is_dir():
                    out += [(child.name, p) for p in images(child)]
                elif child.suffix.lower() in IMAGE_SUFFIXES:
                    out.append((child.stem, child))
            if len(out) == found:
                raise InputError(f"{path}: no reference photos in this folder")
        else:
            raise InputError(f"{path}: reference photo not found")
    return out


@dataclass
class ConsentList:
    """Reference embeddings and the rules of one mode (see the module docstring).

    Attributes:
        mode: ``"keep"`` (leave the listed people visible) or ``"only"`` (hide only them).
        people: person label of each reference row.
        references: embeddings ``float32 (n, 128)``.
        config: thresholds, margin and minimum face size.
    """

    mode: str
    people: list[str]
    references: np.ndarray
    config: ConsentConfig
    embedder: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(
        cls, config: ConsentConfig, detect: Detect, embedder: Any = None
    ) -> ConsentList:
        """Load the references of ``config`` (``keep`` or ``only`` paths), each photo's one
        face found by ``detect``; raises InputError naming a photo without exactly one
        face, or one that cannot be read or embedded reliably."""
        from veil.evaluate.identity import FaceEmbedder
        from veil.io.images import read_image

        embedder = embedder or FaceEmbedder()
        people, vectors = [], []
        for person, path in reference_photos(config.keep or config.only):
            image = read_image(path).image
            vectors.append(reference_embedding(embedder, image, detect(image), config, path))
            people.append(person)
        mode = "keep" if config.keep else "only"
        refs = np.asarray(vectors, np.float32).reshape(-1, 128)
        return cls(mode, people, refs, config, embedder)

    @property
    def threshold(self) -> float:
        c = self.config
        return c.keep_threshold if self.mode == "keep" else c.only_threshold

    def check(self, image: np.ndarray, faces: Faces) -> list[FaceCheck]:
        """:func:`check_face` for every face (thread-safe)."""
        with self._lock:
            size = self.config.min_size
            return [check_face(self.embedder, image, box, min_size=size) for box in faces.xyxy]

    def match(self, check: FaceCheck) -> tuple[bool, float, str | None]:
        """``(matches, distance, person)`` of one face against the references: for
        ``keep``, nearest person under the threshold with every other person at least
        ``margin`` further; for ``only``, any reference under the threshold. Unreliable
        faces never match (distance NaN when nothing was embedded)."""
        if check.embedding is None:
            return False, float("nan"), None
        d = np.linalg.norm(self.references - check.embedding[None], axis=1)
        i = int(np.argmin(d))
        best, person = float(d[i]), self.people[i]
        if check.reason is not None:
            return False, best, person
        if self.mode == "only":
            return best < self.threshold, best, person
        others = d[[p != person for p in self.people]]
        clear = not len(others) or float(others.min()) - best >= self.config.margin
        return best < self.threshold and clear, best, person

    def hidden(self, check: FaceCheck) -> tuple[bool, float, str | None]:
        """``(anonymize, distance, person)`` of one face in a still image."""
        matches, distance, person = self.match(check)
        if self.mode == "keep":
            return not matches, distance, person
        return matches or check.reason is not None, distance, person

    def split(self, image: np.ndarray, faces: Faces) -> tuple[Faces, Faces]:
        """``(to anonymize, kept)`` of ``faces`` in an RGB image; kept faces carry
        ``data["consent_distance"]`` and ``data["consent_person"]``."""
        if not len(faces):
            return faces, faces
        verdicts = [self.hidden(c) for c in self.check(image, faces)]
        hide = np.array([v[0] for v in verdicts], bool)
        return faces[hide], _with_consent(faces[~hide], [v for v in verdicts if not v[0]])

    def describe(self) -> dict[str, Any]:
        """Settings for audit files (no embeddings: they identify people)."""
        return {
            "mode": self.mode,
            "people": sorted(set(self.people)),
            "references": len(self.people),
            "threshold": self.threshold,
            "margin": self.config.margin,
            "min_size": self.config.min_size,
            "min_sharpness": MIN_SHARPNESS,
            "max_turn": MAX_TURN,
        }


def reference_embedding(
    embedder: Any, image: np.ndarray, faces: Faces, config: ConsentConfig, path: Path
) -> np.ndarray:
    """The embedding of a reference photo's one face; InputError naming ``path`` otherwise."""
    if len(faces) != 1:
        count = "no face" if not len(faces) else f"{len(faces)} faces"
        raise InputError(f"{path}: reference photo must show exactly one face, found {count}")
    box, size = faces.xyxy[0], config.min_size
    check = check_face(embedder, image, box, min_size=size, jitters=REFERENCE_JITTERS)
    if check.reason is not None or check.embedding is None:
        raise InputError(f"{path}: the face in this reference photo is {check.reason}")
    return check.embedding


def _with_consent(faces: Faces, verdicts: Sequence[tuple[bool, float, str | None]]) -> Faces:
    faces.data["consent_distance"] = [round(v[1], 4) for v in verdicts]
    faces.data["consent_person"] = [v[2] for v in verdicts]
    return faces


def kept_records(kept: Faces) -> list[dict[str, Any]]:
    """Audit records of kept faces: :meth:`Faces.to_records` plus ``distance`` (to the
    nearest reference; null when not measured on this frame) and ``person``."""
    records = kept.to_records()
    dist = kept.data.get("consent_distance", [float("nan")] * len(kept))
    people = kept.data.get("consent_person", [None] * len(kept))
    for rec, d, person in zip(records, dist, people, strict=True):
        rec["distance"] = None if np.isnan(d) else d
        rec["person"] = person
    return records


@dataclass
class _Votes:
    seen: int = 0  # detected frames of the track since it was last embedded (inclusive)
    tries: int = 0  # embeddings attempted
    embedded: int = 0  # faces measured (keep) or reliable embeddings (only)
    matched: int = 0
    turned: bool = False  # evidence turned the decision to hiding for good
    distance: float = float("nan")  # last distance measured
    person: str | None = None  # nearest reference at the last measure


class TrackConsent:
    """Per-track consent decisions for video (one stream, in frame order).

    A track's detected faces are measured on its first detected frame and then every
    ``every`` detected frames. ``keep``: the track is kept once at least ``min_embedded``
    faces were measured and at least ``share`` of them match (a small, blurred or turned
    face counts as not matching); anonymized before that. A kept track is measured on
    every detected frame; when the share falls below ``share``, or one reliable face is
    someone else (dlib distance >= 0.6: the tracker swapped people), it is anonymized for
    the rest of the video and never kept again.
    ``only``: the track is left visible once ``min_embedded`` reliable embeddings exist and
    none matched (then measured on every detected frame); anonymized before that, and for
    good after any match. Untracked faces
    get the still-image decision.
    """

    def __init__(
        self, consent: ConsentList, *, every: int = 4, min_embedded: int = 3, share: float = 0.6
    ) -> None:
        self.consent, self.every, self.min_embedded, self.share = (
            consent,
            every,
            min_embedded,
            share,
        )
        self.votes: dict[int, _Votes] = {}

    def split(self, rgb: Callable[[], np.ndarray], faces: Faces) -> tuple[Faces, Faces]:
        """``(to anonymize, kept)``; ``rgb()`` gives the frame, called only to embed."""
        if not len(faces):
            return faces, faces
        ids = faces.track_id if faces.track_id is not None else np.full(len(faces), -1)
        sources = faces.data.get("source", ["detected"] * len(faces))
        image: np.ndarray | None = None
        verdicts: list[tuple[bool, float, str | None]] = []
        for i, (tid, src) in enumerate(zip(ids.tolist(), sources, strict=True)):
            due = tid < 0 or (src == "detected" and self._due(tid))
            if due and image is None:
                image = rgb()
            if tid < 0:  # untracked: the still-image decision
                assert image is not None
                verdicts.append(self.consent.hidden(self.consent.check(image, faces[i])[0]))
                continue
            if due:
                assert image is not None
                self._vote(tid, self.consent.check(image, faces[i])[0])
            v = self.votes.get(tid, _Votes())  # backfilled before its first detection
            verdicts.append((not self._shown(tid), v.distance, v.person))
        hide = np.array([v[0] for v in verdicts], bool)
        return faces[hide], _with_consent(faces[~hide], [v for v in verdicts if not v[0]])

    def _due(self, tid: int) -> bool:
        kept = self._shown(tid)  # a kept track is checked on every detected frame
        v = self.votes.setdefault(tid, _Votes())
        v.seen += 1
        due = kept or (v.seen == 1 and v.tries == 0) or v.seen > self.every
        if due:
            v.seen, v.tries = 1, v.tries + 1
        return due

    def _vote(self, tid: int, check: FaceCheck) -> None:
        v, shown = self.votes[tid], self._shown(tid)
        matches, distance, person = self.consent.match(check)
        v.distance, v.person = distance, person
        if self.consent.mode == "only":
            v.turned |= matches
            v.embedded += check.reason is None
            return
        v.embedded += 1  # an unreliable face counts as a vote against keeping
        v.matched += matches
        other = check.reason is None and distance >= SAME_PERSON_DISTANCE  # someone else
        if shown and (other or v.matched < self.share * v.embedded):
            v.turned = True  # kept until now: hidden from here on, never kept again

    def _decided(self, v: _Votes) -> bool:
        return v.embedded >= self.min_embedded and not v.turned

    def _shown(self, tid: int) -> bool:
        v = self.votes.get(tid)
        if v is None or not self._decided(v):
            return False
        if self.consent.mode == "only":
            return True
        return v.matched >= self.share * v.embedded
