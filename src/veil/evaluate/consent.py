"""Consent keep-list / erasure-list check on an identity set (``<person>/<images>``).

For each person, their first usable photo is the reference (the first photo in sorted order
that :class:`veil.consent.ConsentList` accepts: exactly one face, embedded reliably; refused
ones are counted); every other photo of everyone is an input. Each input is detected with
the pipeline's detector and each face measured once (:func:`veil.consent.check_face`); the
decisions are then those of the real :class:`~veil.consent.ConsentList` for one reference
at a time (the issue's protocol) and for all references at once (the ambiguity margin
applies). Used by ``veil eval consent`` and ``benchmarks/consent.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.config import ConsentConfig, RunConfig
from veil.consent import ConsentList, FaceCheck, check_face, reference_embedding
from veil.errors import InputError
from veil.types import Faces

__all__ = ["ConsentMeasures", "Photo", "decide", "measure", "summary"]


@dataclass
class Photo:
    """One input photo: its person, the faces measured in it, and which face is the
    person's (``labelled``: the face nearest the image centre; None: no face found)."""

    person: str
    path: Path
    checks: list[FaceCheck]
    labelled: int | None


@dataclass
class ConsentMeasures:
    """What :func:`measure` found: reference embeddings by person, input photos, and why
    reference candidates were refused (reason -> count)."""

    refs: dict[str, np.ndarray] = field(default_factory=dict)
    photos: list[Photo] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)


def _labelled(faces: Faces, shape: tuple[int, ...]) -> int | None:
    if not len(faces):
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    mid = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(mid - centre, axis=1)))


def measure(
    root: Path,
    people: int,
    config: ConsentConfig,
    *,
    detect: Callable[[np.ndarray], Faces] | None = None,
    embedder: Any = None,
    progress: Callable[[Path], None] | None = None,
) -> ConsentMeasures:
    """Reference embedding per person (the first ``people`` folders, sorted), every other
    photo measured, refusal reasons. ``detect``: veil's default pipeline's detector unless
    given; ``embedder``: a :class:`~veil.evaluate.identity.FaceEmbedder` unless given."""
    from veil.evaluate.identity import FaceEmbedder
    from veil.io.images import IMAGE_SUFFIXES, read_image
    from veil.pipeline import Pipeline

    if not root.is_dir():
        raise InputError(f"{root}: expected an identity set folder (<person>/<images>)")
    detect = detect or Pipeline.from_config(RunConfig()).detect
    embedder = embedder or FaceEmbedder()
    out = ConsentMeasures()
    for folder in sorted(p for p in root.iterdir() if p.is_dir())[:people]:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            image = read_image(path).image
            faces = detect(image)
            if progress is not None:
                progress(path)
            if folder.name not in out.refs:
                try:
                    vector = reference_embedding(embedder, image, faces, config, path)
                    out.refs[folder.name] = vector
                    continue
                except InputError as exc:
                    out.refused[str(exc).split(": ", 1)[1]] += 1
            size = config.min_size
            checks = [check_face(embedder, image, b, min_size=size) for b in faces.xyxy]
            out.photos.append(Photo(folder.name, path, checks, _labelled(faces, image.shape)))
    return out


def decide(refs: dict[str, np.ndarray], photos: list[Photo], config: ConsentConfig) -> Counter[str]:
    """The counts behind the table: ``other_kept`` of ``other_pairs`` (a reference and a
    photo of someone else where any face is kept), ``own_kept`` of ``own`` (the
    consenting person's labelled face kept), the same with every reference at once
    (``gallery_*``), and ``--only``'s ``own_hidden_only`` / ``other_hidden_only``."""
    names = list(refs)
    vectors = np.asarray([refs[n] for n in names], np.float32).reshape(-1, 128)
    lists = {
        (mode, who): ConsentList(mode, [who], vectors[[i]], config)
        for mode in ("keep", "only")
        for i, who in enumerate(names)
    }
    gallery = ConsentList("keep", names, vectors, config)
    c: Counter[str] = Counter()
    for photo in photos:
        lab = photo.labelled
        for who in names:
            kept = [not lists["keep", who].hidden(ch)[0] for ch in photo.checks]
            hidden = [lists["only", who].hidden(ch)[0] for ch in photo.checks]
            if photo.person == who:
                c["own"] += 1
                c["own_kept"] += lab is not None and kept[lab]
                c["own_hidden_only"] += lab is None or hidden[lab]
            else:
                c["other_pairs"] += 1
                c["other_kept"] += any(kept)
                c["other_hidden_only"] += lab is not None and hidden[lab]
                c["other_labelled"] += lab is not None
        if photo.person in refs:
            kept_all = [not gallery.hidden(ch)[0] for ch in photo.checks]
            wrong = [
                k and gallery.match(ch)[2] != photo.person and i == lab
                for i, (k, ch) in enumerate(zip(kept_all, photo.checks, strict=True))
            ]
            c["gallery_photos"] += 1
            c["gallery_own_kept"] += lab is not None and kept_all[lab]
            c["gallery_wrong"] += any(wrong)
        for ch in photo.checks:
            c[f"face_{ch.reason or 'reliable'}"] += 1
    return c


#: the table's columns after the threshold: ``summary`` key -> heading
COLUMNS = {
    "others_kept": "others kept (pairs; target 0)",
    "own_kept": "own photos kept (target >= 70%)",
    "own_kept_all_refs": "own kept, all refs at once",
    "kept_as_someone_else": "kept as someone else, all refs",
    "only_own_hidden": "--only: own hidden",
    "only_others_hidden": "--only: others hidden too",
}


def share(count: int, total: int) -> str:
    """``"count/total (pct%)"``, or ``"n/a"`` for nothing counted."""
    return f"{count}/{total} ({100 * count / total:.1f}%)" if total else "n/a"


def summary(c: Counter[str]) -> dict[str, tuple[int, int]]:
    """``name -> (count, out of)`` of the table's columns."""
    return {
        "others_kept": (c["other_kept"], c["other_pairs"]),
        "own_kept": (c["own_kept"], c["own"]),
        "own_kept_all_refs": (c["gallery_own_kept"], c["gallery_photos"]),
        "kept_as_someone_else": (c["gallery_wrong"], c["gallery_photos"]),
        "only_own_hidden": (c["own_hidden_only"], c["own"]),
        "only_others_hidden": (c["other_hidden_only"], c["other_labelled"]),
    }
