"""Masker: which pixels a face allows an anonymizer to change."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import ConfigError
from veil.mask import Masker, Region, union_mask
from veil.types import Faces

SHAPE = (100, 120, 3)
BOX = (40.0, 30.0, 80.0, 70.0)  # 40 x 40 face centred at (60, 50)


def alpha_image(region: Region, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """``float32 (H, W)``: the region's alpha pasted into a full image."""
    out = np.zeros(shape[:2], np.float32)
    out[region.slices] = region.alpha
    return out


def centres(shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(xs, ys)``, each ``float (H, W)``."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return xs + 0.5, ys + 0.5


def inside(shape: str, box: tuple[float, ...], scale: float) -> np.ndarray:
    """``bool (H, W)``: pixel centres inside the scaled box or its inscribed ellipse."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax, ay = (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale
    xs, ys = centres()
    if shape == "box":
        return (np.abs(xs - cx) <= ax) & (np.abs(ys - cy) <= ay)
    return ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= 1


def one_region(masker: Masker, box: tuple[float, ...] = BOX) -> Region:
    (region,) = masker.regions(Faces(xyxy=[box]), SHAPE)
    return region


@pytest.mark.parametrize("shape", ["box", "ellipse"])
@pytest.mark.parametrize("scale", [1.0, 1.3, 2.0])
def test_whole_scaled_shape_is_fully_covered(shape: str, scale: float) -> None:
    region = one_region(Masker(drop=0.0, margin=0.0, shape=shape, scale=scale))
    alpha = alpha_image(region)
    assert (alpha[inside(shape, BOX, scale)] == 1).all()
    assert set(np.unique(region.alpha)) <= {0.0, 1.0}
    assert region.alpha.dtype == np.float32
    assert region.alpha.shape == (region.y1 - region.y0, region.x1 - region.x0)


def test_ellipse_leaves_the_crop_corners_alone() -> None:
    alpha = one_region(Masker(drop=0.0, margin=0.0, shape="ellipse", scale=1.3)).alpha
    for corner in (alpha[:3, :3], alpha[:3, -3:], alpha[-3:, :3], alpha[-3:, -3:]):
        assert (corner == 0).all()


def test_box_covers_its_whole_crop_but_not_much_more() -> None:
    region = one_region(Masker(drop=0.0, margin=0.0, shape="box", scale=1.0))
    assert (region.alpha[1:-1, 1:-1] == 1).all()
    assert alpha_image(region).sum() <= 42 * 42


def test_region_records_size_index_and_key() -> None:
    faces = Faces(xyxy=[BOX, (0, 0, 10, 30)], track_id=[7, 9])
    regions = Masker(drop=0.0, margin=0.0).regions(faces, SHAPE)
    assert [r.index for r in regions] == [0, 1]
    assert [r.key for r in regions] == [7, 9]
    assert regions[0].size == pytest.approx(40.0)
    assert regions[1].size == pytest.approx(20.0)


def test_key_is_the_index_without_tracks() -> None:
    regions = Masker(drop=0.0, margin=0.0).regions(Faces(xyxy=[BOX, BOX]), SHAPE)
    assert [r.key for r in regions] == [0, 1]


@pytest.mark.parametrize("shape", ["box", "ellipse"])
@pytest.mark.parametrize(
    "box",
    [(-20.0, 10.0, 20.0, 50.0), (100.0, 70.0, 140.0, 110.0), (-30.0, -30.0, 10.0, 10.0)],
)
def test_regions_are_clipped_at_image_borders(shape: str, box: tuple[float, ...]) -> None:
    region = one_region(Masker(drop=0.0, margin=0.0, shape=shape, scale=1.3), box)
    assert 0 <= region.x0 < region.x1 <= SHAPE[1]
    assert 0 <= region.y0 < region.y1 <= SHAPE[0]
    assert region.alpha.shape == (region.y1 - region.y0, region.x1 - region.x0)
    # the visible part of the face is still fully covered
    assert (alpha_image(region)[inside(shape, box, 1.3)] == 1).all()


def test_face_entirely_outside_the_image_has_no_region() -> None:
    faces = Faces(xyxy=[(200.0, 200.0, 240.0, 240.0), BOX])
    regions = Masker(drop=0.0, margin=0.0).regions(faces, SHAPE)
    assert [r.index for r in regions] == [1]


@pytest.mark.parametrize("shape", ["box", "ellipse"])
def test_feather_grows_outward_only(shape: str) -> None:
    hard = alpha_image(one_region(Masker(drop=0.0, margin=0.0, shape=shape, feather=0.0)))
    soft_region = one_region(Masker(drop=0.0, margin=0.0, shape=shape, feather=0.25))
    soft = alpha_image(soft_region)
    # the unfeathered shape keeps alpha 1; the soft edge lies outside it
    assert (soft[hard == 1] == 1).all()
    edge = (soft > 0) & (soft < 1)
    assert edge.any()
    assert not (edge & (hard == 1)).any()
    assert soft.sum() > hard.sum()
    assert soft_region.alpha.min() >= 0
    assert soft_region.alpha.max() <= 1


def test_feather_falls_off_with_distance() -> None:
    soft = alpha_image(
        one_region(Masker(drop=0.0, margin=0.0, shape="box", scale=1.0, feather=0.25))
    )
    row = soft[50, 79:92]  # from the last pixel inside the box (x1 = 80) outward
    assert (np.diff(row) <= 0).all()
    assert row[0] == 1
    assert row[-1] == 0


def test_faces_with_masks_use_them() -> None:
    masks = np.zeros((2, *SHAPE[:2]), bool)
    masks[0, 10:20, 30:35] = True
    masks[0, 15, 50] = True  # masks need not be convex or connected
    faces = Faces(xyxy=[BOX, BOX], masks=masks)  # the second mask is empty
    regions = Masker(drop=0.0, margin=0.0, shape="box", scale=2.0, feather=0.5).regions(
        faces, SHAPE
    )
    assert len(regions) == 1
    (region,) = regions
    assert (region.x0, region.y0, region.x1, region.y1) == (30, 10, 51, 20)
    np.testing.assert_array_equal(alpha_image(region) > 0, masks[0])
    assert region.size == pytest.approx(40.0)
    np.testing.assert_array_equal(union_mask(regions, SHAPE), masks[0])


def test_union_mask_is_the_or_of_all_regions() -> None:
    faces = Faces(xyxy=[BOX, (70.0, 40.0, 110.0, 80.0), (0.0, 0.0, 10.0, 10.0)])
    regions = Masker(drop=0.0, margin=0.0, shape="ellipse").regions(faces, SHAPE)
    union = union_mask(regions, SHAPE)
    expected = np.zeros(SHAPE[:2], bool)
    for region in regions:
        expected |= alpha_image(region) > 0
    assert union.dtype == bool
    assert union.shape == SHAPE[:2]
    np.testing.assert_array_equal(union, expected)


def test_union_mask_of_no_regions_is_empty() -> None:
    assert not union_mask([], SHAPE).any()
    assert Masker(drop=0.0, margin=0.0).regions(Faces.empty(), SHAPE) == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, None),
        ({"shape": "box", "scale": 0.5, "feather": 1.0}, None),
        ({"shape": "ellipse", "scale": 4.0}, None),
        ({"shape": "circle"}, ConfigError),
        ({"shape": "Box"}, ConfigError),
        ({"scale": 0.4}, ConfigError),
        ({"scale": 5.0}, ConfigError),
        ({"feather": -0.1}, ConfigError),
        ({"feather": 1.5}, ConfigError),
    ],
)
def test_options(options: dict[str, object], error: type[Exception] | None) -> None:
    if error is None:
        Masker(**options)  # type: ignore[arg-type]
    else:
        with pytest.raises(error):
            Masker(**options)  # type: ignore[arg-type]


def test_drop_moves_the_mask_down_and_keeps_its_size() -> None:
    level = one_region(Masker(drop=0.0, margin=0.0))
    dropped = one_region(Masker(drop=0.1, margin=0.0))
    rows = lambda r: np.nonzero(alpha_image(r).any(axis=1))[0]  # noqa: E731
    shift = rows(dropped).mean() - rows(level).mean()
    height = BOX[3] - BOX[1]
    assert shift == pytest.approx(0.1 * height, abs=1.0)
    assert len(rows(dropped)) == pytest.approx(len(rows(level)), abs=2)


def test_margin_adds_pixels_on_every_side() -> None:
    plain = alpha_image(one_region(Masker(shape="box", scale=1.0, drop=0.0, margin=0.0)))
    grown = alpha_image(one_region(Masker(shape="box", scale=1.0, drop=0.0, margin=3.0)))
    rows = lambda a: np.nonzero(a.any(axis=1))[0]  # noqa: E731
    cols = lambda a: np.nonzero(a.any(axis=0))[0]  # noqa: E731
    assert len(rows(grown)) == pytest.approx(len(rows(plain)) + 6, abs=1)
    assert len(cols(grown)) == pytest.approx(len(cols(plain)) + 6, abs=1)
