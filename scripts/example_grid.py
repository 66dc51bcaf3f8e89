"""Before/after grid for docs: original | gaussian | pixelate | synthetic with 3 seeds.

Rows are ``skimage.data.astronaut()`` (Eileen Collins, NASA, public domain, shipped with
scikit-image) as is, mirrored, rotated both ways and scaled down, so the grid shows the
synthetic face following the pose; the three synthetic columns are three seeds, i.e. three
of the shipped synthetic identities. The last row is one "crowd" image made of four copies
of the photo side by side: each face (one track each) gets a different synthetic face.
Each image goes through the whole pipeline (CenterFace, the default mask, the method);
each tile is a crop around the detected face. The labels say when a face went to the
synthetic method's fallback. No dataset photo is used (LFW's licence keeps it out of the
repository). Example::

    python scripts/example_grid.py --out docs/img/synthetic-grid.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

from veil.anonymize.base import ANONYMIZERS
from veil.detect.base import DETECTORS
from veil.mask import Masker

METHODS = {
    "gaussian": ("gaussian", {}),
    "pixelate": ("pixelate", {}),
    "synthetic seed 0": ("synthetic", {"seed": 0}),
    "synthetic seed 1": ("synthetic", {"seed": 1}),
    "synthetic seed 2": ("synthetic", {"seed": 2}),
}


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """``image`` rotated about its centre, borders reflected (no black corners)."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def scaled(image: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as shot": lambda im: im,
    "mirrored": lambda im: np.ascontiguousarray(im[:, ::-1]),
    "rotated +15": lambda im: rotate(im, 15),
    "rotated -20": lambda im: rotate(im, -20),
    "scaled 0.5": lambda im: scaled(im, 0.5),
}


def crop(image: np.ndarray, box: np.ndarray, tile: int) -> np.ndarray:
    """A ``tile`` x ``tile`` crop around ``box``, 1.8 face sizes wide (edges replicated)."""
    cx, cy = (box[:2] + box[2:]) / 2
    half = 0.9 * float(max(box[2] - box[0], box[3] - box[1]))
    scale = tile / (2 * half)
    matrix = np.array([[scale, 0, tile / 2 - scale * cx], [0, scale, tile / 2 - scale * cy]])
    return cv2.warpAffine(
        image, matrix, (tile, tile), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    )


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (tile.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(tile: int) -> np.ndarray:
    detector, masker = DETECTORS.create("centerface"), Masker()
    methods = {name: ANONYMIZERS.create(m, **opts) for name, (m, opts) in METHODS.items()}
    rows = []
    for variant, make in VARIANTS.items():
        image = np.ascontiguousarray(make(data.astronaut()))
        faces = detector.detect(image)
        if len(faces) == 0:
            raise SystemExit(f"no face found in the {variant!r} astronaut")
        regions = masker.regions(faces, image.shape)
        box = faces.xyxy[int(np.argmax(faces.sizes))]
        row = [label(crop(image, box, tile), f"{variant}, {faces.sizes.max():.0f} px")]
        for name, method in methods.items():
            before = getattr(method, "fallbacks", 0)
            out = method.apply(image, regions)
            fell = getattr(method, "fallbacks", 0) > before
            row.append(label(crop(out, box, tile), f"{name}{' (fallback)' if fell else ''}"))
        rows.append(np.hstack(row))
    rows.append(crowd_row(detector, masker, tile, len(METHODS) + 1))
    return np.vstack(rows)


def crowd_row(detector: object, masker: Masker, tile: int, columns: int) -> np.ndarray:
    """Four copies of the photo (as shot, mirrored, rotated) side by side in one image,
    anonymized once with ``synthetic`` (seed 0): one tile per face, then the whole image."""
    parts = [VARIANTS[v](data.astronaut()) for v in ("as shot", "mirrored", "rotated +15")]
    parts.append(np.ascontiguousarray(parts[0][:, ::-1]))
    image = np.ascontiguousarray(np.hstack([cv2.resize(p, (256, 256)) for p in parts]))
    faces = detector.detect(image)  # type: ignore[attr-defined]
    out = ANONYMIZERS.create("synthetic", seed=0).apply(image, masker.regions(faces, image.shape))
    order = np.argsort(faces.xyxy[:, 0])
    tiles = [label(crop(image, faces.xyxy[order[0]], tile), "crowd: one image")]
    tiles += [label(crop(out, faces.xyxy[i], tile), f"face {n + 1}") for n, i in enumerate(order)]
    whole = cv2.resize(out, (tile * (columns - len(tiles)), tile * (columns - len(tiles)) // 4))
    pad = np.zeros((tile, whole.shape[1], 3), np.uint8)
    pad[(tile - whole.shape[0]) // 2 :][: whole.shape[0]] = whole
    return np.hstack([*tiles, label(pad, "the whole image")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/synthetic-grid.png"))
    parser.add_argument("--tile", type=int, default=160, help="tile side in pixels")
    parser.add_argument("--colours", type=int, default=256, help="PNG palette size (0: RGB)")
    args = parser.parse_args(argv)
    picture = Image.fromarray(grid(args.tile))
    if args.colours:
        picture = picture.quantize(colors=args.colours, method=Image.Quantize.MEDIANCUT)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out, optimize=True)
    print(f"{args.out}: {picture.width} x {picture.height}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
