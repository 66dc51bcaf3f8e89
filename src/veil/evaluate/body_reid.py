"""Body re-identification: can an anonymized person be linked back by their appearance?

Face anonymization leaves clothes, build and colours untouched, and sports and video
studies re-identify people by them. No person re-identification model ships inside a PyPI
package (checked against the package index lists; models such as OSNet are downloaded at
run time by their libraries), so veil measures with a **classical appearance baseline**,
named as such in every output: each person crop resized to 64 x 128 and cut into 6
horizontal stripes; per stripe an HSV colour histogram (hue 16 bins weighted by
saturation, saturation 8, value 8) and a uniform LBP texture histogram (8 neighbours,
radius 1: 10 bins); each histogram L1-normalised and square-rooted (Hellinger), the whole
vector L2-normalised; distance Euclidean. Only the person's own pixels count when a mask
is known (COCO polygons, or the person segmenter's masks): the background inside a box is
the same before and after anonymization and would link any crop to its original. It is
weaker than a learnt re-ID model, so its numbers are a lower bound of what an attacker
achieves.

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


def appearance_features(crop_rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``float32 (6 * 42,)`` unit vector of a person crop (see the module docs); with a
    ``bool`` ``mask`` of the crop's shape, only the person's own pixels count (so the
    background around a person, the same before and after, links nobody)."""
    crop = cv2.resize(
        check_image(crop_rgb, name="person crop"), CROP_SIZE, interpolation=cv2.INTER_AREA
    )
    keep = np.ones(crop.shape[:2], bool)
    if mask is not None:
        if mask.shape != crop_rgb.shape[:2]:
            raise ValueError(f"person mask {mask.shape} for a crop of {crop_rgb.shape[:2]}")
        small = cv2.resize(mask.astype(np.uint8), CROP_SIZE, interpolation=cv2.INTER_NEAREST)
        keep = small.astype(bool)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    lbp = np.pad(_uniform_lbp(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)), 1, mode="edge")
    parts = []
    for rows in np.array_split(np.arange(CROP_SIZE[1]), STRIPES):
        k = keep[rows]
        s = hsv[rows][k]
        hue, sat, val = s[:, 0], s[:, 1], s[:, 2]
        parts += [
            _hist(hue, 16, 180, weights=sat.astype(np.float64) + 1),
            _hist(sat, 8, 256),
            _hist(val, 8, 256),
            _hist(lbp[rows][k], 10, 10),
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
    masks: Sequence[np.ndarray | None] | None = None,
) -> BodyLinkage:
    """Linkage of ``anonymized[i]`` to ``originals[i]`` among all originals (crops, RGB
    ``uint8``; ``masks[i]`` the person's pixels in both, else the whole crop); with
    ``labels`` (a person per crop, several crops per person), re-identification against
    the other crops' originals too."""
    if len(anonymized) != len(originals):
        raise ValueError(f"{len(anonymized)} anonymized crops for {len(originals)} originals")
    n = len(originals)
    if n == 0:
        nan = float("nan")
        return BodyLinkage(people=0, rank1=nan, mean_ap=nan, chance=nan)
    m = list(masks) if masks is not None else [None] * n
    a = np.stack([appearance_features(c, k) for c, k in zip(anonymized, m, strict=True)])
    o = np.stack([appearance_features(c, k) for c, k in zip(originals, m, strict=True)])
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
    masks: list[np.ndarray | None]  # the person's pixels in the crop (None: the whole crop)
    boxes_from: str
    skipped: list[tuple[str, str]]


Person = tuple[list[float], list[list[float]]]  # xyxy box, COCO polygons (may be empty)


def coco_person_boxes(annotations: str | Path, min_height: float) -> dict[str, list[Person]]:
    """``file_name -> [(xyxy, polygons), ...]`` of the non-crowd people at least
    ``min_height`` px tall in a COCO annotation file (InputError naming the file when
    unreadable)."""
    import json

    path = Path(annotations)
    try:
        data = json.loads(path.read_text())
        names = {im["id"]: im["file_name"] for im in data["images"]}
        anns = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"person boxes {path}: not a COCO annotation file ({exc!r})") from exc
    out: dict[str, list[Person]] = {}
    for a in anns:
        x, y, w, h = a["bbox"]
        if a.get("category_id", 1) == 1 and not a.get("iscrowd") and h >= min_height:
            polygons = a.get("segmentation")
            polygons = polygons if isinstance(polygons, list) else []
            out.setdefault(names[a["image_id"]], []).append(([x, y, x + w, y + h], polygons))
    return out


def _polygon_mask(
    polygons: list[list[float]], box: list[float], shape: tuple[int, int]
) -> np.ndarray | None:
    """The polygons rasterised in the crop of ``box`` (clipped as :func:`person_crop`)."""
    if not polygons:
        return None
    h, w = shape
    x0, y0 = max(0, round(float(box[0]))), max(0, round(float(box[1])))
    mask = np.zeros((h, w), np.uint8)
    for poly in polygons:
        pts = np.asarray(poly, np.float64).reshape(-1, 2) - (x0, y0)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(bool) if mask.any() else None


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
    source = "COCO boxes and polygons" if coco is not None else "person segmenter masks"
    crops = BodyCrops([], [], [], [], source, [])
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
            people = coco.get(rel, coco.get(Path(rel).name, []))
            found = [(box, None, polys) for box, polys in people]
        else:
            seg = segmenter.segment(a)
            found = [
                (box, seg.masks[i], [])
                for i, box in enumerate(seg.xyxy.tolist())
                if box[3] - box[1] >= min_height
            ]
        for n, (box, full_mask, polygons) in enumerate(found):
            ca, cb = person_crop(a, box), person_crop(b, box)
            if ca is None or cb is None:
                continue
            if full_mask is not None:
                x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
                mask = full_mask[y0 : y0 + ca.shape[0], x0 : x0 + ca.shape[1]]
            else:
                mask = _polygon_mask(polygons, box, ca.shape[:2])
            crops.originals.append(ca)
            crops.anonymized.append(cb)
            crops.labels.append(f"{rel}#{n}")
            crops.masks.append(mask)
    return crops
