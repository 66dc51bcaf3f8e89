"""Build ``src/veil/assets/mean_face.npz``: a k-Same average face over many identities.

Every photo of every person is located (dlib HOG), landmarked (68 points), mirrored
(so the average is symmetric and lit from the front), and unwarped piecewise-affinely onto
the mean landmark shape; each identity's photos are averaged first, then the identities
with equal weight. Only the average is written: no source photo leaves the data folder.

It then checks that the average is nobody: the smallest dlib embedding distance between
the average and every source photo (and every identity's mean embedding); dlib calls two
faces the same person below 0.6. A plain average of blurry news photos lands near the
middle of dlib's embedding space (0.54 from one source photo here), so the script tries
the average of everyone and of ``--candidates`` random subsets of ``--fraction`` of the
people, each lightly sharpened, and ships the one farthest from every source: every
candidate is still an average of k >= 0.4 * 158 = 63 identities. Example::

    python scripts/build_mean_face.py ../shared/data/identity-lfw158
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from veil.anonymize._landmarks import MIRROR, LandmarkModel, hog_box, similarity
from veil.anonymize._warp import CanonicalFrame
from veil.assets import MeanFace
from veil.evaluate.identity import SAME_PERSON_DISTANCE, FaceEmbedder
from veil.io.images import iter_image_files, read_image

log = logging.getLogger("build_mean_face")
OUT = Path(__file__).resolve().parents[1] / "src" / "veil" / "assets" / "mean_face.npz"


def detect_landmarks(model: LandmarkModel, hog: object, image: np.ndarray) -> np.ndarray | None:
    """68 points of the largest face dlib's HOG finds in ``image``, or ``None``."""
    rects = hog(image, 1)  # type: ignore[operator]
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return model.locate(image, (r.left(), r.top(), r.right() + 1, r.bottom() + 1), hog=True)


def collect(root: Path, people: int | None) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """``person -> [(image, points68), ...]`` with each photo and its mirror image."""
    import dlib

    model, hog = LandmarkModel(), dlib.get_frontal_face_detector()
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    dirs = sorted(p for p in root.iterdir() if p.is_dir())[:people]
    for person in dirs:
        for path in iter_image_files(person):
            image = np.ascontiguousarray(read_image(path).image)
            points = detect_landmarks(model, hog, image)
            if points is None:
                log.info("no face in %s", path)
                continue
            mirrored = points[MIRROR].copy()
            mirrored[:, 0] = image.shape[1] - 1 - mirrored[:, 0]
            found[person.name] += [(image, points), (image[:, ::-1].copy(), mirrored)]
    return found


def mean_shape(shapes: list[np.ndarray], size: int, margin: float) -> np.ndarray:
    """Generalised Procrustes mean of ``(68, 2)`` shapes, scaled into an ``size`` square."""
    mean = shapes[0].astype(np.float64)
    for _ in range(5):
        aligned = [s @ m[:, :2].T + m[:, 2] for s in shapes for m in [similarity(s, mean)]]
        mean = np.mean(aligned, axis=0)
        mean = (mean - mean.mean(0)) / np.linalg.norm(mean - mean.mean(0))
    # fit the face and its outer ring into the square with `margin` pixels to spare
    extent = CanonicalFrame(mean * 100, 1000).points / 100
    lo, hi = extent.min(0), extent.max(0)
    scale = (size - 2 * margin) / float((hi - lo).max())
    return ((mean - (lo + hi) / 2) * scale + size / 2).astype(np.float32)


def identity_averages(
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]], frame: CanonicalFrame
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``person -> (mean texture float64 (S, S, 3), seen bool (S, S))`` in the frame."""
    out = {}
    for person, faces in found.items():
        acc = np.zeros((frame.size, frame.size, 3))
        cnt = np.zeros((frame.size, frame.size))
        for image, points in faces:
            tex, covered = frame.to_frame(image, points)
            acc[covered] += tex[covered]
            cnt += covered
        out[person] = (acc / np.maximum(cnt, 1)[..., None], cnt > 0)
    return out


def average(parts: list[tuple[np.ndarray, np.ndarray]], sharpen: float) -> np.ndarray:
    """Equal-weight mean of identity averages, gaps inpainted, then an unsharp mask."""
    total = sum(t * seen[..., None] for t, seen in parts)
    weight = sum(seen.astype(float) for _, seen in parts)
    mean = total / np.maximum(weight, 1)[..., None]
    blurred = cv2.GaussianBlur(mean, (0, 0), 2.0)
    texture = np.clip(np.round(mean + sharpen * (mean - blurred)), 0, 255).astype(np.uint8)
    holes = (weight < 0.5 * len(parts)).astype(np.uint8)
    return cv2.inpaint(texture, holes, 3, cv2.INPAINT_TELEA)


def source_embeddings(
    embedder: FaceEmbedder, found: dict[str, list[tuple[np.ndarray, np.ndarray]]]
) -> tuple[np.ndarray, list[str]]:
    """dlib embeddings ``(n, 128)`` of every source photo (not the mirrors) and its person."""
    vecs, names = [], []
    for person, faces in found.items():
        for image, points in faces[::2]:
            vecs.append(embedder.embed(image, hog_box(points)))
            names.append(person)
    return np.asarray(vecs), names


def distances(
    embedder: FaceEmbedder,
    texture: np.ndarray,
    shape: np.ndarray,
    vecs: np.ndarray,
    names: list[str],
) -> tuple[float, str, float, str]:
    """Smallest dlib distance from ``texture`` to any photo and to any person's mean."""
    big = cv2.resize(texture, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    v = embedder.embed(big, hog_box(shape * 2))
    d = np.linalg.norm(vecs - v, axis=1)
    people = sorted(set(names))
    labels = np.asarray(names)
    dp = [float(np.linalg.norm(vecs[labels == p].mean(0) - v)) for p in people]
    i, j = int(np.argmin(d)), int(np.argmin(dp))
    return float(d[i]), names[i], dp[j], people[j]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "data", type=Path, nargs="?", default=Path("../shared/data/identity-lfw158")
    )
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    parser.add_argument("--size", type=int, default=160, help="texture side in pixels")
    parser.add_argument("--people", type=int, default=None, help="use only the first N people")
    parser.add_argument("--candidates", type=int, default=40, help="random subsets to try")
    parser.add_argument("--fraction", type=float, default=0.4, help="people per subset")
    parser.add_argument("--sharpen", type=float, default=2.0, help="unsharp-mask amount")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    found = collect(args.data, args.people)
    photos = sum(len(v) for v in found.values()) // 2
    shape = mean_shape([p for faces in found.values() for _, p in faces], args.size, 4)
    frame = CanonicalFrame(shape, args.size)
    per_person = identity_averages(found, frame)
    embedder = FaceEmbedder()
    vecs, names = source_embeddings(embedder, found)
    # candidate 0 averages everyone; the others random subsets of `fraction` of the people.
    # Every candidate is a k-Same average; ship the one farthest from every source photo.
    rng = np.random.default_rng(args.seed)
    people = sorted(per_person)
    k_sub = max(2, round(args.fraction * len(people)))
    subsets = [people] + [
        sorted(rng.choice(people, k_sub, replace=False)) for _ in range(args.candidates)
    ]
    best: tuple[float, np.ndarray, list[str], tuple[float, str, float, str]] | None = None
    for subset in subsets:
        texture = average([per_person[p] for p in subset], args.sharpen)
        found_d = distances(embedder, texture, shape, vecs, names)
        log.info("k=%d: nearest photo %.3f", len(subset), found_d[0])
        if best is None or min(found_d[0], found_d[2]) > min(best[3][0], best[3][2]):
            best = (min(found_d[0], found_d[2]), texture, subset, found_d)
    assert best is not None
    _, texture, subset, (d_photo, who_photo, d_person, who_person) = best
    meta = {
        "k": len(subset),
        "identities": len(subset),
        "identities_checked": len(found),
        "candidates": len(subsets),
        "sharpen": args.sharpen,
        "images": photos,
        "mirrored": True,
        "size": args.size,
        "source": f"{args.data.name}: Labeled Faces in the Wild (research use), average only",
        "method": "68-point landmarks (dlib), piecewise-affine unwarp onto the Procrustes "
        "mean shape, per-identity mean, then mean over identities (k-Same)",
        "command": "python scripts/build_mean_face.py " + shlex.join(sys.argv[1:]),
        "min_distance_photo": round(d_photo, 4),
        "min_distance_identity": round(d_person, 4),
    }
    MeanFace(texture=texture, shape=shape, meta=meta).save(args.output)
    print(f"identities averaged (k): {len(subset)} of {len(found)}, photos: {photos} (+ mirrors)")
    print(f"nearest source photo:    dlib distance {d_photo:.3f} ({who_photo})")
    print(f"nearest identity (mean): dlib distance {d_person:.3f} ({who_person})")
    # dlib's threshold is calibrated on pairs of photos; the identity means are reported
    ok = d_photo >= SAME_PERSON_DISTANCE
    print(f"same-person threshold {SAME_PERSON_DISTANCE}: {'nobody matched' if ok else 'MATCH'}")
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
