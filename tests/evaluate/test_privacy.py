"""Privacy metrics: hand-computable identity metrics, folder pairing, end-to-end runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas, flat_grey
from veil.boxes import box_iou
from veil.commands.eval import eval_group
from veil.errors import ConfigError, InputError, MissingExtraError
from veil.evaluate.identity import (
    FaceEmbedder,
    linkage_rank1,
    pairwise_distances,
    privacy_band,
    reidentification,
    share_within,
)
from veil.evaluate.privacy import OriginalCache, PrivacyConfig, evaluate_privacy, pair_folders

# --- metrics on hand-made embeddings ---------------------------------------------------------

EYE = np.eye(4)  # four photos, each at distance sqrt(2) from every other


def test_linkage_identity_mapping_is_one_and_constant_queries_are_chance() -> None:
    assert linkage_rank1(EYE, EYE) == 1.0
    assert linkage_rank1(np.zeros((4, 4)), EYE) == 0.25  # all tie: only row 0 "wins"
    assert linkage_rank1(EYE[[1, 0, 2, 3]], EYE) == 0.5  # two swapped
    assert math.isnan(linkage_rank1(np.zeros((0, 4)), np.zeros((0, 4))))


def test_share_within_uses_own_original_and_strict_threshold() -> None:
    queries = EYE + np.array([[0.1], [0.59], [0.6], [2.0]]) * np.array([1, 0, 0, 0])
    assert pairwise_distances(queries, EYE)[[0, 1, 2, 3], [0, 1, 2, 3]] == pytest.approx(
        [0.1, 0.59, 0.6, 2.0]
    )
    assert share_within(queries, EYE) == 0.5


def test_reidentification_hand_computed() -> None:
    # persons a, a, b, b; originals on a line at 0, 1, 10, 11
    originals = np.array([[0.0], [1.0], [10.0], [11.0]])
    queries = np.array([[0.0], [9.0], [10.0], [11.0]])  # query 1 now looks like person b
    r = reidentification(queries, originals, ["a", "a", "b", "b"])
    # query 0: gallery 1,2,3 -> nearest 1 (a): hit, AP 1
    # query 1: gallery 0,2,3 at 9,1,2 -> b, b, a: miss, AP 1/3
    # queries 2, 3: nearest is the other b: hits, AP 1
    assert r.queries == 4
    assert r.rank1 == 0.75
    assert r.mean_ap == pytest.approx((1 + 1 / 3 + 1 + 1) / 4)
    assert r.chance_rank1 == pytest.approx(1 / 3)


def test_reidentification_skips_queries_without_positives() -> None:
    r = reidentification(EYE[:3], EYE[:3], ["a", "a", "b"])
    assert r.queries == 2
    assert math.isnan(reidentification(EYE, EYE, list("abcd")).rank1)


@pytest.mark.parametrize(
    ("share", "band"),
    [
        (0.0, "excellent"),
        (0.099, "excellent"),
        (0.10, "good"),
        (0.249, "good"),
        (0.25, "moderate"),
        (0.50, "moderate"),
        (0.51, "poor"),
        (1.0, "poor"),
        (float("nan"), "n/a"),
    ],
)
def test_privacy_bands(share: float, band: str) -> None:
    assert privacy_band(share) == band


# --- folders ---------------------------------------------------------------------------------

VARIANTS = [  # two real people (p0, p1), two photos each: positions, scales, mirrors
    {"scale": 0.5, "offset": (40, 0)},
    {"scale": 0.5, "offset": (60, 0), "mirror": True},
    {"scale": 0.6, "offset": (-40, -20), "person": "cameraman"},
    {"scale": 0.55, "offset": (0, 0), "mirror": True, "person": "cameraman"},
]


def _gallery(root: Path, fill: int | None = None) -> Path:
    """``root/p<k>/<i>.png``: the variants, or solid images of ``fill`` of the same size."""
    for i, variant in enumerate(VARIANTS):
        image, _ = face_on_canvas(**variant, seed=i)  # type: ignore[arg-type]
        if fill is not None:
            image = flat_grey(image.shape[:2], fill)
        (root / f"p{i // 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / f"p{i // 2}" / f"{i}.png")
    return root


def test_pair_folders_reports_files_missing_on_either_side(tmp_path: Path) -> None:
    original, anonymized = _gallery(tmp_path / "o"), _gallery(tmp_path / "a")
    (anonymized / "p0" / "0.png").unlink()
    Image.fromarray(flat_grey((8, 8))).save(anonymized / "extra.png")
    (anonymized / "p1" / "2.png").rename(anonymized / "p1" / "2.jpg.png")
    pairs = pair_folders(original, anonymized)
    assert [rel for rel, _, _ in pairs.pairs] == ["p0/1.png", "p1/3.png"]
    assert pairs.missing_anonymized == ["p0/0.png", "p1/2.png"]
    assert pairs.missing_original == ["extra.png", "p1/2.jpg.png"]


@pytest.mark.parametrize(
    ("make", "message"),
    [("none", "not a folder"), ("empty", "no image files")],
)
def test_pair_folders_refuses_missing_or_empty_folders(
    tmp_path: Path, make: str, message: str
) -> None:
    anonymized = tmp_path / "a"
    if make == "empty":
        anonymized.mkdir()
    with pytest.raises(InputError, match=message):
        pair_folders(_gallery(tmp_path / "o"), anonymized)


def test_unknown_attack_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown attack"):
        PrivacyConfig(attacks=("nope",))


def test_missing_dlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(
        MissingExtraError, match=r"pip install .* \(in a clone of veil: pip install '\.\[dlib\]'\)"
    ):
        FaceEmbedder()


# --- with dlib -------------------------------------------------------------------------------

# HOG misses the mirrored cameraman: CenterFace locates him
FAST = PrivacyConfig(
    detectors=("dlib-hog", "haar"), attacks=(), locators=("dlib-hog", "centerface")
)


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    return FaceEmbedder()


@pytest.mark.dlib
def test_embedder_embeds_a_given_box_and_finds_faces(embedder: FaceEmbedder) -> None:
    image, box = face_on_canvas()
    vector = embedder.embed(image, box)
    assert vector.dtype == np.float32 and vector.shape == (128,)
    faces, vectors = embedder.find_and_embed(image)
    assert vectors.shape == (len(faces), 128)
    best = int(np.argmax(box_iou(faces.xyxy, box[None])[:, 0]))
    assert box_iou(faces.xyxy[best : best + 1], box[None])[0, 0] > 0.5
    assert np.linalg.norm(vectors[best] - vector) < 0.3  # same face, slightly different box
    blank = embedder.embed(flat_grey(), box)  # no face there: still an embedding
    assert blank.shape == (128,) and np.isfinite(blank).all()


@pytest.mark.dlib
def test_identity_mapping_leaks_everything(tmp_path: Path, embedder: FaceEmbedder) -> None:
    folder = _gallery(tmp_path / "o")
    report = evaluate_privacy(folder, folder, FAST, embedder=embedder)
    assert len(report.evaluated) == 4
    (none,) = report.leakage
    assert none.linkage_rank1 == 1.0 and none.linkage_chance == 0.25
    assert none.within == 1.0 and report.band == "poor"
    assert none.reid.queries == 4  # <person>/<image> layout: 2 people x 2 photos
    assert none.reid.rank1 > none.reid.chance_rank1  # two different people, told apart
    hog = next(r for r in report.residual if r.detector == "dlib-hog")
    assert hog.original_rate == hog.anonymized_rate == 0.75  # the mirrored cameraman


@pytest.mark.dlib
def test_solid_fill_leaves_nothing_to_detect_or_link(
    tmp_path: Path, embedder: FaceEmbedder
) -> None:
    original, anonymized = _gallery(tmp_path / "o"), _gallery(tmp_path / "a", fill=128)
    config = PrivacyConfig(detectors=("dlib-hog", "haar"), attacks=("wiener",))
    report = evaluate_privacy(original, anonymized, config, embedder=embedder)
    assert all(r.anonymized_rate == 0.0 for r in report.residual)
    for row in report.leakage:  # every query embeds the same grey: exactly chance
        assert row.linkage_rank1 == row.linkage_chance == 0.25
    # a grey square may still fall within 0.6 of some face: dlib's threshold is for faces
    worst = report.worst
    assert worst is not None and report.band == privacy_band(worst.within)
    assert [r.attack for r in report.leakage] == ["none", "wiener"]
    assert report.baseline is not None and report.baseline.linkage_rank1 == 1.0


@pytest.mark.dlib
def test_unmeasurable_pairs_are_listed(tmp_path: Path, embedder: FaceEmbedder) -> None:
    original, anonymized = _gallery(tmp_path / "o"), _gallery(tmp_path / "a")
    Image.fromarray(flat_grey()).save(original / "p0" / "0.png")  # no face to find
    Image.fromarray(flat_grey((100, 100))).save(anonymized / "p0" / "1.png")  # other size
    (anonymized / "p1" / "2.png").write_bytes(b"broken")
    report = evaluate_privacy(original, anonymized, FAST, embedder=embedder)
    assert report.no_face == ["p0/0.png"]
    assert report.size_mismatch == [("p0/1.png", "320x240 vs 100x100")]
    assert [f for f, _ in report.unreadable] == ["p1/2.png"]
    assert report.evaluated == ["p1/3.png"]
    assert report.leakage[0].reid.queries == 0  # nobody left with a second photo
    json.dumps(report.to_dict(), allow_nan=False)


def _blurred(root: Path, source: Path) -> Path:
    """``source`` with a light blur: faces stay findable, embeddings move a little."""
    for path in source.rglob("*.png"):
        out = root / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(cv2.GaussianBlur(np.asarray(Image.open(path)), (0, 0), 2)).save(out)
    return root


@pytest.mark.dlib
def test_originals_cache_measures_each_original_once(
    tmp_path: Path, embedder: FaceEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _gallery(tmp_path / "o")
    anonymized = _blurred(tmp_path / "a", original)
    Image.fromarray(flat_grey()).save(original / "p0" / "0.png")  # no face: cached too
    config = PrivacyConfig(
        detectors=("dlib-hog",), attacks=("denoise",), locators=("dlib-hog", "centerface")
    )
    fresh = evaluate_privacy(original, anonymized, config, embedder=embedder).to_dict()
    cache: OriginalCache = {}
    first = evaluate_privacy(original, anonymized, config, embedder=embedder, originals=cache)
    assert sorted(cache) == ["p0/0.png", "p0/1.png", "p1/2.png", "p1/3.png"]
    assert cache["p0/0.png"].box is None and cache["p0/1.png"].embedding is not None

    def refuse(*_: object) -> None:
        raise AssertionError("an original was measured again")

    monkeypatch.setattr("veil.evaluate._privacy_pairs._PairMeter.original", refuse)
    again = evaluate_privacy(original, anonymized, config, embedder=embedder, originals=cache)
    assert first.to_dict() == again.to_dict() == fresh
    assert again.no_face == ["p0/0.png"]


@pytest.mark.dlib
@pytest.mark.slow
def test_workers_give_the_same_numbers(tmp_path: Path, embedder: FaceEmbedder) -> None:
    original = _gallery(tmp_path / "o")
    anonymized = _blurred(tmp_path / "a", original)
    (anonymized / "p1" / "2.png").write_bytes(b"broken")  # failures keep their place too
    config = PrivacyConfig(
        detectors=("dlib-hog",), attacks=("wiener",), locators=("dlib-hog", "centerface")
    )
    one = evaluate_privacy(original, anonymized, config, embedder=embedder)
    two = evaluate_privacy(original, anonymized, config, workers=2)
    assert one.to_dict() == two.to_dict()
    assert [f for f, _ in two.unreadable] == ["p1/2.png"] and len(two.evaluated) == 3


@pytest.mark.dlib
def test_cli_privacy_table_and_json(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    original, anonymized = _gallery(tmp_path / "o"), _gallery(tmp_path / "a", fill=0)
    (anonymized / "p1" / "3.png").unlink()
    out = tmp_path / "r.json"
    args = ["privacy", "--original", str(original), "--anonymized", str(anonymized)]
    args += ["--detectors", "dlib-hog", "--attacks", "denoise", "--json", str(out), "-q"]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 0, result.output
    assert "missing in the anonymized folder: 1 (p1/3.png)" in result.output
    assert "privacy band:" in result.output and "linkage@1" in result.output
    data = json.loads(out.read_text())
    assert data["evaluated"] == 3 and data["leakage"][0]["linkage_chance"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attacks", "nope"], "unknown attack nope"),
        (["--detectors", "nope"], "unknown detector nope"),
        (["--anonymized", "missing"], "not a folder"),
    ],
)
def test_cli_privacy_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    folder = _gallery(tmp_path / "o")
    args = ["privacy", "--original", str(folder), "--anonymized", str(folder), *extra]
    result = CliRunner().invoke(eval_group, args)
    assert result.exit_code == 2 and "veil: error:" in result.output and message in result.output
