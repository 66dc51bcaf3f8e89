"""Consent keep-list (--keep) and erasure list (--only): real detector, real dlib
embeddings, and pixels checked on the packaged astronaut and cameraman (two people)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from factories import box_change as changed
from factories import face_on_canvas, two_people
from factories import load_rgb as load
from factories import run_cli as run
from factories import save_png as save
from veil.config import ConsentConfig, RunConfig
from veil.consent import ConsentList, FaceCheck, TrackConsent, reference_photos
from veil.errors import ConfigError, InputError
from veil.pipeline import Pipeline
from veil.types import Faces

SIZE = (300, 640)  # canvas of each scene


def reference(tmp_path: Path, name: str = "ada.png", **kw: object) -> Path:
    image, _ = face_on_canvas(canvas=(300, 400), **kw)  # type: ignore[arg-type]
    return save(tmp_path / name, image)


# --- without dlib: configuration and reference discovery -------------------------------------


def test_keep_and_only_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be combined"):
        ConsentConfig(keep=("a.png",), only=("b.png",))
    photo = save(tmp_path / "in.png", face_on_canvas()[0])
    result = run("anonymize", photo, "-o", tmp_path / "o.png", "--keep", photo, "--only", photo)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "--keep and --only cannot be combined" in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "o.png").exists()


def test_consent_settings_round_trip_through_settings_files() -> None:
    from veil.distributed.manifest import settings_hash

    config = RunConfig(consent=ConsentConfig(keep=("refs",), keep_threshold=0.4))
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert "consent" not in RunConfig().to_dict()  # ordinary runs: settings as before
    assert settings_hash(config) != settings_hash(RunConfig())  # batch redoes the work


def test_reference_people_are_files_or_sub_folders(tmp_path: Path) -> None:
    for name in ("refs/ada.png", "refs/bob/1.jpg", "refs/bob/2.png", "refs/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = reference_photos([tmp_path / "refs"])
    assert [(p, f.relative_to(tmp_path).as_posix()) for p, f in found] == [
        ("ada", "refs/ada.png"),
        ("bob", "refs/bob/1.jpg"),
        ("bob", "refs/bob/2.png"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no reference photos"):
        reference_photos([tmp_path / "empty"])


# --- with dlib -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> object:
    pytest.importorskip("dlib")
    from veil.evaluate.identity import FaceEmbedder

    return FaceEmbedder()


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline.from_config(RunConfig())


def consent_list(
    pipeline: Pipeline, embedder: object, mode: str, people: dict[str, np.ndarray]
) -> ConsentList:
    """A list whose references are the one face the pipeline finds in each image."""
    vectors = []
    for image in people.values():
        (box,) = pipeline.detect(image).xyxy
        vectors.append(embedder.embed(image, box))  # type: ignore[attr-defined]
    return ConsentList(mode, list(people), np.asarray(vectors), ConsentConfig(), embedder)


def test_cli_keep_leaves_the_consenting_person_and_hides_the_other(
    tmp_path: Path, embedder: object
) -> None:
    image, a_box, c_box = two_people()
    src = save(tmp_path / "scene.png", image)
    ref = reference(tmp_path / "refs", seed=7)
    result = run("anonymize", src, "-o", tmp_path / "out.png", "--keep", ref, "--report")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = load(tmp_path / "out.png")
    assert changed(out, image, a_box) == 0.0  # kept: exactly as it was
    assert changed(out, image, c_box) > 8.0  # the other person: anonymized
    audit = json.loads((tmp_path / "out.png.audit.json").read_text())
    (kept,) = audit["kept"]
    assert kept["person"] == "ada" and 0.0 <= kept["distance"] < 0.45
    assert len(audit["faces"]) == 1 and audit["settings"]["consent"]["mode"] == "keep"


def test_cli_only_hides_the_listed_person_and_never_less(tmp_path: Path, embedder: object) -> None:
    image, a_box, c_box = two_people()
    src = save(tmp_path / "scene.png", image)
    ref = reference(tmp_path, seed=7)
    result = run("anonymize", src, "-o", tmp_path / "out.png", "--only", ref)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = load(tmp_path / "out.png")
    assert changed(out, image, a_box) > 8.0  # the listed person
    # the cameraman is in profile: too turned to embed reliably, so hidden as well
    assert changed(out, image, c_box) > 8.0


def test_only_leaves_a_reliably_different_face(pipeline: Pipeline, embedder: object) -> None:
    image, a_box, c_box = two_people()
    cam, _ = face_on_canvas(person="cameraman", scale=0.8, canvas=(300, 400))
    pipeline.consent = consent_list(pipeline, embedder, "only", {"cam": cam})
    try:
        result = pipeline.process(image)
    finally:
        pipeline.consent = None
    assert changed(result.image, image, a_box) == 0.0  # not on the list: left as it is
    assert changed(result.image, image, c_box) > 8.0  # the listed person
    assert len(result.kept) == 1 and result.kept.data["consent_distance"][0] > 0.6


@pytest.mark.parametrize(
    ("content", "message"),
    [("noise", "found no face"), ("two", "found 2 faces"), ("tiny", "is small")],
)
def test_cli_bad_reference_photo_is_named(
    tmp_path: Path, embedder: object, content: str, message: str
) -> None:
    if content == "noise":
        ref_image = np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)
    elif content == "two":
        ref_image = two_people()[0]
        ref_image[:, 320:] = ref_image[:, :320]  # the astronaut twice
    else:
        ref_image = face_on_canvas(scale=0.3, canvas=(200, 200))[0]
    ref = save(tmp_path / "refs" / "bad.png", ref_image)
    src = save(tmp_path / "in.png", two_people()[0])
    result = run("anonymize", src, "-o", tmp_path / "out.png", "--keep", tmp_path / "refs")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert str(ref) in result.output and message in result.output  # type: ignore[attr-defined]
    assert not (tmp_path / "out.png").exists()


def test_tiny_face_of_the_consenting_person_is_anonymized(tmp_path: Path, embedder: object) -> None:
    image, a_box, _ = two_people(astronaut_scale=0.35)  # face ~34 px, under the 40 px minimum
    src = save(tmp_path / "scene.png", image)
    ref = reference(tmp_path, seed=7)
    result = run("anonymize", src, "-o", tmp_path / "out.png", "--keep", ref, "--report")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert changed(load(tmp_path / "out.png"), image, a_box) > 8.0
    assert json.loads((tmp_path / "out.png.audit.json").read_text())["kept"] == []


def test_ambiguous_match_is_anonymized(pipeline: Pipeline, embedder: object) -> None:
    image, a_box, _ = two_people()
    ada = face_on_canvas(canvas=(300, 400), seed=7)[0]
    twin = face_on_canvas(scale=0.55, canvas=(300, 400), seed=8)[0]  # as close as ada
    for people, expect_kept in [({"ada": ada}, True), ({"ada": ada, "twin": twin}, False)]:
        pipeline.consent = consent_list(pipeline, embedder, "keep", people)
        try:
            result = pipeline.process(image)
        finally:
            pipeline.consent = None
        assert (changed(result.image, image, a_box) == 0.0) is expect_kept, people.keys()


def test_blurred_face_is_not_matched(pipeline: Pipeline, embedder: object) -> None:
    import cv2

    image = two_people()[0]
    blurred = cv2.GaussianBlur(image, (0, 0), 3.0)
    ada = face_on_canvas(canvas=(300, 400), seed=7)[0]
    consent = consent_list(pipeline, embedder, "keep", {"ada": ada})
    faces = pipeline.detect(blurred)
    checks = consent.check(blurred, faces)
    assert [c.reason for c in checks].count("blurred") >= 1
    assert all(consent.hidden(c)[0] for c in checks)


# --- video: per-track decisions --------------------------------------------------------------


class Scripted:
    """A stand-in ConsentList whose faces match or not as scripted (one per call)."""

    mode = "keep"

    def __init__(self, script: list[bool]) -> None:
        self.script = list(script)

    def check(self, image: np.ndarray, faces: Faces) -> list[FaceCheck]:
        return [FaceCheck(None, np.zeros(128, np.float32)) for _ in range(len(faces))]

    def match(self, check: FaceCheck) -> tuple[bool, float, str | None]:
        ok = self.script.pop(0)
        return ok, 0.2 if ok else 0.7, "ada"


def track_run(script: list[bool], frames: int) -> list[bool]:
    """Whether the one track is kept on each of ``frames`` detected frames."""
    votes = TrackConsent(Scripted(script))  # type: ignore[arg-type]
    face = Faces(xyxy=[[0, 0, 50, 50]], track_id=[3], data={"source": ["detected"]})
    image = np.zeros((64, 64, 3), np.uint8)
    return [len(votes.split(lambda: image, face)[1]) == 1 for _ in range(frames)]


def test_track_matching_in_a_minority_of_frames_is_never_kept() -> None:
    # measured on frames 0, 4, 8, 12: match, no, no, no -> never 60 %
    assert track_run([True, False, False, False], 16) == [False] * 16


def test_track_is_kept_once_decided_and_never_flickers() -> None:
    kept = track_run([True, True, True] + [True] * 8, 14)
    assert kept == [False] * 8 + [True] * 6  # hidden until the third measure (frame 8)


def test_kept_track_that_turns_into_someone_else_stays_hidden() -> None:
    kept = track_run([True, True, True, True, False] + [True] * 10, 18)
    assert kept == [False] * 8 + [True] * 2 + [False] * 8  # someone else on frame 10


def test_video_track_matching_in_a_minority_of_frames_is_anonymized_in_every_frame(
    pipeline: Pipeline, embedder: object
) -> None:
    from veil.video.pipeline import FrameAnonymizer, VideoConfig

    ada = face_on_canvas(canvas=(300, 400), seed=7)[0]
    pipeline.consent = consent_list(pipeline, embedder, "keep", {"ada": ada})
    try:
        frames = FrameAnonymizer(pipeline, VideoConfig(detect_every=1, lookahead=0))
        out = []
        for i in range(12):  # the astronaut on 4 frames, then the cameraman in her place
            image, box = (
                face_on_canvas(scale=0.6, offset=(60, 20), canvas=(240, 320), seed=i)
                if i < 4
                else face_on_canvas(
                    person="cameraman", scale=0.9, offset=(-13, -56), canvas=(240, 320), seed=i
                )
            )
            out += [(image, box, pf) for pf in frames.push(image, i)]
        out += [(None, None, pf) for pf in frames.flush()]
    finally:
        pipeline.consent = None
    assert len(out) == 12
    ids = {int(pf.faces.track_id[np.argmin(pf.faces.xyxy[:, 0])]) for _, _, pf in out}
    assert len(ids) == 1  # the face is one track throughout: the decision is the track's
    for image, box, pf in out:
        assert not len(pf.kept), pf.index
        assert changed(pf.image, image, box) > 8.0, pf.index


def test_cli_video_keeps_a_consenting_track_once_decided(tmp_path: Path, embedder: object) -> None:
    from video_factory import face_change, face_video

    src, boxes = face_video(tmp_path / "in.mp4", frames=14, audio=False)
    ref = reference(tmp_path, seed=7)
    out = tmp_path / "out.mp4"
    args = ["--keep", ref, "--detect-every", 1, "--report", "-q"]
    result = run("video", src, "-o", out, *args)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    change = face_change(src, out, boxes)
    # measured on frames 0, 4, 8: anonymized until the third match, kept from then on
    assert all(c > 8.0 for c in change[:8]), change
    assert all(c < 3.0 for c in change[8:]), change  # re-encoding only
    frames = json.loads((tmp_path / "out.mp4.audit.json").read_text())["frames"]
    assert [bool(f.get("kept")) for f in frames] == [False] * 8 + [True] * 6
    assert all(0 <= f["kept"][0]["distance"] < 0.45 for f in frames[8:])


def test_track_seen_only_backfilled_or_predicted_is_anonymized() -> None:
    votes = TrackConsent(Scripted([]))  # type: ignore[arg-type]
    face = Faces(xyxy=[[0, 0, 50, 50]], track_id=[5], data={"source": ["backfilled"]})
    image = np.zeros((64, 64, 3), np.uint8)
    hidden, kept = votes.split(lambda: image, face)
    assert len(hidden) == 1 and not len(kept)


def test_only_track_is_shown_after_three_non_matches_and_hidden_for_good_after_a_match() -> None:
    script = [False, False, False, False, False, True] + [False] * 10
    scripted = Scripted(script)
    scripted.mode = "only"
    votes = TrackConsent(scripted)  # type: ignore[arg-type]
    face = Faces(xyxy=[[0, 0, 50, 50]], track_id=[3], data={"source": ["detected"]})
    image = np.zeros((64, 64, 3), np.uint8)
    shown = [len(votes.split(lambda: image, face)[1]) == 1 for _ in range(26)]
    # measured on frames 0, 4, 8 (shown from 8), then on every frame while shown: 9, 10,
    # 11 (a match: hidden for good)
    assert shown == [False] * 8 + [True] * 3 + [False] * 15
