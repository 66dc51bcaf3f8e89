"""Utility metrics: SSIM/PSNR inside and outside the mask, landmarks, people, pose AP."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from factories import ASTRONAUT_FACE, face_on_canvas, flat_grey
from veil.evaluate import utility as U
from veil.evaluate.pose import OnnxPoseEstimator, evaluate_pose
from veil.io.images import write_image


def _ellipse_mask(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = box.astype(int)
    cv2.ellipse(
        mask, ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2), 0, 0, 360, 1, -1
    )
    return mask > 0


def test_identical_images_score_one_and_capped_psnr() -> None:
    image, box = face_on_canvas()
    s = U.region_scores(image, image.copy(), _ellipse_mask(image.shape[:2], box))
    assert s.ssim_inside == 1.0 and s.ssim_outside == 1.0
    assert s.psnr_inside == U.PSNR_CAP and s.psnr_outside == U.PSNR_CAP


def test_change_inside_the_mask_leaves_outside_exactly_lossless() -> None:
    image, box = face_on_canvas()
    mask = _ellipse_mask(image.shape[:2], box)
    changed = image.copy()
    changed[mask] = 255 - changed[mask]
    s = U.region_scores(image, changed, mask)
    assert s.ssim_outside == 1.0 and s.psnr_outside == U.PSNR_CAP
    assert s.ssim_inside < 0.5 and s.psnr_inside < 20


def test_psnr_of_a_known_error() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert U.psnr(a, a + 1) == pytest.approx(10 * np.log10(255**2))
    assert np.isnan(U.psnr(a[:0], a[:0]))


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(U.InputError, match="shapes differ"):
        U.region_scores(flat_grey(), flat_grey((20, 20)), np.zeros((240, 320), bool))


def test_match_count_is_one_to_one() -> None:
    a = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    b = np.array([[1, 1, 10, 10], [0, 0, 10, 10]], np.float32)
    assert U.match_count(a, b) == 1
    assert U.match_count(a, b[:0]) == 0


@pytest.mark.dlib
def test_landmark_error_is_zero_for_identical_images() -> None:
    pytest.importorskip("dlib")
    image = skimage.data.astronaut()
    error = U.landmark_error(image, image.copy(), ASTRONAUT_FACE)
    assert error == 0.0
    blurred = cv2.GaussianBlur(image, (0, 0), 12)
    moved = U.landmark_error(image, blurred, ASTRONAUT_FACE)
    assert moved is not None and moved > 0


def test_folder_utility_counts_every_unmeasurable_pair(tmp_path: Path) -> None:
    orig, anon = tmp_path / "orig", tmp_path / "anon"
    face, _ = face_on_canvas()
    write_image(orig / "face.png", face)
    write_image(orig / "grey.png", flat_grey())
    write_image(orig / "lost.png", flat_grey())
    write_image(anon / "face.png", face)
    write_image(anon / "grey.png", flat_grey())
    write_image(anon / "stray.png", flat_grey())
    config = U.UtilityConfig(landmarks=False, people=False)
    report = U.evaluate_utility(orig, anon, config)
    d = report.to_dict()
    assert d["measured"] == 1 and d["ssim_outside"] == 1.0 and d["redetection"] == 1.0
    assert report.no_face == ["grey.png"]
    assert report.missing == ["lost.png"] and report.extra == ["stray.png"]


# --- pose ------------------------------------------------------------------------------------

KEYPOINTS = np.array([[10 + 2 * k, 12 + k, 2] for k in range(17)], np.float64)


def _coco(tmp_path: Path) -> Path:
    ann = {
        "images": [{"id": 1, "file_name": "p.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [8, 10, 40, 22],
                "area": 880.0,
                "num_keypoints": 17,
                "keypoints": KEYPOINTS.reshape(-1).tolist(),
            }
        ],
    }
    path = tmp_path / "keypoints.json"
    path.write_text(json.dumps(ann))
    for folder in ("orig", "anon"):
        write_image(tmp_path / folder / "p.png", flat_grey((48, 64)))
    return path


class _Oracle:
    """A fake pose estimator: always answers the ground truth."""

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        return [np.c_[KEYPOINTS[:, :2], np.ones(17)].astype(np.float32)]


def test_pose_ap_is_one_when_estimates_equal_ground_truth(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    gt = _coco(tmp_path)
    report = evaluate_pose(_Oracle(), gt, tmp_path / "orig", tmp_path / "anon")
    assert report.images == 1 and report.people == 1
    assert report.before["ap"] == pytest.approx(1.0) and report.after["ap"] == pytest.approx(1.0)
    assert report.after["ar"] == pytest.approx(1.0)


def _heatmap_model(path: Path, peaks: list[tuple[int, int]]) -> Path:
    import onnx
    from onnx import TensorProto, helper

    maps = np.zeros((1, 17, 8, 6), np.float32)
    for k, (r, c) in enumerate(peaks):
        maps[0, k, r, c] = 0.9
    const = helper.make_node(
        "Constant",
        [],
        ["heat"],
        value=helper.make_tensor("v", TensorProto.FLOAT, maps.shape, maps.ravel()),
    )
    graph = helper.make_graph(
        [const],
        "constant-heatmaps",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 24])],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 17, 8, 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_heatmap_model_keypoints_land_on_the_peak_cells(tmp_path: Path) -> None:
    peaks = [(k % 8, k % 6) for k in range(17)]
    est = OnnxPoseEstimator(_heatmap_model(tmp_path / "pose.onnx", peaks))
    assert est.size == (32, 24)
    (people,) = est.estimate(flat_grey((64, 48)))  # H=64, W=48: 8 px per heatmap cell
    expected = np.array([[(c + 0.5) * 8, (r + 0.5) * 8] for r, c in peaks])
    np.testing.assert_allclose(people[:, :2], expected)
    np.testing.assert_allclose(people[:, 2], 0.9, rtol=1e-6)


def test_utility_command_lists_unmeasurable_pairs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from veil.commands.eval_more import utility

    face, _ = face_on_canvas()
    for folder in ("orig", "anon"):
        write_image(tmp_path / folder / "face.png", face)
    write_image(tmp_path / "orig" / "lost.png", flat_grey())
    out = tmp_path / "u.json"
    args = ["--original", str(tmp_path / "orig"), "--anonymized", str(tmp_path / "anon")]
    res = CliRunner().invoke(utility, [*args, "--no-landmarks", "--no-people", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "missing in the anonymized folder: 1 (lost.png)" in res.output
    assert json.loads(out.read_text())["ssim_outside"] == 1.0
