"""Detection metrics on hand-computable cases: matching, AP, detector and folder reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from veil.commands.eval import eval_group
from veil.detect.base import Detector
from veil.errors import InputError
from veil.evaluate.coverage import load_ground_truth
from veil.evaluate.detection import (
    ImageMatch,
    average_precision,
    evaluate_detector,
    evaluate_outputs,
    find_output,
    match_detections,
)
from veil.types import Faces

GT = [[10, 10, 20, 20], [50, 50, 40, 40]]  # x, y, w, h
EXACT = [[10, 10, 30, 30], [50, 50, 90, 90]]  # the same boxes as xyxy


def _match(tp: list[bool], scores: list[float], n_gt: int) -> ImageMatch:
    hit = np.zeros(n_gt, bool)
    hit[: sum(tp)] = True
    return ImageMatch(np.asarray(scores, float), np.asarray(tp), np.zeros(len(tp), bool), hit)


def test_match_exact_boxes_are_true_positives() -> None:
    m = match_detections(EXACT, [0.9, 0.8], GT)
    assert m.tp.tolist() == [True, True] and m.gt_hit.all() and m.n_fp == 0


def test_match_duplicate_is_false_positive_and_best_score_wins() -> None:
    m = match_detections([[11, 11, 31, 31], [10, 10, 30, 30]], [0.5, 0.9], GT[:1])
    assert m.tp.tolist() == [False, True] and m.n_fp == 1


def test_match_below_iou_is_false_positive_and_gt_missed() -> None:
    m = match_detections([[20, 20, 40, 40]], [0.9], GT[:1])  # IoU 100/700
    assert m.n_tp == 0 and m.n_fp == 1 and not m.gt_hit.any()


@pytest.mark.parametrize(
    ("pred", "ignored"),
    [
        ([200, 200, 220, 220], True),  # exactly the ignore box
        ([205, 205, 215, 215], True),  # inside it (IoU 0.25, but fully covered)
        ([300, 300, 320, 320], False),  # elsewhere: a false positive
    ],
)
def test_match_ignore_regions_are_neither_tp_nor_fp(pred: list[int], ignored: bool) -> None:
    m = match_detections([pred], [0.9], GT, ignore_xywh=[[200, 200, 20, 20]])
    assert m.ignored.tolist() == [ignored]
    assert m.n_tp == 0 and m.n_fp == (0 if ignored else 1)
    assert len(m.gt_hit) == 2  # ignore boxes are never faces to find


def test_match_without_ground_truth_and_shape_errors() -> None:
    assert match_detections(EXACT, [0.9, 0.8], []).n_fp == 2
    assert match_detections(np.zeros((0, 4)), [], GT).gt_hit.tolist() == [False, False]
    with pytest.raises(InputError, match="2 boxes but 1 scores"):
        match_detections(EXACT, [0.9], GT)


@pytest.mark.parametrize(
    ("tp", "scores", "n_gt", "expected"),
    [
        ([True, True], [0.9, 0.8], 2, 1.0),  # perfect
        ([True, True, False], [0.9, 0.8, 0.1], 2, 1.0),  # FP ranked last costs nothing
        ([True, False, True], [0.9, 0.8, 0.7], 2, 0.5 + 0.5 * 2 / 3),  # FP in the middle
        ([False, True, True], [0.9, 0.8, 0.7], 2, 2 / 3),  # FP ranked first
        ([True], [0.9], 2, 0.5),  # one of two faces found
        ([], [], 2, 0.0),  # nothing predicted
    ],
)
def test_average_precision_hand_computed(
    tp: list[bool], scores: list[float], n_gt: int, expected: float
) -> None:
    assert average_precision([_match(tp, scores, n_gt)]) == pytest.approx(expected)


def test_average_precision_pools_images_and_skips_ignored() -> None:
    a = _match([True], [0.9], 1)
    b = _match([False], [0.95], 1)  # ranked first overall
    assert average_precision([a, b]) == pytest.approx(0.5 * 0.5)
    ignored = ImageMatch(np.array([0.99]), np.array([False]), np.array([True]), np.zeros(0, bool))
    assert average_precision([a, ignored]) == 1.0
    assert math.isnan(average_precision([ignored]))


class _FixedDetector(Detector):
    """Returns the same boxes on every image."""

    name = "fixed"

    def __init__(self, xyxy: list[list[float]], scores: list[float]) -> None:
        self.faces = Faces(xyxy=np.asarray(xyxy, np.float32), scores=np.asarray(scores))

    def detect(self, image: np.ndarray) -> Faces:
        return self.faces


def _write_gt(root: Path, n_images: int = 2) -> Path:
    (root / "images").mkdir(parents=True)
    entries = []
    for i in range(n_images):
        noise = np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "images" / f"{i}.png")
        entries.append({"file": f"images/{i}.png", "faces": GT, "ignore": [[120, 0, 30, 30]]})
    path = root / "gt.json"
    path.write_text(json.dumps({"images": entries}))
    return path


def test_evaluate_detector_known_numbers(tmp_path: Path) -> None:
    gt = load_ground_truth(_write_gt(tmp_path))
    # per image: face 1 found, face 2 missed, one FP, one box on the ignore region
    det = _FixedDetector([[10, 10, 30, 30], [0, 90, 20, 110], [120, 0, 150, 30]], [0.9, 0.5, 0.8])
    report = evaluate_detector(det, gt)
    assert (report.images, report.n_faces) == (2, 4)
    assert report.precision == 0.5 and report.recall == 0.5
    assert report.ap == pytest.approx(0.5)
    by_bin = report.recall_by_bin()
    assert by_bin["20-40"] == (1.0, 2) and by_bin["40-80"] == (0.0, 2)
    d = report.to_dict()
    assert d["false_positives_per_image"] == 1.0 and d["detections_per_image"] == 3.0
    json.dumps(d, allow_nan=False)


def test_evaluate_detector_lists_unreadable_images(tmp_path: Path) -> None:
    gt = load_ground_truth(_write_gt(tmp_path))
    (tmp_path / "images" / "1.png").write_bytes(b"not an image")
    report = evaluate_detector(_FixedDetector(EXACT, [0.9, 0.8]), gt)
    assert report.images == 1 and [f for f, _ in report.failed] == ["images/1.png"]


def test_evaluate_outputs_known_coverage_and_missing(tmp_path: Path) -> None:
    gt_path = _write_gt(tmp_path / "data", n_images=3)
    gt = load_ground_truth(gt_path)
    out = tmp_path / "out" / "images"
    out.mkdir(parents=True)
    original = np.asarray(Image.open(gt[0].path))
    covered = original.copy()
    covered[50:90, 50:90] = 0  # the second face, exactly its box
    Image.fromarray(covered).save(out / "0.png")
    Image.fromarray(original[:60]).save(out / "1.png")  # wrong size: unusable
    report = evaluate_outputs(gt, tmp_path / "out")  # 2.png missing
    cov = report.coverage
    assert report.missing == ["images/2.png"] and [f for f, _ in report.failed] == ["images/1.png"]
    assert (cov.images, cov.missing, cov.n_faces) == (1, 2, 6)
    assert cov.recall == pytest.approx(1 / 6)
    assert cov.recall_by_bin()["40-80"] == (pytest.approx(1 / 3), 3)


def test_find_output_accepts_another_suffix(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    assert find_output(tmp_path, "a/x.png") == tmp_path / "a" / "x.png"
    assert find_output(tmp_path, "a/x.jpg") == tmp_path / "a" / "x.png"
    assert find_output(tmp_path, "a/y.jpg") is None


def test_cli_detection_outputs_table_and_json(tmp_path: Path) -> None:
    gt_path = _write_gt(tmp_path / "data", n_images=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        eval_group,
        ["detection", "--gt", str(gt_path), "--outputs", str(out), "--json", str(tmp_path / "r")],
    )
    assert result.exit_code == 2 and "veil: error:" in result.output  # no such folder
    out.mkdir()
    result = CliRunner().invoke(
        eval_group,
        ["detection", "--gt", str(gt_path), "--outputs", str(out), "--json", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    assert "missing outputs (faces counted as missed): 1 (images/0.png)" in result.output
    assert json.loads((tmp_path / "r").read_text())["outputs"]["missing_files"] == ["images/0.png"]


def test_cli_detection_with_a_detector(tmp_path: Path) -> None:
    gt_path = _write_gt(tmp_path, n_images=1)
    result = CliRunner().invoke(eval_group, ["detection", "--gt", str(gt_path), "-d", "haar"])
    assert result.exit_code == 0, result.output
    assert "AP@0.5" in result.output and "haar" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gt", "nope.json"], "not a readable ground-truth JSON"),
        (["--gt", "{gt}", "-d", "nope"], "unknown detector 'nope'"),
        (["--gt", "{gt}", "--images", "nope"], "not a folder"),
    ],
)
def test_cli_detection_errors(tmp_path: Path, args: list[str], message: str) -> None:
    gt_path = _write_gt(tmp_path, n_images=1)
    args = [a.format(gt=gt_path) for a in args]
    result = CliRunner().invoke(eval_group, ["detection", *args])
    assert result.exit_code == 2 and "veil: error:" in result.output and message in result.output


def test_cli_detection_gt_with_missing_file(tmp_path: Path) -> None:
    gt_path = _write_gt(tmp_path, n_images=2)
    (tmp_path / "images" / "1.png").unlink()
    result = CliRunner().invoke(eval_group, ["detection", "--gt", str(gt_path)])
    assert result.exit_code == 2 and "1 of 2 listed image files are missing" in result.output
