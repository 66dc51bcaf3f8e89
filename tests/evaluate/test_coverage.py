"""Coverage metric on hand-computable synthetic images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import veil.evaluate
from veil.errors import InputError
from veil.evaluate import (
    CoverageReport,
    changed_mask,
    evaluate_pair,
    face_coverage,
    false_alarms,
    load_ground_truth,
    outside_change,
    size_bin,
)

H, W = 120, 160
BOX = (20.0, 30.0, 40.0, 40.0)  # x, y, w, h: ellipse centre (40, 50), radii 20


def textured(seed: int = 0) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image of mid-grey noise."""
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, size=(H, W, 3), dtype=np.uint8)


def ellipse_pixels(box: tuple[float, float, float, float]) -> np.ndarray:
    """bool (H, W): pixel centres inside the ellipse inscribed in ``box``."""
    x, y, w, h = box
    rr, cc = np.mgrid[0:H, 0:W] + 0.5
    return ((cc - (x + w / 2)) / (w / 2)) ** 2 + ((rr - (y + h / 2)) / (h / 2)) ** 2 <= 1


def test_public_names() -> None:
    for name in (
        "changed_mask",
        "face_coverage",
        "outside_change",
        "false_alarms",
        "size_bin",
        "evaluate_pair",
        "CoverageReport",
        "ImageCoverage",
        "GTImage",
        "load_ground_truth",
    ):
        assert name in veil.evaluate.__all__
        assert hasattr(veil.evaluate, name)


def test_identical_images_change_nothing() -> None:
    image = textured()
    result = evaluate_pair(image, image.copy(), [BOX])
    assert result.coverage.tolist() == [0.0]
    assert result.covered.tolist() == [False]
    assert result.outside == 0.0


@pytest.mark.parametrize(
    ("shift", "sigma", "changed"),
    [(6, 1.0, False), (10, 1.0, True), (6, 0.0, False), (10, 0.0, True)],
)
def test_changes_up_to_the_tolerance_do_not_count(shift: int, sigma: float, changed: bool) -> None:
    image = textured()
    shifted = image + np.uint8(shift)  # textured() stays below 200: no overflow
    assert changed_mask(image, shifted, tol=8, sigma=sigma).all() == changed
    assert changed_mask(image, shifted, tol=8, sigma=sigma).any() == changed


def test_smoothing_ignores_isolated_pixel_noise() -> None:
    image = textured()
    noisy = image.copy()
    noisy[::4, ::4] ^= np.uint8(16)  # sparse +-16 flips, like JPEG ringing
    assert changed_mask(image, noisy, sigma=0).any()
    assert not changed_mask(image, noisy, sigma=1.0).any()


@pytest.mark.parametrize("closing", [True, False])
def test_solid_fill_over_the_ellipse_covers_it(closing: bool) -> None:
    image = textured()
    anonymized = image.copy()
    anonymized[ellipse_pixels(BOX)] = 0
    changed = changed_mask(image, anonymized)
    assert face_coverage(changed, BOX, closing=closing) == 1.0
    result = evaluate_pair(image, anonymized, [BOX])
    assert result.covered.tolist() == [True]
    assert result.outside == 0.0


def test_half_the_ellipse_changed_gives_one_half() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[:, :40] = True  # left of the centre column x = 40
    assert face_coverage(changed, BOX, closing=False) == pytest.approx(0.5, abs=1e-12)


def test_flat_region_enclosed_by_changes_counts_with_closing() -> None:
    # A blurred surgical mask: the rim and features change, the flat middle does not.
    changed = ellipse_pixels(BOX) & ~ellipse_pixels((28.0, 38.0, 24.0, 24.0))
    changed[45:47, 25:55] = False  # thin unchanged gaps that the closing must bridge
    assert face_coverage(changed, BOX, closing=False) < 0.7
    assert face_coverage(changed, BOX, closing=True) >= 0.9


def test_flat_face_open_to_the_background_is_not_filled() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[30:70, 20:60] = True
    changed[30:70, 30:50] = False  # an unchanged band crossing the whole face
    assert face_coverage(changed, BOX, closing=True) < 0.9


def test_changes_inside_the_enlarged_box_are_not_outside() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[10:90, 0:80] = True  # exactly the box grown to 2x about its centre
    assert outside_change(changed, [BOX]) == 0.0


def test_far_patch_gives_exact_outside_share() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[100:110, 140:150] = True
    # the share is of all image pixels (the foundation issue's definition)
    assert outside_change(changed, [BOX]) == 100 / (H * W)


def test_ignore_boxes_are_excluded_from_outside() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[100:110, 140:150] = True
    ignore = [(140.0, 100.0, 10.0, 10.0)]  # grown to rows 95-115, columns 135-155
    assert outside_change(changed, [BOX], ignore) == 0.0


def test_no_faces_means_the_whole_image_is_outside() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[:12, :] = True
    assert outside_change(changed, []) == 0.1


@pytest.mark.parametrize(
    ("height", "expected"),
    [
        (0.5, "0-10"),
        (9.99, "0-10"),
        (10, "10-20"),
        (19.9, "10-20"),
        (20, "20-40"),
        (39, "20-40"),
        (40, "40-80"),
        (79.9, "40-80"),
        (80, "80+"),
        (1000, "80+"),
    ],
)
def test_size_bin_edges(height: float, expected: str) -> None:
    assert size_bin(height) == expected


def test_tiny_face_is_measured_on_its_centre_pixel() -> None:
    changed = np.zeros((H, W), dtype=bool)
    changed[5, 7] = True
    assert face_coverage(changed, (7.2, 5.2, 0.5, 0.5)) == 1.0
    assert face_coverage(changed, (9.2, 5.2, 0.5, 0.5)) == 0.0


@pytest.mark.parametrize(
    "anonymized",
    [np.zeros((H, W + 1, 3), np.uint8), np.zeros((H, W), np.uint8), np.zeros((H, W, 3), float)],
)
def test_bad_pair_raises_input_error(anonymized: np.ndarray) -> None:
    with pytest.raises(InputError):
        changed_mask(textured(), anonymized)


def test_report_aggregates_recall_per_bin() -> None:
    image = textured()
    small, large = (100.0, 10.0, 8.0, 8.0), BOX
    anonymized = image.copy()
    anonymized[30:70, 20:60] = 0  # covers the large face only
    report = CoverageReport()
    report.add(evaluate_pair(image, anonymized, [small, large]))
    report.add(evaluate_pair(image, image, []))
    assert (report.images, report.n_faces, report.recall) == (2, 2, 0.5)
    assert report.recall_by_bin()["0-10"] == (0.0, 1)
    assert report.recall_by_bin()["40-80"] == (1.0, 1)
    assert np.isnan(report.recall_by_bin()["80+"][0])
    assert dict(report.as_rows())["recall"] == "0.500"
    assert json.loads(json.dumps(report.to_dict()))["recall_by_bin"]["80+"]["recall"] is None


def test_load_ground_truth(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    gt = tmp_path / "annotations.json"
    gt.write_text(
        json.dumps(
            {
                "images": [
                    {"file": "images/a.jpg", "faces": [[1, 2, 3, 4]], "ignore": []},
                ]
            }
        )
    )
    (image,) = load_ground_truth(gt)
    assert image.path == tmp_path / "images" / "a.jpg"
    assert image.faces.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert image.ignore.shape == (0, 4)


def test_load_ground_truth_names_missing_files(tmp_path: Path) -> None:
    gt = tmp_path / "annotations.json"
    gt.write_text(json.dumps({"images": [{"file": "images/gone.jpg", "faces": []}]}))
    with pytest.raises(InputError, match=r"1 of 1 .*images/gone\.jpg"):
        load_ground_truth(gt)


def test_load_ground_truth_rejects_bad_json(tmp_path: Path) -> None:
    gt = tmp_path / "annotations.json"
    gt.write_text('{"pictures": []}')
    with pytest.raises(InputError, match=r"annotations\.json"):
        load_ground_truth(gt)


def test_false_alarms_count_changed_regions_away_from_faces() -> None:
    changed = np.zeros((H, W), dtype=bool)
    assert false_alarms(changed, [BOX]) == 0
    changed[10:90, 0:80] = True  # the face itself, grown: not a false alarm
    assert false_alarms(changed, [BOX]) == 0
    changed[100:110, 140:150] = True  # one blurred fist
    assert false_alarms(changed, [BOX]) == 1
    changed[100:102, 100:102] = True  # a few noisy pixels: too small to count
    assert false_alarms(changed, [BOX]) == 1
    assert false_alarms(changed, [BOX], [(140.0, 100.0, 10.0, 10.0)]) == 0  # ignored
    gappy = np.zeros((H, W), dtype=bool)
    gappy[100:120:3, 100:120] = True  # one region in stripes: closed into one
    assert false_alarms(gappy, []) == 1


def test_report_counts_false_alarms_per_image() -> None:
    image = np.full((H, W, 3), 100, np.uint8)
    out = image.copy()
    out[100:112, 140:152] = 200  # > 24 grey levels: counts
    report = CoverageReport()
    report.add(evaluate_pair(image, out, [BOX]))
    report.add(evaluate_pair(image, image, [BOX]))
    assert report.false_alarms == 1 and report.false_alarms_per_image == 0.5
    assert report.to_dict()["false_alarms_per_image"] == 0.5
