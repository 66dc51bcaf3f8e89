"""Build ``src/veil/assets/synthetic_faces.npz``: many k-Same faces, each one nobody.

The ``synthetic`` anonymizer's default generator (``nobodies``) gives each face one of these
instead of one shared mean face, so people in a crowd do not look cloned and an output is
not pulled toward the few originals that look most like the mean (hubness).

The photos are located, landmarked, mirrored and unwarped onto the Procrustes mean shape
exactly as ``scripts/build_mean_face.py`` does, and each identity is averaged. A candidate
is the average of ``--k`` identities (``--subsets``: random ones; a random anchor and the
``k - 1`` identities most like it by mean dlib embedding, so the average keeps a look of its
own instead of converging on everyone's mean; or ``k / 2`` around each of two random
people), drawn on the average landmark shape of the same identities, moved ``--exaggerate``
times its distance from the average of all identities (texture and shape: a caricature,
less central, so the faces differ more from each other) and
sharpened. A candidate is kept only when

* it is nobody: its dlib embedding is at least 0.6 (dlib's same-person distance) from every
  source photo (stricter than real strangers: a photo's nearest photo of another of the 158
  people is at median 0.53, and only 6% of photos are 0.6 from all others; so only about 1
  to 2% of candidates pass); the nearest identity *mean* embedding is reported too;
* it is distinct: at least ``--spread`` from every face already kept.

Only the averages, their shapes and their embeddings are written: no photo leaves the data
folder. Example::

    python scripts/build_synthetic_faces.py ../shared/data/identity-lfw158
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
from build_mean_face import collect, identity_averages, mean_shape, source_embeddings

from veil.anonymize._landmarks import apply_affine, similarity
from veil.anonymize._warp import CanonicalFrame
from veil.assets import SyntheticFaces
from veil.evaluate.identity import SAME_PERSON_DISTANCE, FaceEmbedder, embed_texture

log = logging.getLogger("build_synthetic_faces")
OUT = Path(__file__).resolve().parents[1] / "src" / "veil" / "assets" / "synthetic_faces.npz"


def person_shapes(
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]], shape: np.ndarray
) -> dict[str, np.ndarray]:
    """``person -> (68, 2)``: the mean of their landmarks, each aligned onto ``shape``."""
    return {
        person: np.mean([apply_affine(similarity(p, shape), p) for _, p in faces], axis=0)
        for person, faces in found.items()
    }


def on_shape(frame: CanonicalFrame, texture: np.ndarray, shape68: np.ndarray) -> np.ndarray:
    """``texture`` (on the frame's mean shape) redrawn on ``shape68``, as the anonymizer
    will draw it; pixels the warp leaves uncovered keep the texture."""
    warped, covered = frame.render(texture, shape68, texture.shape[:2])
    return np.where(covered[..., None], warped, texture)


def prepared(data: Path, size: int, cache: Path | None) -> dict[str, np.ndarray]:
    """What the candidates are made of, from ``cache`` when it exists (else saved there):
    the frame's mean ``shape``, per identity its average ``textures``/``seen`` in the frame
    and its average landmark ``shapes``, every source photo's embedding ``vecs`` and person
    ``names``. The cache holds averages and embeddings only; keep it out of the repository."""
    if cache is not None and cache.is_file():
        return dict(np.load(cache, allow_pickle=False))
    found = collect(data, None)
    shape = mean_shape([p for faces in found.values() for _, p in faces], size, 4)
    frame = CanonicalFrame(shape, size)
    per_person, shapes = identity_averages(found, frame), person_shapes(found, shape)
    vecs, names = source_embeddings(FaceEmbedder(), found)
    people = sorted(per_person)
    out = {
        "shape": shape,
        "people": np.array(people),
        "textures": np.stack([per_person[p][0] for p in people]).astype(np.float32),
        "seen": np.stack([per_person[p][1] for p in people]),
        "shapes": np.stack([shapes[p] for p in people]).astype(np.float32),
        "vecs": vecs.astype(np.float32),
        "names": np.array(names),
        "images": np.array(sum(len(v) for v in found.values()) // 2),
    }
    if cache is not None:
        np.savez(cache, **out)
    return out


SUBSETS = ("random", "clusters", "pairs", "mixed")


def pick(mode: str, means: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` identities (rows of ``means``, their mean embeddings)."""
    if mode == "random":
        return rng.choice(len(means), k, replace=False)
    if mode == "clusters":
        anchor = means[int(rng.integers(len(means)))]
        return np.argsort(np.linalg.norm(means - anchor, axis=1))[:k]
    a, b = rng.choice(len(means), 2, replace=False)
    first = np.argsort(np.linalg.norm(means - means[a], axis=1))[: k // 2]
    rest = [i for i in np.argsort(np.linalg.norm(means - means[b], axis=1)) if i not in first]
    return np.array([*first, *rest[: k - k // 2]])


def mean_texture(textures: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-weight mean of identity averages where seen, and the seen count per pixel."""
    weight = seen.sum(0).astype(np.float64)
    total = (textures * seen[..., None]).sum(0)
    return total / np.maximum(weight, 1)[..., None], weight


def finish(mean: np.ndarray, holes: np.ndarray, sharpen: float) -> np.ndarray:
    """``uint8`` texture: unsharp mask of ``mean``, ``holes`` (bool) inpainted."""
    blurred = cv2.GaussianBlur(mean, (0, 0), 2.0)
    texture = np.clip(np.round(mean + sharpen * (mean - blurred)), 0, 255).astype(np.uint8)
    return cv2.inpaint(texture, holes.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "data", type=Path, nargs="?", default=Path("../shared/data/identity-lfw158")
    )
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    parser.add_argument("--size", type=int, default=160, help="texture side in pixels")
    parser.add_argument("--identities", type=int, default=24, help="faces to keep")
    parser.add_argument("--k", type=int, default=12, help="identities averaged per face")
    parser.add_argument("--tries", type=int, default=4000, help="candidates to try at most")
    parser.add_argument("--spread", type=float, default=0.3, help="min distance between faces")
    parser.add_argument("--sharpen", type=float, default=4.0, help="unsharp-mask amount")
    parser.add_argument(
        "--subsets",
        choices=SUBSETS,
        default="mixed",
        help="which k identities: random, the k most alike (clusters), k/2 around each of "
        "two random people (pairs), or those three in turn (mixed)",
    )
    parser.add_argument(
        "--exaggerate",
        type=float,
        default=1.6,
        help="move each average's texture and shape this many times its distance from the "
        "average of all identities (1: plain k-Same; above 1: a caricature, less central)",
    )
    parser.add_argument("--cache", type=Path, default=None, help="reuse the prepared averages")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.exaggerate < 0:
        parser.error(f"--exaggerate must be >= 0 (1: plain k-Same), got {args.exaggerate}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prep = prepared(args.data, args.size, args.cache)
    shape, vecs, labels = prep["shape"], prep["vecs"], prep["names"]
    people = [str(p) for p in prep["people"]]
    frame = CanonicalFrame(shape, args.size)
    embedder = FaceEmbedder()
    means = np.array([vecs[labels == p].mean(0) for p in people])
    everyone, _ = mean_texture(prep["textures"], prep["seen"])
    everyone_shape = prep["shapes"].mean(0)
    a = args.exaggerate
    rng = np.random.default_rng(args.seed)
    kept: list[dict[str, object]] = []
    embeddings: list[np.ndarray] = []
    for attempt in range(args.tries):
        if len(kept) == args.identities:
            break
        mode = SUBSETS[attempt % 3] if args.subsets == "mixed" else args.subsets
        near = pick(mode, means, args.k, rng)
        subset = [people[i] for i in near]
        mean, weight = mean_texture(prep["textures"][near], prep["seen"][near])
        mean = np.clip(everyone + a * (mean - everyone), 0, 255)
        texture = finish(mean, weight < 0.5 * len(near), args.sharpen)
        shape68 = prep["shapes"][near].mean(0)
        shape68 = (everyone_shape + a * (shape68 - everyone_shape)).astype(np.float32)
        v = embed_texture(embedder, on_shape(frame, texture, shape68), shape68)
        d_photo = float(np.linalg.norm(vecs - v, axis=1).min())
        d_person = float(np.linalg.norm(means - v, axis=1).min())
        d_kept = min((float(np.linalg.norm(e - v)) for e in embeddings), default=9.0)
        ok = d_photo >= SAME_PERSON_DISTANCE and d_kept >= args.spread
        log.debug(
            "try %d (%s): nearest photo %.3f, identity mean %.3f, kept face %.3f%s",
            attempt, mode, d_photo, d_person, d_kept, "  KEPT" if ok else "",
        )  # fmt: skip
        if ok:
            embeddings.append(v)
            log.info(
                "try %d (%s): kept face %d, nearest photo %.3f", attempt, mode, len(kept), d_photo
            )
            kept.append(
                {
                    "texture": texture,
                    "shape": shape68,
                    "k": len(subset),
                    "min_distance_photo": round(d_photo, 4),
                    "min_distance_identity": round(d_person, 4),
                }
            )
    if not kept:
        print("no candidate passed: nothing written")
        return 1
    meta = {
        "count": len(kept),
        "k": [c["k"] for c in kept],
        "min_distance_photo": [c["min_distance_photo"] for c in kept],
        "min_distance_identity": [c["min_distance_identity"] for c in kept],
        "identities_checked": len(people),
        "images": int(prep["images"]),
        "spread": args.spread,
        "subsets": args.subsets,
        "sharpen": args.sharpen,
        "exaggerate": args.exaggerate,
        "mirrored": True,
        "size": args.size,
        "source": f"{args.data.name}: Labeled Faces in the Wild (research use), averages only",
        "method": "68-point landmarks (dlib), piecewise-affine unwarp onto the Procrustes "
        "mean shape, per-identity mean, then the mean of k identities (random, alike, or "
        "alike around two people) on their mean landmark shape, sharpened",
        "command": "python scripts/build_synthetic_faces.py " + shlex.join(sys.argv[1:]),
    }
    faces = SyntheticFaces(
        textures=np.stack([c["texture"] for c in kept]),  # type: ignore[misc]
        shapes=np.stack([c["shape"] for c in kept]),  # type: ignore[misc]
        embeddings=np.stack(embeddings).astype(np.float32),
        shape=shape,
        meta=meta,
    )
    faces.save(args.output)
    print(f"faces kept: {len(kept)} (k = {args.k} identities each) of {attempt + 1} tried")
    print(f"nearest source photo over all faces: {min(meta['min_distance_photo']):.3f}")
    print(f"nearest identity mean over all faces: {min(meta['min_distance_identity']):.3f}")
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
