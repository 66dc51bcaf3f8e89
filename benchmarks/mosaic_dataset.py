"""Build a dataset of large images from an annotated one, for checking recall of the
bounded working resolution (veil.detect.working) on full-size photos: each image is a
``grid x grid`` mosaic of the dataset's photos at their own resolution, boxes shifted.

    python benchmarks/mosaic_dataset.py ../shared/data/faces-crowd-fullres /tmp/mosaic
    python benchmarks/coverage.py --tools veil /tmp/mosaic

The dataset format is the one ``benchmarks/coverage.py`` reads: ``annotations.json``
with ``{"images": [{"file", "faces": [[x, y, w, h], ...], "ignore": [...]}]}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def mosaic(src: Path, dst: Path, grid: int, count: int) -> int:
    """Write ``count`` mosaics to ``dst``; returns the number of faces in them."""
    entries = json.loads((src / "annotations.json").read_text())["images"]
    photos = [Image.open(src / e["file"]).convert("RGB") for e in entries]
    cell_w = max(p.width for p in photos)
    cell_h = max(p.height for p in photos)
    (dst / "images").mkdir(parents=True, exist_ok=True)
    out, faces = [], 0
    for m in range(count):
        canvas = np.zeros((grid * cell_h, grid * cell_w, 3), np.uint8)
        boxes: dict[str, list[list[float]]] = {"faces": [], "ignore": []}
        for k in range(grid * grid):
            i = (m + k) % len(entries)
            x, y = (k % grid) * cell_w, (k // grid) * cell_h
            canvas[y : y + photos[i].height, x : x + photos[i].width] = np.asarray(photos[i])
            for key in boxes:
                boxes[key] += [[b[0] + x, b[1] + y, b[2], b[3]] for b in entries[i][key]]
        name = f"images/mosaic{m}.jpg"
        Image.fromarray(canvas).save(dst / name, quality=95)
        out.append({"file": name, **boxes})
        faces += len(boxes["faces"])
    (dst / "annotations.json").write_text(json.dumps({"images": out}))
    return faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--grid", type=int, default=3, help="photos per side")
    parser.add_argument("--count", type=int, default=3, help="mosaics to write")
    args = parser.parse_args()
    faces = mosaic(args.dataset, args.out, args.grid, args.count)
    print(f"{args.count} mosaics, {faces} faces -> {args.out}")


if __name__ == "__main__":
    main()
