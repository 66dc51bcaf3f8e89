"""MediaPipe pose landmark estimator: landmark mapping, crop geometry, confidences, CLI.

No mediapipe and no model: a fake runner stands in for the network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from factories import face_on_canvas, flat_grey
from veil.errors import InputError
from veil.evaluate import pose_mediapipe as M
from veil.evaluate.pose import TopDownPoseEstimator, evaluate_pose, load_pose_estimator
from veil.io.images import write_image

MEDIAPIPE_NAMES = [
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
]
COCO_NAMES = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]


def test_public_names_exist() -> None:
    from veil.evaluate import pose

    for module in (M, pose):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"MediaPipePoseEstimator", "find_mediapipe_pose_model"} <= set(M.__all__)
    assert {"TopDownPoseEstimator", "load_pose_estimator"} <= set(pose.__all__)


def _raw(visibility: float = 0.0) -> np.ndarray:
    """39 landmarks: landmark i at crop pixel (i, 100 + i), the given visibility logit."""
    raw = np.zeros((39, 5), np.float32)
    raw[:, 0] = np.arange(39)
    raw[:, 1] = 100 + np.arange(39)
    raw[:, 3] = visibility
    return raw


def test_every_coco_keypoint_comes_from_the_mediapipe_landmark_of_the_same_name() -> None:
    assert len(MEDIAPIPE_NAMES) == 33
    assert [MEDIAPIPE_NAMES[i] for i in M.MEDIAPIPE_TO_COCO] == COCO_NAMES
    # a 256-px square at the origin: crop pixels are image pixels
    kp = M.landmarks_to_coco(_raw(), (128.0, 128.0, 256.0))
    assert kp.shape == (17, 3) and kp.dtype == np.float32
    np.testing.assert_allclose(kp[:, 0], M.MEDIAPIPE_TO_COCO)
    np.testing.assert_allclose(kp[:, 1], 100 + np.array(M.MEDIAPIPE_TO_COCO))


@pytest.mark.parametrize(
    ("visibility", "presence", "expected"),
    [(0.0, 1.0, 0.5), (60.0, 1.0, 1.0), (-60.0, 1.0, 0.0), (0.0, 0.5, 0.25), (1e9, 2.0, 1.0)],
)
def test_confidence_is_sigmoid_of_visibility_times_presence(
    visibility: float, presence: float, expected: float
) -> None:
    kp = M.landmarks_to_coco(_raw(visibility), (128.0, 128.0, 256.0), presence=presence)
    np.testing.assert_allclose(kp[:, 2], expected, atol=1e-6)


def test_too_few_landmarks_is_a_backend_error() -> None:
    from veil.errors import BackendError

    with pytest.raises(BackendError, match="33"):
        M.landmarks_to_coco(np.zeros((10, 5)), (0.0, 0.0, 1.0))


def test_roi_is_a_centred_square_with_a_quarter_margin() -> None:
    assert M.square_roi(np.array([10, 20, 50, 100])) == (30.0, 60.0, 100.0)
    assert M.square_roi(np.array([5, 5, 5, 5]))[2] == 1.0  # never empty


class _DotFinder:
    """A fake network: puts the nose on the brightest crop pixel; records its inputs."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        self.inputs.append(x)
        r, c = np.unravel_index(x[0].sum(axis=2).argmax(), x.shape[1:3])
        raw = _raw(visibility=3.0)
        raw[0, :2] = c + 0.5, r + 0.5  # the pixel's centre, continuous coordinates
        return raw, 1.0


@pytest.mark.parametrize(
    "box",
    [
        [100, 40, 180, 200],  # inside
        [-60, -30, 40, 170],  # over the top-left corner: zero padding
        [250, 150, 330, 240],  # over the bottom-right corner
    ],
)
def test_a_point_found_in_the_crop_lands_on_its_image_position(box: list[int]) -> None:
    image = flat_grey((240, 320), 0)
    x0, y0, x1, y1 = box
    dot = (int(np.clip((x0 + x1) / 2 + 7, 0, 319)), int(np.clip((y0 + y1) / 2 - 11, 0, 239)))
    image[dot[1], dot[0]] = 255
    runner = _DotFinder()
    est = M.MediaPipePoseEstimator(runner=runner)
    (kp,) = est.estimate_in_boxes(image, np.array([box], np.float32))
    (x,) = runner.inputs
    assert x.shape == (1, 256, 256, 3) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0  # RGB in [0, 1]
    side = 1.25 * max(x1 - x0, y1 - y0)
    # the dot is one image pixel: blurred over side/256 crop pixels at most
    np.testing.assert_allclose(kp[0, :2], (dot[0] + 0.5, dot[1] + 0.5), atol=max(1.0, side / 256))
    assert kp[0, 2] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)


def test_colour_order_is_rgb_and_scale_is_unit() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 255  # pure red
    runner = _DotFinder()
    M.MediaPipePoseEstimator(runner=runner).estimate(image)
    centre = runner.inputs[0][0, 128, 128]
    np.testing.assert_allclose(centre, (1.0, 0.0, 0.0))


def test_estimate_uses_person_boxes_or_the_whole_image() -> None:
    runner = _DotFinder()
    est = M.MediaPipePoseEstimator(runner=runner)
    assert isinstance(est, TopDownPoseEstimator)
    assert len(est.estimate(flat_grey((48, 64)))) == 1
    boxes = np.array([[0, 0, 10, 20], [20, 0, 40, 40]], np.float32)
    est = M.MediaPipePoseEstimator(runner=runner, person_boxes=lambda image: boxes)
    assert len(est.estimate(flat_grey((48, 64)))) == 2


# --- ground-truth boxes in evaluate_pose -------------------------------------------------------


def _coco(tmp_path: Path) -> Path:
    kps = np.array([[20 + k, 10 + 2 * k, 2] for k in range(17)], np.float64).reshape(-1)
    person = {"category_id": 1, "iscrowd": 0, "area": 1200.0, "image_id": 1}
    anns = [
        {**person, "id": 1, "bbox": [10, 5, 30, 40], "num_keypoints": 17, "keypoints": kps},
        {**person, "id": 2, "bbox": [50, 5, 10, 10], "num_keypoints": 0, "keypoints": [0] * 51},
    ]
    ann = {
        "images": [{"id": 1, "file_name": "p.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{**a, "keypoints": np.asarray(a["keypoints"]).tolist()} for a in anns],
    }
    path = tmp_path / "keypoints.json"
    path.write_text(json.dumps(ann))
    for folder in ("orig", "anon"):
        write_image(tmp_path / folder / "p.png", flat_grey((48, 64)))
    return path


class _RecordingTopDown:
    def __init__(self) -> None:
        self.boxes: list[np.ndarray] = []

    def estimate(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        raise AssertionError("evaluate_pose should pass the ground-truth boxes")

    def estimate_in_boxes(self, image_rgb: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray]:
        self.boxes.append(np.asarray(boxes_xyxy))
        return [np.zeros((17, 3), np.float32) for _ in boxes_xyxy]


def test_top_down_estimators_get_the_labelled_ground_truth_person_boxes(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    est = _RecordingTopDown()
    report = evaluate_pose(est, _coco(tmp_path), tmp_path / "orig", tmp_path / "anon")
    assert report.person_boxes == "ground truth" and report.to_dict()["person_boxes"]
    assert len(est.boxes) == 2  # before and after, same boxes
    for boxes in est.boxes:
        np.testing.assert_allclose(boxes, [[10, 5, 40, 45]])  # xywh -> xyxy, no 0-kp person


def test_mediapipe_with_a_perfect_fake_network_scores_ap_one(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    coco = json.loads(_coco(tmp_path).read_text())
    truth = np.asarray(coco["annotations"][0]["keypoints"], np.float64).reshape(17, 3)
    cx, cy, side = M.square_roi(np.array([10, 5, 40, 45]))

    def oracle(x: np.ndarray) -> tuple[np.ndarray, float]:
        raw = _raw(visibility=5.0)
        idx = list(M.MEDIAPIPE_TO_COCO)
        raw[idx, 0] = (truth[:, 0] - (cx - side / 2)) * 256 / side
        raw[idx, 1] = (truth[:, 1] - (cy - side / 2)) * 256 / side
        return raw, 0.9

    est = M.MediaPipePoseEstimator(runner=oracle)
    report = evaluate_pose(est, tmp_path / "keypoints.json", tmp_path / "orig", tmp_path / "anon")
    assert report.before["ap"] == pytest.approx(1.0) and report.after["ar"] == pytest.approx(1.0)


# --- finding the model, the CLI --------------------------------------------------------------


def test_model_is_found_in_an_installed_mediapipe_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mediapipe"
    model = package / "modules" / "pose_landmark" / "pose_landmark_full.tflite"
    model.parent.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    model.write_bytes(b"not a model")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mediapipe", raising=False)
    assert M.find_mediapipe_pose_model() == model
    assert "mediapipe" not in sys.modules


def test_missing_mediapipe_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"pip install --no-deps mediapipe==0\.10\.14"):
        load_pose_estimator("mediapipe")


def _cli(tmp_path: Path, pose_model: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from veil.commands.eval_more import utility

    face, _ = face_on_canvas()
    for folder in ("orig", "anon"):
        write_image(tmp_path / folder / "face.png", face)
    coco = tmp_path / "keypoints.json"
    coco.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    args = ["--original", str(tmp_path / "orig"), "--anonymized", str(tmp_path / "anon")]
    args += ["--no-landmarks", "--no-people", "--pose-model", pose_model, "--coco", str(coco)]
    res = CliRunner().invoke(utility, args)
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("pose_model", "message"),
    [
        ("mediapipe", "pip install --no-deps mediapipe==0.10.14"),
        ("missing.tflite", "missing.tflite: no such file"),
        ("missing.onnx", "missing.onnx: no such file"),
        ("model.pt", "expected a .onnx file, a .tflite file or 'mediapipe'"),
    ],
)
def test_utility_command_rejects_unusable_pose_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pose_model: str, message: str
) -> None:
    monkeypatch.setattr(M, "find_spec", lambda name: None)
    code, output = _cli(tmp_path, pose_model)
    assert code != 0 and message in output.replace("\n", " ")


def test_utility_command_reports_the_person_box_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pycocotools")
    from veil.evaluate import pose

    monkeypatch.setattr(pose, "load_pose_estimator", lambda spec: _RecordingTopDown())
    code, output = _cli(tmp_path, "mediapipe")
    assert code == 0, output
    assert "person boxes: ground truth" in output


def test_real_mediapipe_model_finds_the_astronauts_pose() -> None:
    """The real network (when the mediapipe wheel is installed; scripts/test.sh installs
    it): nose and eyes inside the face, shoulders below it, all confident."""
    try:
        model = M.find_mediapipe_pose_model()
    except InputError as exc:
        pytest.skip(f"no MediaPipe pose model: {exc}")
    import skimage.data

    from factories import ASTRONAUT_FACE

    (keypoints,) = M.MediaPipePoseEstimator(model).estimate(skimage.data.astronaut())
    x0, y0, x1, y1 = ASTRONAUT_FACE
    for k in (0, 1, 2):  # nose, left eye, right eye
        x, y, confidence = keypoints[k]
        assert x0 <= x <= x1 and y0 <= y <= y1 and confidence > 0.5, (k, keypoints[k])
    for k in (5, 6):  # shoulders
        assert keypoints[k][1] > y1 and keypoints[k][2] > 0.5, (k, keypoints[k])
