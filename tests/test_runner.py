"""``veil.runner.ImageRunner`` with overlapping stages: the same bytes as one job after
the other, fail closed in the middle stage, outcomes in input order, skips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from factories import face_on_canvas
from veil.config import DetectorConfig, OutputConfig, RunConfig
from veil.errors import BackendError
from veil.pipeline import Pipeline
from veil.runner import ImageRunner, plan_jobs
from veil.types import Faces

N = 7
BROKEN = 3  # the image whose detection fails (it alone is 250 px tall)


def _canvas(i: int) -> tuple[int, int]:
    return (250, 320) if i == BROKEN else (240, 320 + 8 * i)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """Seven photos with the astronaut's face at different places, PNG and JPEG, in two
    folders; returns the folder and each file's face box."""
    root = tmp_path_factory.mktemp("faces")
    boxes = {}
    for i in range(N):
        image, box = face_on_canvas(
            scale=0.45 + 0.03 * i, offset=(12 * i, 4 + i), canvas=_canvas(i), seed=i
        )
        name = f"{'a' if i < 4 else 'b'}/face{i}.{'png' if i % 2 else 'jpg'}"
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(root / name, quality=92)
        boxes[name] = box
    return root, boxes


def _config(**output: object) -> RunConfig:
    # one inference thread in both runs, so detections are computed the same way
    detector = DetectorConfig(options={"threads": 1})
    return RunConfig(detector=detector, output=OutputConfig(**output), workers=2)  # type: ignore[arg-type]


def _outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.*"))}


def _load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_overlapped_stages_write_the_same_bytes_as_serial(
    folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    src, boxes = folder
    config = _config(report=True)
    shared = Pipeline.from_config(config)
    results = {}
    for stages in (True, False):
        out = tmp_path / f"stages-{stages}"
        jobs = plan_jobs([src], out)
        summary = ImageRunner(config, shared, stages=stages).run(jobs)
        assert [o.job for o in summary.outcomes] == jobs, "outcomes in input order"
        assert summary.count("done") == N
        results[stages] = _outputs(out)
    assert len(results[True]) == 2 * N  # images and audit JSON
    images = {k: v for k, v in results[True].items() if not k.endswith(".json")}
    assert images == {k: v for k, v in results[False].items() if not k.endswith(".json")}
    for name, box in boxes.items():  # and the faces really were anonymized
        x0, y0, x1, y1 = box.astype(int)
        before = _load(src / name)[y0:y1, x0:x1]
        after = _load(tmp_path / "stages-True" / name)[y0:y1, x0:x1]
        assert np.abs(after - before).mean() > 20, name


@pytest.mark.parametrize("error", [BackendError("model exploded"), RuntimeError("a bug")])
def test_detection_failure_in_the_middle_stage_writes_nothing_for_that_file(
    folder: tuple[Path, dict[str, np.ndarray]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    src, _ = folder
    real = Pipeline.detect

    def detect(self: Pipeline, image: np.ndarray) -> Faces:
        if image.shape[0] == _canvas(BROKEN)[0]:
            raise error
        return real(self, image)

    monkeypatch.setattr(Pipeline, "detect", detect)
    out = tmp_path / "out"
    jobs = plan_jobs([src], out)
    summary = ImageRunner(_config(report=True)).run(jobs)
    assert [o.job for o in summary.outcomes] == jobs
    statuses = [o.status for o in summary.outcomes]
    assert statuses == ["done"] * BROKEN + ["failed"] + ["done"] * (N - BROKEN - 1)
    failed = summary.failed[0]
    assert str(error) in (failed.error or "")
    assert not failed.job.target.exists()
    assert not Path(f"{failed.job.target}.audit.json").exists()
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(written) == 2 * (N - 1), "every other image and its audit, no temp file"


def test_existing_outputs_are_skipped_in_place(
    folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    src, _ = folder
    out = tmp_path / "out"
    jobs = plan_jobs([src], out)
    for k in (0, 5):
        jobs[k].target.parent.mkdir(parents=True, exist_ok=True)
        jobs[k].target.write_bytes(b"done before")
    summary = ImageRunner(_config()).run(jobs)
    assert [o.job for o in summary.outcomes] == jobs
    assert [o.status == "skipped" for o in summary.outcomes] == [k in (0, 5) for k in range(N)]
    assert jobs[0].target.read_bytes() == b"done before"
    assert summary.count("done") == N - 2
