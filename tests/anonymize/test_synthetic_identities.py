"""Many synthetic identities: one per track, seeded, never the person's nearest; the larger
replaced area; degree past the synthetic shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from factories import ASTRONAUT_FACE, face_on_canvas
from veil.anonymize._landmarks import apply_affine, similarity
from veil.assets import SYNTHETIC_FACES, SyntheticFaces, load_synthetic_faces
from veil.errors import ConfigError
from veil.mask import Masker, Region
from veil.types import Faces

dlib_only = pytest.mark.dlib


def regions(image: np.ndarray, boxes: list[np.ndarray]) -> list[Region]:
    return Masker().regions(Faces(xyxy=np.asarray(boxes, np.float32)), image.shape)


@pytest.fixture(scope="module")
def synthetic() -> type:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from veil.anonymize.synthetic import SyntheticFace

    return SyntheticFace


# ---------------------------------------------------------------- the shipped set


def test_shipped_faces_are_many_distinct_nobodies_and_small() -> None:
    from importlib import resources

    faces = load_synthetic_faces()
    n = len(faces.textures)
    assert n >= 12
    assert faces.textures.shape[1:] == (faces.textures.shape[1], faces.textures.shape[1], 3)
    # each an average of many identities, none within dlib's 0.6 of any source photo
    assert min(faces.meta["k"]) >= 8
    assert min(faces.meta["min_distance_photo"]) >= 0.6
    # distinct from each other (the build keeps faces at least `spread` apart)
    d = np.linalg.norm(faces.embeddings[:, None] - faces.embeddings[None], axis=2)
    assert d[~np.eye(n, dtype=bool)].min() >= faces.meta["spread"] - 1e-4
    size = resources.files("veil.assets").joinpath(SYNTHETIC_FACES).read_bytes()
    assert len(size) < 3_000_000


# ---------------------------------------------------------------- choosing a face


def _fake_set(n: int = 10) -> SyntheticFaces:
    real = load_synthetic_faces()
    rng = np.random.default_rng(0)
    return SyntheticFaces(
        textures=np.repeat(real.textures[:1], n, axis=0),
        shapes=np.repeat(real.shapes[:1], n, axis=0),
        embeddings=rng.normal(0, 1, (n, 128)).astype(np.float32),
        shape=real.shape,
        meta={},
    )


def _nobodies(far: float = 0.5) -> object:
    from veil.anonymize._nobodies import Nobodies
    from veil.anonymize._warp import CanonicalFrame

    faces = _fake_set()
    return Nobodies(
        frame=CanonicalFrame(faces.shape, faces.textures.shape[1]), faces=faces, far=far
    )


def test_the_person_s_nearest_faces_are_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _nobodies(far=0.5)
    person = gen.faces.embeddings[3] + 0.01  # type: ignore[attr-defined]
    monkeypatch.setattr(gen, "embed", lambda aligned: person)
    d = np.linalg.norm(gen.faces.embeddings - person, axis=1)  # type: ignore[attr-defined]
    nearest_half = set(np.argsort(d)[:5].tolist())
    aligned = np.zeros((8, 8, 3), np.uint8)
    chosen = {gen.choose(aligned, np.random.default_rng(s)) for s in range(60)}  # type: ignore[attr-defined]
    assert chosen.isdisjoint(nearest_half)
    assert len(chosen) == 5  # every eligible face is used by some seed
    # faces taken by other faces of the image are avoided while others remain
    first = gen.choose(aligned, np.random.default_rng(1))  # type: ignore[attr-defined]
    second = gen.choose(aligned, np.random.default_rng(1), taken={first})  # type: ignore[attr-defined]
    assert second != first and second not in nearest_half


def test_far_share_is_checked() -> None:
    with pytest.raises(ConfigError, match="far"):
        _nobodies(far=1.0)


# ---------------------------------------------------------------- per track, per seed


@dlib_only
def test_a_track_keeps_one_face_across_frames_and_tracks_differ(synthetic: type) -> None:
    anonymizer = synthetic(seed=0)
    chosen = []
    for shift in range(0, 12, 3):  # the same person moving a few pixels, frame by frame
        image, box = face_on_canvas(scale=1.0, offset=(shift - 60, 0), canvas=(400, 400))
        (region,) = regions(image, [box])
        anonymizer.apply(image, [dataclasses.replace(region, key=5)])
        chosen.append(anonymizer._textures[5].index)
    assert len(set(chosen)) == 1
    # two people in one frame (two tracks) get two different faces
    image, box = face_on_canvas(scale=0.6, offset=(0, 0), canvas=(320, 640))
    right = image[:, :320].copy()
    image[:, 320:] = right
    both = regions(image, [box, box + np.array([320, 0, 320, 0], np.float32)])
    anonymizer.apply(
        image, [dataclasses.replace(both[0], key=1), dataclasses.replace(both[1], key=2)]
    )
    assert anonymizer._textures[1].index != anonymizer._textures[2].index


@dlib_only
def test_same_seed_same_bytes_and_seeds_give_different_faces(synthetic: type) -> None:
    image = data.astronaut()
    regs = regions(image, [ASTRONAUT_FACE])
    a = synthetic(seed=4).apply(image, regs)
    b = synthetic(seed=4).apply(image, regs)
    np.testing.assert_array_equal(a, b)
    indices, outs = set(), []
    for seed in range(6):
        anonymizer = synthetic(seed=seed)
        outs.append(anonymizer.apply(image, regs))
        indices.add(anonymizer._textures[regs[0].key].index)
    assert len(indices) >= 3
    assert np.abs(outs[0].astype(int) - outs[1]).mean() > 0.5


@dlib_only
def test_a_still_image_of_someone_else_with_the_same_key_gets_a_new_choice(
    synthetic: type,
) -> None:
    from veil.anonymize._nobodies import signature

    anonymizer = synthetic(seed=0)
    a, box = face_on_canvas(scale=1.0, offset=(-60, 0), canvas=(400, 400))
    # someone else on the same spot: the same photo with another synthetic face on it
    b = synthetic(seed=9, generator="mean").apply(a, regions(a, [box]))
    calls = []
    original = anonymizer.generator.generate_face
    anonymizer.generator.generate_face = lambda *a, **k: calls.append(1) or original(*a, **k)
    for image in (a, a, b):
        anonymizer.apply(image, regions(image, [box]))
    assert anonymizer.fallbacks == 0
    assert len(calls) == 2  # made for a, kept for a again, made again for b
    assert signature(np.zeros((160, 160, 3), np.uint8)).shape == (24 * 24,)


@dlib_only
def test_a_track_keeps_its_face_however_its_look_changes(synthetic: type) -> None:
    anonymizer = synthetic(seed=0)
    a, box = face_on_canvas(scale=1.0, offset=(-60, 0), canvas=(400, 400))
    b = synthetic(seed=9, generator="mean").apply(a, regions(a, [box]))  # looks different
    calls = []
    original = anonymizer.generator.generate_face
    anonymizer.generator.generate_face = lambda *a, **k: calls.append(1) or original(*a, **k)
    for image in (a, b, a):
        tracked = Masker().regions(Faces(xyxy=np.asarray([box]), track_id=np.array([7])), a.shape)
        assert tracked[0].tracked and tracked[0].key == 7
        anonymizer.apply(image, tracked)
    assert anonymizer.fallbacks == 0
    assert len(calls) == 1  # one person along the track: one face, made once
    assert not regions(a, [box])[0].tracked  # a still image's face index is not a track


# ---------------------------------------------------------------- degree and replaced area


def test_degree_above_one_goes_past_the_synthetic_shape(synthetic: type) -> None:
    from veil.anonymize.synthetic import target_shape

    mean = load_synthetic_faces().shapes[0]
    rng = np.random.default_rng(0)
    own = (mean * 1.3 + (40, 10) + rng.normal(0, 2, mean.shape)).astype(np.float32)
    fitted = apply_affine(similarity(mean, own), mean)
    past = target_shape(own, mean, 1.5)
    np.testing.assert_allclose(past[:36], own[:36] + 1.5 * (fitted[:36] - own[:36]), atol=1e-3)
    assert np.linalg.norm(past[:36] - own[:36]) > np.linalg.norm(fitted[:36] - own[:36])
    synthetic(degree=2.0)
    with pytest.raises(ConfigError, match="degree"):
        synthetic(degree=2.1)


@dlib_only
def test_the_replaced_area_covers_forehead_and_jaw_contour(synthetic: type) -> None:
    from veil.anonymize._landmarks import LandmarkModel

    image = data.astronaut().copy()
    points = LandmarkModel().locate(image, ASTRONAUT_FACE)
    assert points is not None
    up = points[17:27].mean(0) - points[8]
    cx = points[17:27, 0].mean()
    # her fringe covers the forehead (the replaced area stops at hair): give her a bare one,
    # skin coloured as her cheek, up to 0.5 chin-to-brow lengths above the brows
    top, brows = (int((points[17:27].mean(0) + f * up)[1]) for f in (0.5, 0.05))
    cheek = image[int(points[29, 1]), int(points[2, 0] + points[31, 0]) // 2].astype(int)
    image[top:brows, int(points[0, 0]) : int(points[16, 0])] = cheek
    out = synthetic(seed=0, smoothing=0).apply(image, regions(image, [ASTRONAUT_FACE]))
    diff = np.abs(out.astype(int) - image).sum(2)
    # a band 0.15-0.35 chin-to-brow lengths above the brows: forehead, below the hair line
    y_lo, y_hi = (points[17:27].mean(0) + f * up for f in (0.35, 0.15))
    band = diff[int(y_lo[1]) : int(y_hi[1]), int(cx - 15) : int(cx + 15)]
    assert (band > 6).mean() > 0.5
    # the jaw contour itself (points 4-12) is inside the replaced area
    jaw = points[4:13].round().astype(int)
    near = [diff[y - 2 : y + 3, x - 2 : x + 3].max() for x, y in jaw]
    assert np.mean(np.asarray(near) > 6) > 0.7


@dlib_only
def test_veil_video_gives_the_moving_face_one_synthetic_face(tmp_path: Path) -> None:
    """The outer layer: `veil video` replaces the real face in every frame, and the
    replacement is one face along the track (the same in the first and last frame, where
    another seed's is another face)."""
    import av

    from factories import run_cli
    from video_factory import face_change, face_video

    src, boxes = face_video(tmp_path / "in.mp4", frames=12, size=(320, 240), audio=False)
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"out{seed}.mp4"
        result = run_cli("video", src, "-o", out, "-m", "synthetic", "--seed", seed, "-q")
        assert result.exit_code == 0, result.output
        assert min(face_change(src, out, boxes)) > 8  # the face changed in every frame
        with av.open(str(out)) as c:
            outs.append([f.to_ndarray(format="gray").astype(np.float64) for f in c.decode(video=0)])

    def core(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = box
        dx, dy = (x1 - x0) // 4, (y1 - y0) // 4
        v = frame[y0 + dy : y1 - dy, x0 + dx : x1 - dx].ravel()
        return (v - v.mean()) / (v.std() + 1e-6)

    first, last = core(outs[0][0], boxes[0]), core(outs[0][-1], boxes[-1])
    other = core(outs[1][-1], boxes[-1])
    same, different = float(np.mean(first * last)), float(np.mean(first * other))
    assert same > 0.8 and same > different + 0.1, (same, different)
