"""Body re-identification baseline: constructed crops, paired folders and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from veil.cli import main
from veil.errors import InputError
from veil.evaluate import body_reid as B


def people(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """``n`` person-like crops: each a different shirt and trouser colour with texture."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        crop = np.zeros((120, 50, 3), np.uint8)
        hue = np.array([(37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256], np.uint8)
        crop[:20] = (200, 170, 150)  # head
        crop[20:70] = hue
        crop[70:] = hue[::-1] // 2 + 30
        if i % 2:  # stripes on every other shirt
            crop[20:70:6] = 255 - hue
        noise = rng.integers(-12, 13, crop.shape)
        out.append(np.clip(crop.astype(int) + noise, 0, 255).astype(np.uint8))
    return out


def test_identical_crops_link_every_person() -> None:
    crops = people()
    result = B.body_linkage(crops, crops)
    assert result.rank1 == 1.0 and result.mean_ap == 1.0
    assert result.chance == pytest.approx(1 / 6)
    assert result.band == "poor"  # everyone linked back: no privacy
    assert "appearance baseline" in result.to_dict()["method"]


def test_shuffled_colours_link_fewer_people() -> None:
    crops = people()
    swapped = [c[..., ::-1].copy() for c in crops]  # RGB -> BGR: colours changed
    flat = [np.full_like(c, 128) for c in crops]  # everyone hidden the same way
    assert B.body_linkage(swapped, crops).rank1 < 1.0
    hidden = B.body_linkage(flat, crops)
    assert hidden.rank1 == pytest.approx(1 / 6)  # ties go to the first: chance
    assert hidden.band == "good"


def test_features_are_unit_vectors_and_see_colour_and_texture() -> None:
    a, b = people(2)
    fa, fb = B.appearance_features(a), B.appearance_features(b)
    assert fa.shape == (6 * 42,) and np.linalg.norm(fa) == pytest.approx(1, abs=1e-5)
    assert np.linalg.norm(fa - fb) > 0.2
    striped = a.copy()
    striped[20:70:4] = 0
    assert np.linalg.norm(B.appearance_features(striped) - fa) > 0.05


def test_person_crop_clips_and_refuses_tiny_boxes() -> None:
    image = np.zeros((100, 80, 3), np.uint8)
    crop = B.person_crop(image, [-10, -10, 30, 60])
    assert crop is not None and crop.shape == (60, 30, 3)
    assert B.person_crop(image, [10, 10, 12, 12]) is None


def _write_pairs(tmp_path: Path, hide: bool) -> tuple[Path, Path, Path]:
    orig, anon = tmp_path / "orig", tmp_path / "anon"
    orig.mkdir(exist_ok=True)
    anon.mkdir(exist_ok=True)
    images, anns = [], []
    for i, crop in enumerate(people(4)):
        canvas = np.full((160, 120, 3), 90, np.uint8)
        canvas[20:140, 30:80] = crop
        name = f"p{i}.png"
        Image.fromarray(canvas).save(orig / name)
        out = canvas.copy()
        if hide:
            out[20:140, 30:80] = 128
        Image.fromarray(out).save(anon / name)
        images.append({"id": i, "file_name": name})
        polygon = [30, 20, 80, 20, 80, 140, 30, 140]
        ann = {"id": i, "image_id": i, "category_id": 1, "bbox": [30, 20, 50, 120]}
        anns.append(ann | {"segmentation": [polygon]})
    coco = tmp_path / "people.json"
    coco.write_text(json.dumps({"images": images, "annotations": anns}))
    return orig, anon, coco


def test_body_crops_from_coco_boxes(tmp_path: Path) -> None:
    orig, anon, coco = _write_pairs(tmp_path, hide=True)
    crops = B.body_crops(orig, anon, person_boxes=coco, min_height=64)
    assert len(crops.originals) == 4 and crops.boxes_from == "COCO boxes and polygons"
    assert all(m is not None and m.shape == (120, 50) and m.mean() > 0.9 for m in crops.masks)
    assert B.body_linkage(crops.anonymized, crops.originals).rank1 == pytest.approx(0.25)
    assert len(B.body_crops(orig, anon, person_boxes=coco, min_height=200).originals) == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"bad\.json"):
        B.body_crops(orig, anon, person_boxes=bad)


@pytest.mark.parametrize(("hide", "linked"), [(False, "100.0%"), (True, "25.0%")])
def test_cli_privacy_bodies(tmp_path: Path, hide: bool, linked: str) -> None:
    orig, anon, coco = _write_pairs(tmp_path, hide=hide)
    out = tmp_path / "report.json"
    args = ["eval", "privacy", "--original", orig, "--anonymized", anon, "--attacks", "none"]
    args += ["--detectors", "none", "--bodies", "--person-boxes", coco, "--json", out, "-q"]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "appearance baseline" in result.output and linked in result.output
    body = json.loads(out.read_text())["body"]
    assert body["people"] == 4 and body["band"] == ("poor" if not hide else "moderate")


def test_a_mask_keeps_the_background_out_of_the_features() -> None:
    person = people(1)[0]
    mask = np.zeros(person.shape[:2], bool)
    mask[:, 10:40] = True
    other = person.copy()
    other[:, :10] = (0, 255, 0)  # another background beside the same person
    other[:, 40:] = (255, 0, 255)
    masked = B.appearance_features(person, mask) - B.appearance_features(other, mask)
    whole = B.appearance_features(person) - B.appearance_features(other)
    # only the mask's edge (resampling, texture neighbours) still sees the background
    assert np.linalg.norm(masked) < 0.3 * np.linalg.norm(whole)


def test_body_crops_from_the_person_segmenter_use_its_masks(tmp_path: Path) -> None:
    from veil.types import Faces

    orig, anon, _ = _write_pairs(tmp_path, hide=True)

    class Segmenter:  # the person where _write_pairs put it, as a mask
        def segment(self, image: np.ndarray) -> Faces:
            mask = np.zeros(image.shape[:2], bool)
            mask[20:140, 35:75] = True
            box = np.array([[30, 20, 80, 140]], np.float32)
            return Faces(xyxy=box, scores=np.ones(1, np.float32), masks=mask[None])

    crops = B.body_crops(orig, anon, segmenter=Segmenter())
    assert crops.boxes_from == "person segmenter masks" and len(crops.originals) == 4
    mask = crops.masks[0]
    assert mask is not None and mask.shape == (120, 50) and not mask[:, :5].any()
    assert B.body_linkage(crops.anonymized, crops.originals, masks=crops.masks).rank1 == 0.25
