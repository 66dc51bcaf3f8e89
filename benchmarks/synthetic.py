"""Synthetic face replacement on identity-lfw158: speed, detectability, pose, identity.

For the first ``--people`` people (``--images`` photos each) CenterFace finds the face;
each method replaces it and we measure, against gaussian blur and pixelate:

* faces/s: ``apply`` on one face, one thread, detection not counted (``--face-size 150``
  rescales every photo so its face is 150 px, the issue's speed target);
* redetected: CenterFace finds a face (IoU >= 0.5) where the original was (realism), and
  dlib's HOG detector (upsampled once) finds one (IoU >= 0.3: its boxes are tighter);
* landmark error (as ``veil.evaluate.utility.landmark_error``): dlib 68-point landmarks
  of the output, predicted in the box where the original's checked landmarks were found,
  vs those, mean distance over inter-ocular distance (pose and expression kept); faces
  whose original has no checked landmarks are left out and counted;
* skin dE: the colour of the cheeks (two landmark polygons between the jaw, the nose, the
  mouth corners and the lower eyelids; on the original at its checked landmarks, on the
  output at the landmarks predicted there), median LAB of the output against the
  original's, CIE76 distance in OpenCV's 8-bit LAB (about 2.5 units of L per 1 L*): a
  replaced face keeps the person's skin tone when this is small (median and worst face);
  also on the upper cheeks only (clear of beards, smile folds and eyelid shadows), the
  patches the method matches its colour on;
* identity (dlib ResNet, see ``veil.evaluate.identity``): share of outputs within 0.6 of
  their own original, linkage rank-1 (chance 1/n) and re-identification rank-1 against
  the person's other photos (with its chance level); hub@3: share of outputs whose nearest
  original is one of the 3 most frequent nearest originals (even spread: 3/n).

Example::

    python benchmarks/synthetic.py ../shared/data/identity-lfw158 --people 30 --images 3
    python benchmarks/synthetic.py ../shared/data/identity-lfw158 --face-size 150 \
        --methods synthetic,synthetic-alpha
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import _machine
from veil.anonymize._landmarks import LandmarkModel, inter_ocular
from veil.anonymize.base import ANONYMIZERS, Anonymizer
from veil.boxes import box_iou
from veil.detect.base import DETECTORS, Detector
from veil.evaluate.identity import (
    FaceEmbedder,
    hubness,
    linkage_rank1,
    reidentification,
    share_within,
)
from veil.io.images import iter_image_files, read_image
from veil.mask import Masker
from veil.types import Faces

if "synthetic" not in ANONYMIZERS.names():  # until the registry lists it
    ANONYMIZERS.register("synthetic", "veil.anonymize.synthetic:SyntheticFace")

METHODS = {
    "synthetic": ("synthetic", {"seed": 0}),
    "synthetic-mean": ("synthetic", {"seed": 0, "generator": "mean"}),
    "synthetic-d1.25": ("synthetic", {"seed": 0, "degree": 1.25}),
    "synthetic-d1.5": ("synthetic", {"seed": 0, "degree": 1.5}),
    "synthetic-d2": ("synthetic", {"seed": 0, "degree": 2.0}),
    "synthetic-d0": ("synthetic", {"seed": 0, "degree": 0.0}),
    "synthetic-alpha": ("synthetic", {"seed": 0, "blend": "alpha"}),
    "gaussian": ("gaussian", {}),
    "pixelate": ("pixelate", {}),
}


def load(root: Path, people: int, images: int) -> tuple[list[np.ndarray], list[str]]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir())[:people]
    photos, labels = [], []
    for person in dirs:
        for path in list(iter_image_files(person))[:images]:
            photos.append(np.ascontiguousarray(read_image(path).image))
            labels.append(person.name)
    return photos, labels


def largest(detector: Detector, image: np.ndarray) -> Faces | None:
    found = detector.detect(image)
    return found[int(np.argmax(found.sizes))] if len(found) else None


def detect(
    detector: Detector, photos: list[np.ndarray], labels: list[str], face_size: float | None
) -> tuple[list[np.ndarray], list[str], list[Faces]]:
    """The photos with a face, their labels and their largest face; with ``face_size``
    each photo is first rescaled (cubic) so that face is ``face_size`` px, and detected again."""
    images, names, faces = [], [], []
    for image, label in zip(photos, labels, strict=True):
        face = largest(detector, image)
        if face is not None and face_size is not None:
            scale = face_size / float(face.sizes[0])
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            face = largest(detector, image)
        if face is not None:
            images.append(image)
            names.append(label)
            faces.append(face)
    return images, names, faces


def hog_found(hog: Detector, image: np.ndarray, box: np.ndarray) -> bool:
    """dlib's HOG detector finds a face overlapping ``box`` (IoU >= 0.3)."""
    found = hog.detect(image)
    return len(found) > 0 and float(box_iou(found.xyxy, box[None]).max()) >= 0.3


#: cheek polygons of the 68 iBUG points: jaw side, mouth corner, nose side, lower eyelid
CHEEKS = ((1, 2, 3, 4, 48, 31, 40, 41), (15, 14, 13, 12, 54, 35, 47, 46))


#: their upper part, shrunk to 60% about its centre: ``veil.anonymize._warp.skin_patches``,
#: restated here so the benchmark measures versions of veil that predate it the same way
UPPER_CHEEKS = ((1, 2, 31, 40, 41), (15, 14, 35, 47, 46))


def cheek_colour(image: np.ndarray, points: np.ndarray, upper: bool) -> np.ndarray:
    """Median 8-bit LAB colour of the :data:`CHEEKS` of ``points (68, 2)``, or of their
    upper part (:data:`UPPER_CHEEKS`, the patches the method matches)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for cheek in UPPER_CHEEKS if upper else CHEEKS:
        poly = points[list(cheek)].astype(np.float64)
        if upper:
            poly = poly.mean(0) + 0.6 * (poly - poly.mean(0))
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return np.median(cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[mask.astype(bool)], axis=0)


def skin_delta(
    original: np.ndarray,
    output: np.ndarray,
    points: np.ndarray,
    output_points: np.ndarray,
    upper: bool = False,
) -> float:
    """CIE76 distance (8-bit LAB) between the cheeks' median colours, each face's cheeks
    where its own landmarks put them."""
    a = cheek_colour(original, points, upper)
    b = cheek_colour(output, output_points, upper)
    return float(np.linalg.norm(a.astype(np.float64) - b))


def shipped_spread() -> str:
    """How far apart the shipped synthetic faces are (dlib distances of their stored
    embeddings): a crowd gets visibly different faces when these are like strangers'."""
    from veil.assets import load_synthetic_faces

    e = load_synthetic_faces().embeddings.astype(np.float64)
    d = np.linalg.norm(e[:, None] - e[None], axis=2)[~np.eye(len(e), dtype=bool)]
    return (
        f"shipped synthetic faces: {len(e)}, dlib distance between two: "
        f"median {np.median(d):.2f}, min {d.min():.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "data", type=Path, nargs="?", default=Path("../shared/data/identity-lfw158")
    )
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--images", type=int, default=4, help="photos per person")
    parser.add_argument("--methods", default="synthetic,synthetic-mean,gaussian,pixelate")
    parser.add_argument(
        "--face-size",
        type=float,
        default=None,
        help="rescale each photo so its detected face is about this many pixels",
    )
    args = parser.parse_args(argv)

    photos, labels = load(args.data, args.people, args.images)
    detector, hog_detector = DETECTORS.create("centerface"), DETECTORS.create("dlib-hog")
    masker, lmk, embedder = Masker(), LandmarkModel(), FaceEmbedder()
    photos, labels, faces = detect(detector, photos, labels, args.face_size)
    boxes = np.concatenate([f.xyxy for f in faces])
    originals = np.array([embedder.embed(im, b) for im, b in zip(photos, boxes, strict=True)])
    own = [lmk.fit(im, b) for im, b in zip(photos, boxes, strict=True)]
    sizes = np.concatenate([f.sizes for f in faces])
    print(
        f"# {len(photos)} faces of {len(set(labels))} people, face size median "
        f"{np.median(sizes):.0f} px ({np.min(sizes):.0f}-{np.max(sizes):.0f}); "
        f"{sum(f is not None for f in own)} with checked landmarks on the original; "
        f"CPU: {_machine.describe()}"
    )
    print("# " + " ".join(["python", *sys.argv]))
    print(f"# {shipped_spread()}")
    header = (
        f"| {'method':<16} | faces/s | redetected CF / HOG | landmark err | skin dE med / max | "
        f"upper cheeks dE med / max | "
        f"within 0.6 | "
        f"linkage r1 | re-id r1 (chance) | hub@3 | fallbacks |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name in args.methods.split(","):
        method, options = METHODS[name]
        anonymizer: Anonymizer = ANONYMIZERS.create(method, **options)
        outs, seconds = [], 0.0
        for image, face in zip(photos, faces, strict=True):
            regions = masker.regions(face, image.shape)
            t0 = time.perf_counter()
            outs.append(anonymizer.apply(image, regions))
            seconds += time.perf_counter() - t0
        redetected = np.mean(
            [
                len(d := detector.detect(o)) > 0 and box_iou(d.xyxy, b[None]).max() >= 0.5
                for o, b in zip(outs, boxes, strict=True)
            ]
        )
        hog = np.mean([hog_found(hog_detector, o, b) for o, b in zip(outs, boxes, strict=True)])
        checked = [(im, o, f) for im, o, f in zip(photos, outs, own, strict=True) if f is not None]
        found = [lmk.predict(o, f.box) for _, o, f in checked]
        errors = [
            np.linalg.norm(q - f.points, axis=1).mean() / inter_ocular(f.points)
            for (_, _, f), q in zip(checked, found, strict=True)
        ]
        skin, upper = (
            [
                skin_delta(im, o, f.points, q, part)
                for (im, o, f), q in zip(checked, found, strict=True)
            ]
            for part in (False, True)
        )
        anon = np.array([embedder.embed(o, b) for o, b in zip(outs, boxes, strict=True)])
        reid = reidentification(anon, originals, labels)
        fallbacks = getattr(anonymizer, "fallbacks", 0)
        print(
            f"| {name:<16} | {len(outs) / seconds:7.1f} | {redetected:9.2f} / {hog:4.2f} | "
            f"{np.median(errors):12.3f} | {np.median(skin):8.1f} / {np.max(skin):5.1f} | "
            f"{np.median(upper):8.1f} / {np.max(upper):5.1f} | "
            f"{share_within(anon, originals):10.2f} | "
            f"{linkage_rank1(anon, originals):10.3f} | "
            f"{reid.rank1:6.3f} ({reid.chance_rank1:.3f}) | {hubness(anon, originals):5.2f} | "
            f"{fallbacks:9d} |"
        )
    print(
        f"# linkage chance 1/n = {1 / len(photos):.3f}; originals: re-id r1 "
        f"{reidentification(originals, originals, labels).rank1:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
