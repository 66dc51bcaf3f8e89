"""Consent keep-list / erasure-list check on an identity set (``<person>/<images>``).

For each person, their first usable photo is the reference (the first photo in sorted order
that :class:`veil.consent.ConsentList` accepts: exactly one face, embedded reliably; refused
ones are counted); every other photo of everyone is an input. Each input is detected with
veil's default detector and each face measured once (:func:`veil.consent.check_face`); the
decisions are then those of the real :class:`~veil.consent.ConsentList` for one reference
at a time (the issue's protocol) and for all references at once (the ambiguity margin
applies). Printed:

* ``others kept``: (reference, photo of someone else) pairs where any face is kept: target 0.
* ``own kept``: the consenting person's other photos whose labelled face (nearest the image
  centre) is kept: target >= 70%.
* ``--only`` with the same references: the listed person's labelled face hidden (should be
  100%) and other people's labelled faces hidden (the over-hiding that fail safe costs).

Example::

    python benchmarks/consent.py ../shared/data/identity-fr-highres
    python benchmarks/consent.py --people 40 --keep-thresholds 0.4,0.45,0.5 \\
        ../shared/data/identity-lfw158
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from veil.config import ConsentConfig, RunConfig
from veil.consent import ConsentList, FaceCheck, check_face, reference_embedding
from veil.errors import InputError
from veil.evaluate.identity import FaceEmbedder
from veil.io.images import IMAGE_SUFFIXES, read_image
from veil.pipeline import Pipeline
from veil.types import Faces

sys.path.insert(0, str(Path(__file__).parent))
import _machine


@dataclass
class Photo:
    person: str
    path: Path
    checks: list[FaceCheck]
    labelled: int | None  # index of the face nearest the image centre, None: no face


def _labelled(faces: Faces, shape: tuple[int, ...]) -> int | None:
    if not len(faces):
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    mid = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    return int(np.argmin(np.linalg.norm(mid - centre, axis=1)))


def measure(root: Path, people: int, config: ConsentConfig) -> tuple[dict, list[Photo], Counter]:
    """Reference embedding per person, every other photo measured, refusal reasons."""
    pipeline, embedder = Pipeline.from_config(RunConfig()), FaceEmbedder()
    refs: dict[str, np.ndarray] = {}
    photos: list[Photo] = []
    refused: Counter[str] = Counter()
    for folder in sorted(p for p in root.iterdir() if p.is_dir())[:people]:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            image = read_image(path).image
            faces = pipeline.detect(image)
            if folder.name not in refs:
                try:
                    refs[folder.name] = reference_embedding(embedder, image, faces, config, path)
                    continue
                except InputError as exc:
                    refused[str(exc).split(": ", 1)[1]] += 1
            size = config.min_size
            checks = [check_face(embedder, image, b, min_size=size) for b in faces.xyxy]
            photos.append(Photo(folder.name, path, checks, _labelled(faces, image.shape)))
    return refs, photos, refused


def decide(refs: dict[str, np.ndarray], photos: list[Photo], config: ConsentConfig) -> dict:
    """The counts behind the printed table."""
    names = list(refs)
    vectors = np.asarray([refs[n] for n in names], np.float32)
    lists = {
        (mode, who): ConsentList(mode, [who], vectors[[i]], config)
        for mode in ("keep", "only")
        for i, who in enumerate(names)
    }
    gallery = ConsentList("keep", names, vectors, config)
    c: Counter[str] = Counter()
    for photo in photos:
        for who in names:
            own = photo.person == who
            kept = [not lists["keep", who].hidden(ch)[0] for ch in photo.checks]
            hidden = [lists["only", who].hidden(ch)[0] for ch in photo.checks]
            lab = photo.labelled
            if own:
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
            lab = photo.labelled
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


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.1f}%)" if b else "n/a"


def _rows(c: Counter[str]) -> list[str]:
    return [
        _pct(c["other_kept"], c["other_pairs"]),
        _pct(c["own_kept"], c["own"]),
        _pct(c["gallery_own_kept"], c["gallery_photos"]),
        _pct(c["gallery_wrong"], c["gallery_photos"]),
        _pct(c["own_hidden_only"], c["own"]),
        _pct(c["other_hidden_only"], c["other_labelled"]),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="identity set: <person>/<images>")
    ap.add_argument("--people", type=int, default=10_000, help="first N people (sorted)")
    ap.add_argument(
        "--keep-thresholds",
        default=str(ConsentConfig().keep_threshold),
        help="comma-separated --keep-threshold values, one row each",
    )
    args = ap.parse_args(argv)
    base = ConsentConfig()
    start = time.perf_counter()
    refs, photos, refused = measure(args.root, args.people, base)
    seconds = time.perf_counter() - start
    print(f"# {args.root}: {len(refs)} people with a reference, {len(photos)} input photos")
    print(
        f"# margin {base.margin}, min_size {base.min_size}, --only threshold {base.only_threshold}"
    )
    print(f"# {_machine.describe()}; measured in {seconds:.0f} s")
    print(f"reference photos refused before one was accepted: {dict(refused) or 0}")
    faces: Counter[str] = Counter(ch.reason or "reliable" for p in photos for ch in p.checks)
    print(f"input faces by reliability: {dict(faces)}")
    head = [
        "keep threshold",
        "others kept (pairs; target 0)",
        "own photos kept (target >= 70%)",
        "own kept, all refs at once",
        "kept as someone else, all refs",
        "--only: own hidden",
        "--only: others hidden too",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for value in args.keep_thresholds.split(","):
        config = dataclasses.replace(base, keep_threshold=float(value))
        print(f"| {float(value):.2f} | " + " | ".join(_rows(decide(refs, photos, config))) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
