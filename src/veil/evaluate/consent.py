"""The keep-list / erasure-list check on an identity set (``<person>/<images>``).

For each person, their first usable photo is the reference (the first photo in sorted order
that :class:`veil.consent.ConsentList` accepts: exactly one face, embedded reliably; refused
ones are counted); every other photo of everyone is an input. Each input is detected with
the pipeline's detector and each face measured once (:func:`veil.consent.check_face`); the
decisions are then those of the real :class:`~veil.consent.ConsentList`, for one reference
at a time (the protocol of issue 15) and for all references at once (the ambiguity margin
applies), at as many keep thresholds as asked without measuring again.

The counts (:class:`ConsentRow`):

* ``others_kept``: (reference, photo of someone else) pairs where any face is kept: target 0.
* ``own_kept``: the consenting person's other photos whose labelled face (nearest the image
  centre) is kept: target >= 70%.
* ``gallery_*``: every reference loaded at once (own photo kept; kept as someone else).
* ``only_*``: ``--only`` with the same references: the listed person's labelled face hidden
  (should be 100%) and other people's labelled faces hidden (what fail safe costs).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.config import ConsentConfig, RunConfig
from veil.consent import ConsentList, FaceCheck, check_face, reference_embedding
from veil.errors import InputError
from veil.io.images import IMAGE_SUFFIXES, read_image
from veil.types import Faces

__all__ = ["ConsentMeasures", "ConsentRow", "Photo", "decide", "measure_identity_set"]


@dataclass
class Photo:
    """One input photo: whose it is and every face measured in it."""

    person: str
    path: Path
    checks: list[FaceCheck]
    labelled: int | None  # the face nearest the image centre; None: no face found


@dataclass
class ConsentMeasures:
    """Everything measured once; :func:`decide` turns it into counts per threshold."""

    references: dict[str, np.ndarray]
    photos: list[Photo]
    refused: Counter[str] = field(default_factory=Counter)

    def face_reliability(self) -> dict[str, int]:
        return dict(Counter(ch.reason or "reliable" for p in self.photos for ch in p.checks))


@dataclass(frozen=True)
class ConsentRow:
    """The counts at one keep threshold."""

    keep_threshold: float
    others_kept: int
    other_pairs: int
    own_kept: int
    own: int
    gallery_own_kept: int
    gallery_wrong: int
    gallery_photos: int
    only_own_hidden: int
    only_others_hidden: int
    other_labelled: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _labelled(faces: Faces, shape: tuple[int, ...]) -> int | None:
    if not len(faces):
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    mid = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(mid - centre, axis=1)))


def people_folders(root: Path, people: int | None = None) -> list[Path]:
    """The identity set's person folders, sorted; a clear error when there are none."""
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of <person>/<images>")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise InputError(f"{root}: no person sub-folders (expected <person>/<images>)")
    return folders[:people] if people else folders


def measure_identity_set(
    root: Path,
    config: ConsentConfig,
    *,
    people: int | None = None,
    run_config: RunConfig | None = None,
    progress: Callable[[Path], None] | None = None,
) -> ConsentMeasures:
    """Reference embedding per person, every other photo's faces measured."""
    from veil.evaluate.identity import FaceEmbedder
    from veil.pipeline import Pipeline

    pipeline = Pipeline.from_config(run_config or RunConfig())
    embedder = FaceEmbedder()
    measures = ConsentMeasures({}, [])
    for folder in people_folders(root, people):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            image = read_image(path).image
            faces = pipeline.detect(image)
            if folder.name not in measures.references:
                try:
                    measures.references[folder.name] = reference_embedding(
                        embedder, image, faces, config, path
                    )
                    if progress is not None:
                        progress(path)
                    continue
                except InputError as exc:
                    measures.refused[str(exc).split(": ", 1)[-1]] += 1
            checks = [check_face(embedder, image, b, min_size=config.min_size) for b in faces.xyxy]
            measures.photos.append(Photo(folder.name, path, checks, _labelled(faces, image.shape)))
            if progress is not None:
                progress(path)
    if not measures.references:
        raise InputError(f"{root}: no person has a usable reference photo")
    return measures


def decide(measures: ConsentMeasures, config: ConsentConfig) -> ConsentRow:
    """The real :class:`ConsentList` decisions on everything measured, at ``config``."""
    refs = measures.references
    names = list(refs)
    vectors = np.asarray([refs[n] for n in names], np.float32)
    lists = {
        (mode, who): ConsentList(mode, [who], vectors[[i]], config)
        for mode in ("keep", "only")
        for i, who in enumerate(names)
    }
    gallery = ConsentList("keep", names, vectors, config)
    c: Counter[str] = Counter()
    for photo in measures.photos:
        lab = photo.labelled
        for who in names:
            kept = [not lists["keep", who].hidden(ch)[0] for ch in photo.checks]
            hidden = [lists["only", who].hidden(ch)[0] for ch in photo.checks]
            if photo.person == who:
                c["own"] += 1
                c["own_kept"] += lab is not None and kept[lab]
                c["only_own_hidden"] += lab is None or hidden[lab]
            else:
                c["other_pairs"] += 1
                c["others_kept"] += any(kept)
                c["only_others_hidden"] += lab is not None and hidden[lab]
                c["other_labelled"] += lab is not None
        if photo.person in refs:
            kept_all = [not gallery.hidden(ch)[0] for ch in photo.checks]
            wrong = [
                k and i == lab and gallery.match(ch)[2] != photo.person
                for i, (k, ch) in enumerate(zip(kept_all, photo.checks, strict=True))
            ]
            c["gallery_photos"] += 1
            c["gallery_own_kept"] += lab is not None and kept_all[lab]
            c["gallery_wrong"] += any(wrong)
    counts = {f.name: int(c[f.name]) for f in dataclasses.fields(ConsentRow)[1:]}
    return ConsentRow(keep_threshold=config.keep_threshold, **counts)


def decide_thresholds(
    measures: ConsentMeasures, config: ConsentConfig, thresholds: Sequence[float]
) -> list[ConsentRow]:
    return [
        decide(measures, dataclasses.replace(config, keep_threshold=float(t))) for t in thresholds
    ]
