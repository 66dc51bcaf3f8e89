"""``veil batch`` with the local engine: end to end, resume, retries, the run audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from factories import face_on_canvas
from veil.commands.batch import batch
from veil.distributed import RUNS_DIR, RunManifest
from video_factory import face_change, face_video, face_video_boxes

N_IMAGES = 6


def make_dataset(root: Path) -> Path:
    """Six face images (jpg/png, in sub-folders) and one tiny video."""
    for i in range(N_IMAGES):
        image, _ = face_on_canvas(scale=0.4 + 0.05 * i, offset=(10 * i, 5), seed=i)
        path = root / f"set{i % 2}" / f"face{i}.{'jpg' if i % 2 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    (root / "clips").mkdir()
    face_video(root / "clips" / "walk.mp4", frames=8, size=(160, 120), audio=False)
    return root


def invoke(*args: object) -> Result:
    return CliRunner().invoke(batch, [str(a) for a in args], catch_exceptions=False)


def outputs(dest: Path) -> dict[str, bytes]:
    files = (p for p in dest.rglob("*") if p.is_file() and RUNS_DIR not in p.parts)
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def test_end_to_end_then_rerun_skips_everything(dataset: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    first = invoke(dataset, "-o", dest, "--seed", 3, "-q")
    assert first.exit_code == 0, first.output
    assert f"{N_IMAGES + 1} done, 0 skipped, 0 failed" in first.output
    produced = outputs(dest)
    assert set(produced) == {
        *(f"set{i % 2}/face{i}.{'jpg' if i % 2 else 'png'}" for i in range(N_IMAGES)),
        "clips/walk.mp4",
    }
    assert all(produced[k] != (dataset / k).read_bytes() for k in produced)
    walk = face_change(
        dataset / "clips/walk.mp4", dest / "clips/walk.mp4", face_video_boxes(8, (160, 120))
    )
    assert min(walk) > 15  # the face changed in every frame, not only re-encoded

    second = invoke(dataset, "-o", dest, "--seed", 3, "-q")
    assert "0 done, 7 skipped, 0 failed" in second.output
    assert outputs(dest) == produced
    done = [r for r in RunManifest(dest).records() if r.status == "done"]
    assert len(done) == len({r.target for r in done}) == N_IMAGES + 1
    audits = sorted((dest / RUNS_DIR).glob("*.json"))
    assert len(audits) == 2
    assert json.loads(audits[-1].read_text())["counts"] == {"done": 0, "skipped": 7, "failed": 0}


def test_edited_output_and_changed_settings_are_redone(dataset: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    invoke(dataset, "-o", dest, "-q", "--seed", 1)
    (dest / "set0" / "face0.png").write_bytes(b"tampered")
    rerun = invoke(dataset, "-o", dest, "--seed", 1, "-q")
    assert "1 done, 6 skipped" in rerun.output
    assert (dest / "set0" / "face0.png").read_bytes()[:4] == b"\x89PNG"
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"anonymizer": {"method": "pixelate", "seed": 1}}))
    changed = invoke(dataset, "-o", dest, "--settings", settings, "-q")
    assert "7 done, 0 skipped" in changed.output


def test_corrupt_input_is_retried_then_recorded(dataset: Path, tmp_path: Path) -> None:
    source = tmp_path / "mixed"
    source.mkdir()
    for p in sorted((dataset / "set0").iterdir()):
        (source / p.name).write_bytes(p.read_bytes())
    (source / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    dest = tmp_path / "out"
    result = invoke(source, "-o", dest, "--retries", 2, "-q")
    assert result.exit_code == 1
    assert "3 done, 0 skipped, 1 failed" in result.output
    assert "failed: " in result.output and "broken.jpg" in result.output
    assert not (dest / "broken.jpg").exists()
    (failed,) = [r for r in RunManifest(dest).records() if r.status == "failed"]
    assert failed.attempts == 3 and "broken.jpg" in (failed.reason or "")
    audit = json.loads(next((dest / RUNS_DIR).glob("*.json")).read_text())
    assert audit["failed"][0]["attempts"] == 3
    assert audit["settings"]["anonymizer"]["method"] == "gaussian"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "Invalid value for '--engine'"),
        (["--detector", "nope"], "unknown"),
    ],
)
def test_bad_options(dataset: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(dataset, "-o", tmp_path / "out", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_run_ids_sort_in_start_order() -> None:
    import time

    from veil.distributed import new_run_id

    ids = []
    for _ in range(5):  # runs a millisecond apart (real runs are much further apart)
        ids.append(new_run_id())
        time.sleep(0.001)
    assert ids == sorted(ids) and len(set(ids)) == 5
