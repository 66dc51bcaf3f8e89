"""Every registered anonymizer: changes the face, nothing else, at any face size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from veil.anonymize.base import ANONYMIZERS, Anonymizer
from veil.errors import ConfigError, MissingExtraError
from veil.mask import Masker, Region, union_mask
from veil.types import Faces

NAMES = ANONYMIZERS.names()
BUILT_INS = [
    "bilateral",
    "box",
    "gaussian",
    "inpaint",
    "image",
    "irreversible",
    "median",
    "noise",
    "pixelate",
    "solid",
    "synthetic",
]
# methods whose output is random by design (seed None -> fresh pattern every call)
RANDOM = {"noise", "irreversible"}
# methods that leave texture of their own (noise grain, block edges, a picture) inside the face
TEXTURED = {"noise", "pixelate", "image"}
# methods that put a realistic face back: detail stays by design; identity is what must go,
# and tests/anonymize/test_synthetic.py checks that with dlib embeddings
REPLACING = {"synthetic"}
ASTRONAUT_FACE = (170, 60, 260, 170)  # x0, y0, x1, y1 of the face in skimage's astronaut


# ---------------------------------------------------------------- factories


def astronaut() -> tuple[np.ndarray, Faces]:
    """RGB ``uint8 (512, 512, 3)`` portrait and its one face box."""
    return data.astronaut(), Faces(xyxy=[ASTRONAUT_FACE])


def textured(size: int = 64, seed: int = 0) -> np.ndarray:
    """RGB ``uint8 (size, size, 3)`` of uniform noise: every pixel differs from its neighbours."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def regions_of(image: np.ndarray, faces: Faces, **masker: object) -> list[Region]:
    # no pixel margin: it is absolute, so it would break the half-resolution comparisons
    masker = {"margin": 0.0, **masker}
    return Masker(**masker).regions(faces, image.shape)  # type: ignore[arg-type]


def inner(image: np.ndarray, faces: Faces) -> np.ndarray:
    """``bool (H, W)``: the face itself (ellipse at 0.9 of the box), away from mask edges."""
    return union_mask(regions_of(image, faces, scale=0.9), image.shape)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def detail(image: np.ndarray) -> np.ndarray:
    """Band-pass (difference of gaussians) at the scale of eyes, nose and mouth."""
    g = grey(image)
    return cv2.GaussianBlur(g, (0, 0), 1.5) - cv2.GaussianBlur(g, (0, 0), 6)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def surviving_detail(out: np.ndarray, image: np.ndarray, where: np.ndarray) -> float:
    """Share of the original feature detail still present in ``out`` (1 = all of it).

    The least-squares coefficient of the original's band-pass in the output's: noise,
    flat fills and blurs give ~0; a weak blur (sigma 2 px on a 100-px face) gives ~0.8.
    """
    a, b = detail(out)[where], detail(image)[where]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (b * b).mean())


def laplacian_variance(image: np.ndarray, where: np.ndarray) -> float:
    return float(cv2.Laplacian(grey(image), cv2.CV_64F)[where].var())


#: options a method cannot run without (``image``: the picture, written by a fixture)
REQUIRED: dict[str, dict[str, object]] = {}


@pytest.fixture(autouse=True, scope="module")
def _replacement_picture(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("picture") / "picture.png"
    Image.fromarray(data.coffee()).save(path)
    REQUIRED["image"] = {"image": str(path)}


def run(name: str, image: np.ndarray, faces: Faces, **options: object) -> np.ndarray:
    try:
        anonymizer: Anonymizer = ANONYMIZERS.create(name, **{**REQUIRED.get(name, {}), **options})
    except MissingExtraError as exc:  # e.g. synthetic without the dlib extra
        pytest.skip(str(exc))
    return anonymizer.apply(image, regions_of(image, faces))


# ---------------------------------------------------------------- registry


def test_builtin_names_are_registered() -> None:
    assert set(BUILT_INS) <= set(NAMES)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="nope") as info:
        ANONYMIZERS.create("nope")
    for name in BUILT_INS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("strength", [0.0, 0.01, 25.0, -1.0])
def test_strength_out_of_range_is_config_error(name: str, strength: float) -> None:
    with pytest.raises(ConfigError, match="strength"):
        ANONYMIZERS.create(name, strength=strength)


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("solid", {"color": (255, 0, 0)}, None),
        ("solid", {"color": "mean"}, None),
        ("solid", {"color": (256, 0, 0)}, ConfigError),
        ("solid", {"color": (0.5, 0, 0)}, ConfigError),
        ("solid", {"color": (1, 2)}, ConfigError),
        ("solid", {"color": "red"}, ConfigError),
        ("bilateral", {"passes": 1}, None),
        ("bilateral", {"passes": 0}, ConfigError),
        ("bilateral", {"passes": 2.5}, ConfigError),
        ("inpaint", {"method": "ns"}, None),
        ("inpaint", {"method": "fast"}, ConfigError),
        ("irreversible", {"across": 16}, None),
        ("irreversible", {"across": 1}, ConfigError),
        ("gaussian", {"radius": 3}, ConfigError),
    ],
)
def test_options(name: str, options: dict[str, object], error: type[Exception] | None) -> None:
    if error is None:
        image, faces = astronaut()
        out = run(name, image, faces, **options)
        assert out.shape == image.shape
    else:
        with pytest.raises(error):
            ANONYMIZERS.create(name, **options)


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("name", NAMES)
def test_input_is_not_modified_and_output_matches(name: str) -> None:
    image, faces = astronaut()
    before = image.copy()
    out = run(name, image, faces, seed=0)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape
    assert out.dtype == np.uint8


@pytest.mark.parametrize("name", NAMES)
def test_no_pixel_outside_the_regions_changes(name: str) -> None:
    image, _ = astronaut()
    # one face inside, one half outside the top-left corner, feathered edges
    faces = Faces(xyxy=[ASTRONAUT_FACE, (-40, -30, 50, 60)])
    regions = regions_of(image, faces, feather=0.2)
    out = ANONYMIZERS.create(name, seed=0, **REQUIRED.get(name, {})).apply(image, regions)
    outside = ~union_mask(regions, image.shape)
    np.testing.assert_array_equal(out[outside], image[outside])


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    box=st.tuples(st.floats(-30, 60), st.floats(-30, 60), st.floats(2, 60), st.floats(2, 60)),
    shape=st.sampled_from(["box", "ellipse"]),
)
def test_no_pixel_outside_any_region_changes(
    name: str, box: tuple[float, float, float, float], shape: str
) -> None:
    image = textured()
    x0, y0, w, h = box
    regions = regions_of(image, Faces(xyxy=[(x0, y0, x0 + w, y0 + h)]), shape=shape)
    out = ANONYMIZERS.create(name, seed=1, **REQUIRED.get(name, {})).apply(image, regions)
    outside = ~union_mask(regions, image.shape)
    np.testing.assert_array_equal(out[outside], image[outside])


@pytest.mark.parametrize("name", NAMES)
def test_no_faces_returns_an_equal_copy(name: str) -> None:
    image, _ = astronaut()
    out = run(name, image, Faces.empty())
    assert out is not image
    np.testing.assert_array_equal(out, image)


# ---------------------------------------------------------------- anonymity


@pytest.mark.parametrize("name", sorted(set(NAMES) - REPLACING))
def test_face_changes_substantially(name: str) -> None:
    image, faces = astronaut()
    out = run(name, image, faces, seed=0)
    face = inner(image, faces)
    diff = np.abs(grey(out) - grey(image))[face]
    assert diff.mean() > 15
    # eyes, nose and mouth: at most a fifth of their detail survives (defaults: < 0.11)
    assert abs(surviving_detail(out, image, face)) < 0.2


@pytest.mark.parametrize("name", sorted(set(NAMES) - TEXTURED - REPLACING))
def test_fine_detail_is_removed(name: str) -> None:
    image, faces = astronaut()
    out = run(name, image, faces, seed=0)
    face = inner(image, faces)
    assert laplacian_variance(out, face) < 0.05 * laplacian_variance(image, face)


@pytest.mark.parametrize("name", sorted(RANDOM & set(NAMES)))
def test_random_methods_do_not_follow_the_face(name: str) -> None:
    image, faces = astronaut()
    out = run(name, image, faces, seed=0)
    face = inner(image, faces)
    assert abs(correlation(grey(out)[face], grey(image)[face])) < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_tiny_face_is_changed(name: str) -> None:
    image = textured()
    faces = Faces(xyxy=[(26, 26, 38, 38)])
    out = run(name, image, faces, seed=0)
    face = inner(image, faces)
    assert np.abs(grey(out) - grey(image))[face].mean() > 20


# pixelate is left out: its block grid shifts with rounding, see the block-count test;
# image has no kernel (its picture is fitted to the mask box: tests/anonymize/test_image.py)
@pytest.mark.parametrize("name", sorted(set(NAMES) - RANDOM - REPLACING - {"pixelate", "image"}))
def test_kernels_scale_with_face_size(name: str) -> None:
    """Half the resolution, half the kernel: the result is the same picture, smaller."""
    image, faces = astronaut()
    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    half = Faces(xyxy=faces.xyxy / 2)
    out_small = run(name, small, half, seed=0)
    out_big = cv2.resize(run(name, image, faces, seed=0), (256, 256), interpolation=cv2.INTER_AREA)
    face = inner(small, half)
    assert np.abs(grey(out_small) - grey(out_big))[face].mean() < 6


# ---------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name: str) -> None:
    image, faces = astronaut()
    np.testing.assert_array_equal(run(name, image, faces, seed=7), run(name, image, faces, seed=7))


@pytest.mark.parametrize("name", sorted(RANDOM & set(NAMES)))
def test_unseeded_output_is_not_a_function_of_the_input(name: str) -> None:
    image, faces = astronaut()
    first, second = run(name, image, faces), run(name, image, faces)
    assert np.abs(grey(first) - grey(second))[inner(image, faces)].mean() > 2


@pytest.mark.parametrize("name", sorted(RANDOM & set(NAMES)))
def test_different_seeds_differ(name: str) -> None:
    image, faces = astronaut()
    assert not np.array_equal(run(name, image, faces, seed=1), run(name, image, faces, seed=2))


# ---------------------------------------------------------------- method specifics


def test_solid_fills_the_face_with_the_colour() -> None:
    image, faces = astronaut()
    out = run("solid", image, faces, color=(10, 200, 30))
    assert (out[inner(image, faces)] == (10, 200, 30)).all()


def test_solid_mean_uses_the_mean_colour_of_the_face() -> None:
    image, faces = astronaut()
    regions = regions_of(image, faces)
    out = ANONYMIZERS.create("solid", color="mean").apply(image, regions)
    region = union_mask(regions, image.shape)
    expected = np.round(image[region].mean(axis=0))
    np.testing.assert_array_equal(out[region][0], expected)


def test_pixelate_has_about_six_blocks_across_the_face() -> None:
    image, faces = astronaut()
    out = run("pixelate", image, faces)
    row = out[115, 180:250].astype(int)  # across the middle of the face, 70 px
    changes = np.count_nonzero(np.abs(np.diff(row, axis=0)).sum(axis=1))
    assert 3 <= changes <= 6  # ~17-px blocks


@pytest.mark.parametrize("name", ["gaussian", "median", "bilateral", "box", "pixelate"])
def test_weak_strength_keeps_detail_the_default_removes(name: str) -> None:
    """The detail check is not vacuous: strength 0.1 leaves the face readable."""
    image, faces = astronaut()
    face = inner(image, faces)
    assert surviving_detail(run(name, image, faces, strength=0.1), image, face) > 0.3


@pytest.mark.parametrize(("h", "w", "k"), [(12, 18, 3), (13, 17, 4), (5, 5, 6)])
def test_shrink_by_averages_blocks_and_enlarge_by_restores_the_size(h: int, w: int, k: int) -> None:
    from veil.anonymize.filters import enlarge_by, shrink_by

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    small = shrink_by(image, k)
    assert small.shape == (-(-h // k), -(-w // k), 3)
    # the first block is a plain k x k mean (padding only touches the last row/column)
    if h >= k and w >= k:
        expected = image[:k, :k].reshape(-1, 3).mean(axis=0)
        assert np.abs(small[0, 0].astype(float) - expected).max() <= 1
    flat = np.full((h, w, 3), 77, np.uint8)
    assert (shrink_by(flat, k) == 77).all()
    assert enlarge_by(small, k, image.shape).shape == image.shape
    assert (enlarge_by(shrink_by(flat, k), k, flat.shape) == 77).all()


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(2, 40),
    small_hw=st.tuples(st.integers(2, 40), st.integers(2, 40)),
    corners=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
    seed=st.integers(0, 2**16),
)
def test_enlarge_part_is_exactly_that_part_of_enlarge_by(
    k: int, small_hw: tuple[int, int], corners: tuple[float, ...], seed: int
) -> None:
    from veil.anonymize.filters import enlarge_by, enlarge_part

    small = np.random.default_rng(seed).integers(0, 256, (*small_hw, 3), dtype=np.uint8)
    h, w = small_hw[0] * k - k // 2, small_hw[1] * k - k // 3
    ya, yb = sorted(int(c * (h - 1)) for c in corners[:2])
    xa, xb = sorted(int(c * (w - 1)) for c in corners[2:])
    box = (ya, yb + 1, xa, xb + 1)
    full = enlarge_by(small, k, (h, w))
    np.testing.assert_array_equal(enlarge_part(small, k, box), full[ya : yb + 1, xa : xb + 1])


def test_gaussian_blurs_the_masked_part_as_a_whole_patch_blur_would() -> None:
    from veil.anonymize.filters import GaussianBlur, enlarge_by, shrink_by

    image, _ = astronaut()
    patch = np.ascontiguousarray(image[:300, 100:400])
    mask = np.zeros(patch.shape[:2], bool)
    mask[100:220, 90:200] = True
    blur = GaussianBlur()
    out = blur.transform(patch, mask, 120.0, np.random.default_rng(0))
    sigma = blur.sigma(120.0)
    k = int(sigma // 4)
    small = cv2.GaussianBlur(shrink_by(patch, k), (0, 0), np.sqrt((sigma / k) ** 2 - 1 / 12))
    whole = enlarge_by(small, k, patch.shape)
    np.testing.assert_array_equal(out[mask], whole[mask])
