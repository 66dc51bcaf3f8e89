from __future__ import annotations

import numpy as np
import pytest

import veil
from veil.errors import InputError
from veil.types import Faces, Frame


def faces3() -> Faces:
    return Faces(
        xyxy=[[0, 0, 10, 10], [5, 5, 20, 25], [30, 30, 40, 44]],
        scores=[0.9, 0.5, 0.7],
        track_id=[1, 2, 3],
        data={"tag": ["a", "b", "c"]},
    )


def test_faces_validates_and_converts() -> None:
    f = faces3()
    assert f.xyxy.dtype == np.float32 and f.xyxy.shape == (3, 4)
    assert f.scores is not None and f.scores.dtype == np.float32
    assert f.track_id is not None and f.track_id.dtype == np.int64
    np.testing.assert_allclose(f.sizes, [10, 17.5, 12])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": [[0, 0, 1]]}, "xyxy"),
        ({"xyxy": [[5, 0, 1, 1]]}, "x0 <= x1"),
        ({"xyxy": [[0, 0, np.nan, 1]]}, "NaN"),
        ({"xyxy": [[0, 0, 1, 1]], "scores": [0.1, 0.2]}, "scores"),
        ({"xyxy": [[0, 0, 1, 1]], "landmarks": np.zeros((1, 4, 2))}, "landmarks"),
        ({"xyxy": [[0, 0, 1, 1]], "data": {"k": [1, 2]}}, "data"),
    ],
)
def test_faces_rejects_bad_fields(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Faces(**kwargs)


@pytest.mark.parametrize(
    ("index", "expected"),
    [(1, [2]), (slice(0, 2), [1, 2]), (np.array([True, False, True]), [1, 3]), ([2, 0], [3, 1])],
)
def test_faces_indexing_keeps_fields_parallel(index: object, expected: list[int]) -> None:
    sub = faces3()[index]  # type: ignore[index]
    assert sub.track_id is not None
    assert sub.track_id.tolist() == expected
    assert sub.data["tag"] == [["a", "b", "c"][i - 1] for i in expected]


def test_merge_empty_and_clip() -> None:
    merged = Faces.merge([faces3(), Faces.empty(), faces3()[0]])
    assert len(merged) == 4 and merged.track_id is not None
    assert len(Faces.merge([])) == 0
    clipped = faces3().clip((12, 12))
    assert len(clipped) == 2
    assert clipped.xyxy.max() <= 12
    records = faces3().to_records()
    assert records[0]["box"] == [0.0, 0.0, 10.0, 10.0] and records[0]["track_id"] == 1


def test_frame_validates_image_and_depth() -> None:
    img = np.zeros((4, 6, 3), np.uint8)
    assert Frame(img).shape == (4, 6)
    Frame(img, depth=np.zeros((4, 6), np.float32))
    with pytest.raises(InputError, match="depth"):
        Frame(img, depth=np.zeros((4, 5), np.float32))
    with pytest.raises(InputError, match="uint8"):
        Frame(img.astype(np.float32))


def test_public_api_names_exist() -> None:
    for name in veil.__all__:
        assert hasattr(veil, name), name
    names = ("anonymize_image", "detect_faces", "Pipeline", "Faces", "Frame", "RunConfig")
    for name in (*names, "ConsentConfig", "RegionConfig"):
        assert name in veil.__all__
