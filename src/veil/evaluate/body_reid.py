"""Body re-identification: can an anonymized person be linked back by their appearance?

Face anonymization leaves clothes, build and colours untouched, and sports and video
studies re-identify people by them. No person re-identification model ships inside a PyPI
package (checked against the package index lists; models such as OSNet are downloaded at
run time by their libraries), so veil measures with a **classical appearance baseline**,
named as such in every output: each person crop resized to 64 x 128 and cut into 6
horizontal stripes; per stripe an HSV colour histogram (hue 16 bins weighted by
saturation, saturation 8, value 8) and a uniform LBP texture histogram (8 neighbours,
radius 1: 10 bins); each histogram L1-normalised and square-rooted (Hellinger), the whole
vector L2-normalised; distance Euclidean. It is weaker than a learnt re-ID model, so its
numbers are a lower bound of what an attacker achieves.

Measures (as for faces, :mod:`veil.evaluate.identity`): **linkage** rank-1 and mAP of each
anonymized crop against the original crops of all N people (its own original is the one
positive; chance 1 / N), and, when people carry labels with several views, re-identification
against the *other* views. The privacy band is DeepPrivacy2's, applied to linkage rank-1
(the share of people whose anonymized crop is nearest to their own original).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.errors import InputError, VeilError
from veil.evaluate.identity import (
    ReIdentification,
    linkage_rank1,
    privacy_band,
    reidentification,
)
from veil.types import check_image

__all__ = [
    "BASELINE_NAME",
    "BodyCrops",
    "BodyLinkage",
    "appearance_features",
    "body_crops",
    "body_linkage",
    "coco_person_boxes",
    "person_crop",
]

BASELINE_NAME = "appearance baseline (HSV colour + LBP texture in 6 stripes; not a learnt re-ID)"
CROP_SIZE = (64, 128)  # width, height
STRIPES = 6


def person_crop(image: np.ndarray, box_xyxy: Sequence[float]) -> np.ndarray | None:
    """The box's pixels of an RGB image (clipped), or ``None`` when under 4 x 8 px."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in box_xyxy)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 8:
        return None
    return image[y0:y1, x0:x1]


def _uniform_lbp(grey: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP code (0..9) per interior pixel, 8 neighbours, r=1."""
    g = grey.astype(np.int16)
    c = g[1:-1, 1:-1]
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    bits = np.stack(
        [g[1 + dy : g.shape[0] - 1 + dy, 1 + dx : g.shape[1] - 1 + dx] >= c for dy, dx in offsets]
    )
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(0)
    ones = bits.sum(0)
    return np.where(transitions <= 2, ones, 9)


def _hist(
    values: np.ndarray, bins: int, top: float, weights: np.ndarray | None = None
) -> np.ndarray:
    h, _ = np.histogram(values, bins=bins, range=(0, top), weights=weights)
    h = h.astype(np.float64)
    return np.sqrt(h / h.sum()) if h.sum() > 0 else h


def appearance_features(crop_rgb: np.ndarray) -> np.ndarray:
    """``float32 (6 * 42,)`` unit vector of a person crop (see the module docs)."""
    crop = cv2.resize(
        check_image(crop_rgb, name="person crop"), CROP_SIZE, interpolation=cv2.INTER_AREA
    )
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    lbp = np.pad(_uniform_lbp(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)), 1, mode="edge")
    parts = []
    for rows in np.array_split(np.arange(CROP_SIZE[1]), STRIPES):
        s = hsv[rows]
        hue, sat, val = s[..., 0].ravel(), s[..., 1].ravel(), s[..., 2].ravel()
        parts += [
            _hist(hue, 16, 180, weights=sat.astype(np.float64) + 1),
            _hist(sat, 8, 256),
            _hist(val, 8, 256),
            _hist(lbp[rows].ravel(), 10, 10),
        ]
    v = np.concatenate(parts)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class BodyLinkage:
    """Body linkage (and re-identification, with labels) of anonymized person crops."""

    people: int
    rank1: float
    mean_ap: float
    chance: float
    reid: ReIdentification | None = None
    method: str = BASELINE_NAME

    @property
    def band(self) -> str:
        return privacy_band(self.rank1)

    def to_dict(self) -> dict[str, object]:
        def num(v: float) -> float | None:
            return None if np.isnan(v) else round(float(v), 6)

        out: dict[str, object] = {
            "method": self.method,
            "people": self.people,
            "linkage_rank1": num(self.rank1),
            "linkage_map": num(self.mean_ap),
            "chance": num(self.chance),
            "band": self.band,
            "band_metric": "linkage rank-1 of anonymized person crops to their originals",
        }
        if self.reid is not None:
            out |= {"reid_rank1": num(self.reid.rank1), "reid_map": num(self.reid.mean_ap)}
        return out


def _linkage_map(anonymized: np.ndarray, originals: np.ndarray) -> float:
    """Mean average precision with one positive (the own original): mean reciprocal rank."""
    d = np.linalg.norm(anonymized[:, None, :] - originals[None, :, :], axis=2)
    own = d[np.arange(len(d)), np.arange(len(d))]
    ranks = (d < own[:, None]).sum(1) + 1
    return float(np.mean(1.0 / ranks))


def body_linkage(
    anonymized: Sequence[np.ndarray],
    originals: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
) -> BodyLinkage:
    """Linkage of ``anonymized[i]`` to ``originals[i]`` among all originals (crops, RGB
    ``uint8``); with ``labels`` (a person per crop, several crops per person),
    re-identification against the other crops' originals too."""
    if len(anonymized) != len(originals):
        raise ValueError(f"{len(anonymized)} anonymized crops for {len(originals)} originals")
    n = len(originals)
    if n == 0:
        nan = float("nan")
        return BodyLinkage(people=0, rank1=nan, mean_ap=nan, chance=nan)
    a = np.stack([appearance_features(c) for c in anonymized])
    o = np.stack([appearance_features(c) for c in originals])
    reid = reidentification(a, o, labels) if labels is not None else None
    return BodyLinkage(
        people=n,
        rank1=linkage_rank1(a, o),
        mean_ap=_linkage_map(a, o),
        chance=1.0 / n,
        reid=reid,
    )


@dataclass
class BodyCrops:
    """Person crops of paired folders: the same box on the original and the anonymized."""

    originals: list[np.ndarray]
    anonymized: list[np.ndarray]
    labels: list[str]  # "<file>#<n>": one person per crop (linkage only)
    boxes_from: str
    skipped: list[tuple[str, str]]


def coco_person_boxes(annotations: str | Path, min_height: float) -> dict[str, list[list[float]]]:
    """``file_name -> [xyxy, ...]`` of the non-crowd people at least ``min_height`` px
    tall in a COCO annotation file (InputError naming the file when unreadable)."""
    import json

    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
        names = {im["id"]: im["file_name"] for im in data["images"]}
        anns = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"person boxes {path}: not a COCO annotation file ({exc!r})") from exc
    out: dict[str, list[list[float]]] = {}
    for a in anns:
        x, y, w, h = a["bbox"]
        if a.get("category_id", 1) == 1 and not a.get("iscrowd") and h >= min_height:
            out.setdefault(names[a["image_id"]], []).append([x, y, x + w, y + h])
    return out


def body_crops(
    original_dir: str | Path,
    anonymized_dir: str | Path,
    *,
    person_boxes: str | Path | None = None,
    min_height: float = 64,
    segmenter: Any = None,
    limit: int | None = None,
) -> BodyCrops:
    """Crops of every person in paired folders: boxes from a COCO file (``person_boxes``)
    or from :class:`~veil.detect.person.PersonSegmenter` on the originals."""
    from veil.evaluate.privacy import pair_folders
    from veil.io.images import read_image

    pairs = pair_folders(original_dir, anonymized_dir).pairs[:limit]
    coco = coco_person_boxes(person_boxes, min_height) if person_boxes is not None else None
    if coco is None and segmenter is None:
        from veil.detect.person import PersonSegmenter

        segmenter = PersonSegmenter()
    crops = BodyCrops([], [], [], "COCO boxes" if coco is not None else "person segmenter", [])
    for rel, src, dst in pairs:
        try:
            a, b = read_image(src).image, read_image(dst).image
        except VeilError as exc:
            crops.skipped.append((rel, str(exc)))
            continue
        if a.shape != b.shape:
            crops.skipped.append((rel, f"sizes {a.shape[:2]} vs {b.shape[:2]}"))
            continue
        if coco is not None:
            boxes = coco.get(rel, coco.get(Path(rel).name, []))
        else:
            found = segmenter.segment(a)
            boxes = [b_ for b_ in found.xyxy.tolist() if b_[3] - b_[1] >= min_height]
        for n, box in enumerate(boxes):
            ca, cb = person_crop(a, box), person_crop(b, box)
            if ca is not None and cb is not None:
                crops.originals.append(ca)
                crops.anonymized.append(cb)
                crops.labels.append(f"{rel}#{n}")
    return crops
