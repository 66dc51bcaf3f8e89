"""The synthetic anonymizer: a face of no one, on the person's own pose and expression."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from factories import ASTRONAUT_FACE, face_on_canvas, flat_grey
from veil.anonymize._landmarks import LandmarkSmoother, inter_ocular
from veil.anonymize._warp import piecewise_affine, triangulate
from veil.anonymize.base import ANONYMIZERS
from veil.assets import MEAN_FACE, load_mean_face
from veil.errors import ConfigError
from veil.mask import Masker, Region, union_mask
from veil.types import Faces

dlib_only = pytest.mark.dlib


def regions(image: np.ndarray, box: np.ndarray = ASTRONAUT_FACE, **masker: object) -> list[Region]:
    return Masker(**masker).regions(Faces(xyxy=[box]), image.shape)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def synthetic() -> type:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from veil.anonymize.synthetic import SyntheticFace

    return SyntheticFace


@pytest.fixture(scope="module")
def dlib_models() -> tuple[object, object, object]:
    dlib = pytest.importorskip("dlib")
    models = pytest.importorskip("face_recognition_models")
    return (
        dlib.shape_predictor(models.pose_predictor_model_location()),
        dlib.shape_predictor(models.pose_predictor_five_point_model_location()),
        dlib.face_recognition_model_v1(models.face_recognition_model_location()),
    )


def landmarks(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    from veil.anonymize._landmarks import LandmarkModel

    points = LandmarkModel().locate(np.ascontiguousarray(image), box)
    assert points is not None
    return points


def embedding(models: tuple[object, ...], image: np.ndarray, box: np.ndarray) -> np.ndarray:
    import dlib

    _, five, net = models
    rect = dlib.rectangle(*(int(v) for v in box))
    shape = five(image, rect)  # type: ignore[operator]
    return np.asarray(net.compute_face_descriptor(image, shape), np.float64)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the shipped average


def test_shipped_mean_face_averages_many_identities_and_matches_none() -> None:
    face = load_mean_face()
    assert face.meta["k"] >= 50 and face.meta["identities"] >= 50
    assert face.texture.dtype == np.uint8 and face.texture.shape[2] == 3
    assert face.shape.shape == (68, 2)
    assert face.meta["min_distance_photo"] >= 0.6  # dlib's same-person threshold
    path = Path(__file__).parents[2] / "src" / "veil" / "assets" / MEAN_FACE
    assert path.stat().st_size < 300_000


# ---------------------------------------------------------------- building blocks


def test_identity_warp_reproduces_the_image() -> None:
    image = data.astronaut()[:100, :100]
    pts = np.array([[5, 5], [90, 10], [50, 90], [20, 60], [80, 70], [45, 40]], np.float32)
    out, covered = piecewise_affine(image, pts, pts, triangulate(pts), (100, 100))
    assert covered.sum() > 3000
    np.testing.assert_array_equal(out[covered], image[covered])


def test_smoother_removes_jitter_but_follows_jumps() -> None:
    rng = np.random.default_rng(0)
    face = rng.uniform(0, 100, (68, 2)).astype(np.float32)
    smooth = LandmarkSmoother(0.6, capacity=2)
    smooth(1, face)
    jitter = face + rng.normal(0, 0.3, face.shape).astype(np.float32)
    assert np.abs(smooth(1, jitter) - face).mean() < 0.6 * np.abs(jitter - face).mean()
    jump = face + 3 * inter_ocular(face)
    np.testing.assert_allclose(smooth(1, jump), jump)
    smooth(2, face), smooth(3, face)
    assert len(smooth._state) == 2  # bounded


def test_face_box_recovers_the_detector_box(synthetic: type) -> None:
    from veil.anonymize.synthetic import face_box

    image = data.astronaut()
    for box in (ASTRONAUT_FACE, np.array([-30, 200, 66, 296], np.float32)):
        (region,) = regions(image, box, feather=0.2)
        np.testing.assert_allclose(face_box(region, image.shape[:2]), box, atol=2.5)


# ---------------------------------------------------------------- landmark seeds and check

_CENTRE = (ASTRONAUT_FACE[:2] + ASTRONAUT_FACE[2:]) / 2
_POINTS_CENTRE = np.array([224, 127])  # the 68 points' mean: brows to chin, below the box centre
_FACE_WIDTH = np.array([1, 0, 1, 0]) * (ASTRONAUT_FACE[2] - ASTRONAUT_FACE[0])
_FACE_HEIGHT = np.array([0, 1, 0, 1]) * (ASTRONAUT_FACE[3] - ASTRONAUT_FACE[1])


def _noise(shape: tuple[int, int] = (512, 512)) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.stack([image] * 3, axis=-1))


@dlib_only
@pytest.mark.parametrize(
    ("image", "box", "found"),
    [
        pytest.param(data.astronaut(), ASTRONAUT_FACE, True, id="detector box"),
        # boxes off the face: the first seeds fail, dlib's HOG detector seeds the fit
        pytest.param(data.astronaut(), ASTRONAUT_FACE - 0.4 * _FACE_WIDTH, True, id="left 40%"),
        pytest.param(data.astronaut(), ASTRONAUT_FACE + 0.4 * _FACE_HEIGHT, True, id="low 40%"),
        pytest.param(data.astronaut(), np.r_[_CENTRE - 96, _CENTRE + 96], True, id="2x too big"),
        # a box beside the face is not this face: nothing, and the fallback is used
        pytest.param(data.astronaut(), ASTRONAUT_FACE - 0.6 * _FACE_WIDTH, False, id="beside"),
        pytest.param(flat_grey((512, 512)), ASTRONAUT_FACE, False, id="flat grey"),
        pytest.param(_noise(), ASTRONAUT_FACE, False, id="noise"),
        pytest.param(_grey(data.brick()), ASTRONAUT_FACE, False, id="brick"),
        pytest.param(data.coffee(), np.array([150, 100, 300, 250.0]), False, id="coffee cup"),
    ],
)
def test_landmarks_are_found_only_on_the_face_in_the_box(
    synthetic: type, image: np.ndarray, box: np.ndarray, found: bool
) -> None:
    from veil.anonymize._landmarks import LandmarkModel

    points = LandmarkModel().locate(np.ascontiguousarray(image), box)
    assert (points is not None) == found
    if points is not None:  # on the astronaut's face, wherever the box was
        assert np.abs(points.mean(0) - _POINTS_CENTRE).max() < 4


@dlib_only
def test_small_and_mirrored_faces_get_landmarks(synthetic: type) -> None:
    from veil.anonymize._landmarks import LandmarkModel

    model = LandmarkModel()
    for scale, mirror in ((0.4, False), (0.6, True)):
        image, box = face_on_canvas(scale=scale, mirror=mirror, offset=(40, 0))
        shifted = box + 0.3 * (box[2] - box[0]) * np.array([1, 0, 1, 0])  # off-centre box
        for b in (box, shifted):
            points = model.locate(image, b)
            assert points is not None, (scale, mirror, b)
            expected = (box[:2] + box[2:]) / 2 + (0, 0.14 * (box[3] - box[1]))
            assert np.abs(points.mean(0) - expected).max() < 0.1 * (box[2] - box[0])


@dlib_only
def test_random_boxes_on_photos_without_faces_are_refused(synthetic: type) -> None:
    from veil.anonymize._landmarks import LandmarkModel

    model, rng = LandmarkModel(), np.random.default_rng(1)
    for image in (data.coffee(), data.chelsea(), _grey(data.grass()), _grey(data.camera())):
        image = np.ascontiguousarray(image)
        h, w = image.shape[:2]
        for _ in range(4):
            side = rng.uniform(48, 160)
            x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
            assert model.locate(image, (x0, y0, x0 + side, y0 + side)) is None


def test_dlib_box_maps_a_centerface_box_onto_dlib_hog_box(synthetic: type) -> None:
    from veil.anonymize._landmarks import LandmarkModel, dlib_box
    from veil.boxes import box_iou
    from veil.detect.base import DETECTORS

    image = data.astronaut()
    faces = DETECTORS.create("centerface").detect(image)
    (hog,) = LandmarkModel().hog_faces(image, 100)
    assert box_iou(dlib_box(faces.xyxy[0])[None], hog[None])[0, 0] > 0.75


@pytest.mark.parametrize(
    "options",
    [
        {"degree": 2.5},
        {"degree": -0.1},
        {"blend": "paste"},
        {"fallback": "synthetic"},
        {"fallback": "nope"},
        {"smoothing": 1.0},
        {"generator": "nope"},
    ],
)
def test_bad_options_are_config_errors(synthetic: type, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        synthetic(**options)


# ---------------------------------------------------------------- on a real face


@dlib_only
def test_face_is_replaced_and_nothing_outside_changes(synthetic: type) -> None:
    image = data.astronaut()
    regs = regions(image, feather=0.2)
    out = synthetic(seed=0).apply(image, regs)
    outside = ~union_mask(regs, image.shape)
    np.testing.assert_array_equal(out[outside], image[outside])
    inner = union_mask(regions(image, scale=0.8), image.shape)
    assert np.abs(out.astype(int) - image)[inner].mean() > 12


@dlib_only
def test_pose_and_expression_survive_and_degree_moves_geometry(synthetic: type) -> None:
    image = data.astronaut()
    own = landmarks(image, ASTRONAUT_FACE)
    iod = inter_ocular(own)
    errors = {}
    for degree in (0.0, 1.0):
        out = synthetic(seed=0, degree=degree).apply(image, regions(image))
        errors[degree] = np.linalg.norm(landmarks(out, ASTRONAUT_FACE) - own, axis=1).mean() / iod
    assert errors[0.0] < 0.15
    assert errors[1.0] > errors[0.0]


@dlib_only
@pytest.mark.parametrize("light", [1.0, 0.45], ids=["as-shot", "darker-skin"])
def test_replaced_face_keeps_the_persons_skin_tone(synthetic: type, light: float) -> None:
    from veil.anonymize._warp import skin_patches

    # the photo as shot, and with its face darkened toward a deeper skin tone
    image = data.astronaut()
    if light != 1.0:
        x0, y0, x1, y1 = ASTRONAUT_FACE.astype(int)
        pad = (x1 - x0) // 2
        face = image[y0 - pad : y1 + pad, x0 - pad : x1 + pad].astype(np.float32)
        image = image.copy()
        image[y0 - pad : y1 + pad, x0 - pad : x1 + pad] = np.round(face * light).astype(np.uint8)
    out = synthetic(seed=0).apply(image, regions(image))

    def cheeks(im: np.ndarray) -> np.ndarray:
        mask = skin_patches(landmarks(im, ASTRONAUT_FACE), im.shape[:2])
        return np.median(cv2.cvtColor(im, cv2.COLOR_RGB2LAB)[mask], axis=0).astype(float)

    assert np.linalg.norm(cheeks(out) - cheeks(image)) < 3  # 8-bit LAB units


@dlib_only
def test_forehead_stops_at_a_low_hair_line(synthetic: type) -> None:
    # a dark fringe painted across the forehead, below where the replaced area would reach
    image = data.astronaut().copy()
    points = landmarks(image, ASTRONAUT_FACE)
    brow_top = points[17:27, 1].min()
    length = points[8, 1] - points[17:27, 1].mean()
    x0, x1 = round(points[0, 0]), round(points[16, 0])
    y0, y1 = round(brow_top - 0.45 * length), round(brow_top - 0.2 * length)
    image[y0:y1, x0:x1] = (60, 40, 30)
    out = synthetic(seed=0).apply(image, regions(image))
    fringe = np.abs(out[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1]).max(axis=2)
    assert (fringe <= 2).mean() > 0.95  # the hair is the person's, untouched
    face = (slice(round(brow_top), round(points[8, 1])), slice(x0, x1))
    below = np.abs(out.astype(int) - image)[face].mean()
    assert below > 12  # the face under it is still replaced


@dlib_only
def test_a_dark_patch_on_the_forehead_is_not_taken_for_hair(synthetic: type) -> None:
    # a bare forehead (skin coloured) with a dark bar across it (a glasses frame, a shadow)
    image = data.astronaut().copy()
    points = landmarks(image, ASTRONAUT_FACE)
    length = points[8, 1] - points[17:27, 1].mean()
    brow_top = points[17:27, 1].min()
    x0, x1 = round(points[0, 0]), round(points[16, 0])
    cheek = image[int(points[29, 1]), int(points[2, 0] + points[31, 0]) // 2]
    image[round(brow_top - 0.5 * length) : round(brow_top - 0.05 * length), x0:x1] = cheek
    bar = slice(round(brow_top - 0.14 * length), round(brow_top - 0.1 * length))
    image[bar, x0 + 10 : x1 - 10] = (40, 30, 25)
    out = synthetic(seed=0).apply(image, regions(image))
    cx = round(points[17:27, 0].mean())
    band = (
        slice(round(brow_top - 0.35 * length), round(brow_top - 0.2 * length)),
        slice(cx - 15, cx + 15),
    )
    assert (np.abs(out.astype(int) - image)[band].sum(2) > 6).mean() > 0.5  # replaced above it


def test_degree_moves_identity_geometry_but_keeps_expression(synthetic: type) -> None:
    from veil.anonymize._landmarks import apply_affine, similarity
    from veil.anonymize.synthetic import target_shape

    mean = load_mean_face().shape
    rng = np.random.default_rng(0)
    own = (mean * 1.3 + (40, 10) + rng.normal(0, 2, mean.shape)).astype(np.float32)
    np.testing.assert_allclose(target_shape(own, mean, 0.0), own, atol=1e-4)
    fitted = apply_affine(similarity(mean, own), mean)
    full, half = target_shape(own, mean, 1.0), target_shape(own, mean, 0.5)
    np.testing.assert_allclose(full[:36], fitted[:36], atol=1e-3)  # jaw, brows, nose
    np.testing.assert_allclose(half[:36], (own[:36] + fitted[:36]) / 2, atol=1e-3)
    mouth = slice(48, 68)  # how open the mouth is stays the person's own
    np.testing.assert_allclose(
        full[mouth] - full[mouth].mean(0), own[mouth] - own[mouth].mean(0), atol=1e-3
    )


@dlib_only
def test_replaced_face_is_not_the_same_person_for_dlib(
    synthetic: type, dlib_models: tuple[object, ...]
) -> None:
    image = data.astronaut()
    out = synthetic(seed=0).apply(image, regions(image))
    box = ASTRONAUT_FACE.astype(int)
    distance = np.linalg.norm(embedding(dlib_models, out, box) - embedding(dlib_models, image, box))
    assert distance > 0.6


@dlib_only
def test_fails_closed_to_the_fallback_where_landmarks_fail(synthetic: type) -> None:
    image = flat_grey((200, 200))
    image[60:140, 60:140] = np.random.default_rng(0).integers(0, 256, (80, 80, 3))
    regs = regions(image, np.array([60, 60, 140, 140], np.float32))
    out = synthetic(seed=3).apply(image, regs)
    expected = ANONYMIZERS.create("irreversible", seed=3).apply(image, regs)
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out.astype(int) - image)[union_mask(regs, image.shape)].mean() > 10


@dlib_only
def test_a_track_keeps_its_face_and_tracks_differ(synthetic: type) -> None:
    image = data.astronaut()
    (region,) = regions(image)
    anonymizer = synthetic(seed=0, degree=0.0)
    first = anonymizer.apply(image, [dataclasses.replace(region, key=7)])
    again = anonymizer.apply(image, [dataclasses.replace(region, key=7)])
    np.testing.assert_array_equal(first, again)
    other = anonymizer.apply(image, [dataclasses.replace(region, key=8)])
    assert np.abs(other.astype(int) - first).mean() > 0.1


def _donor(image: np.ndarray, i: int) -> np.ndarray:
    """A made-up donor: the astronaut mirrored, rescaled and recoloured (not a real person)."""
    face = image[20:240, 120:330]
    face = face[:, ::-1] if i % 2 else face
    face = cv2.resize(face, None, fx=1 + 0.1 * i, fy=1 + 0.1 * i)
    return np.clip(face.astype(int) + np.array([i * 9, -i * 5, i * 3]), 0, 255).astype(np.uint8)


@dlib_only
def test_gallery_gives_a_k_same_average_of_donors(synthetic: type, tmp_path: Path) -> None:
    image = data.astronaut()
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"donor{i}.png"), _donor(image, i)[:, :, ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    anonymizer = synthetic(seed=0, gallery=tmp_path, k=2)
    assert anonymizer.generator.faces.shape[0] == 3
    out = anonymizer.apply(image, regions(image))
    inner = union_mask(regions(image, scale=0.8), image.shape)
    assert np.abs(out.astype(int) - image)[inner].mean() > 3
    with pytest.raises(ConfigError, match="k must be"):
        synthetic(gallery=tmp_path, k=4)


@dlib_only
def test_a_generator_plug_in_supplies_the_texture(synthetic: type) -> None:
    from veil.anonymize.synthetic import GENERATORS, FaceGenerator

    class Solid(FaceGenerator):
        def __init__(self, *, frame: object, model_path: str) -> None:
            super().__init__(frame=frame)  # type: ignore[arg-type]
            self.model_path = model_path

        def generate(self, aligned: np.ndarray, key: int, rng: np.random.Generator) -> np.ndarray:
            return np.full_like(aligned, 128)

    GENERATORS.register("test-solid", Solid)
    options = {"model_path": "/models/x.onnx"}
    anonymizer = synthetic(generator="test-solid", generator_options=options, blend="alpha")
    assert anonymizer.generator.model_path == "/models/x.onnx"
    image = data.astronaut()
    out = anonymizer.apply(image, regions(image))
    # a flat texture recoloured to the skin: the face's own detail is gone
    inner = union_mask(regions(image, scale=0.5), image.shape)
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    assert grey[inner].std() < 0.5 * cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[inner].std()
