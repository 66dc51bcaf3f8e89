"""The run manifest: round trip, torn lines, and when an output counts as complete."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from veil.config import AnonymizerConfig, OutputConfig, RunConfig
from veil.distributed import Record, RunManifest, file_sha256, is_complete, settings_hash
from veil.runner import Job


@pytest.fixture
def job(tmp_path: Path) -> Job:
    src, dst = tmp_path / "in.jpg", tmp_path / "out" / "in.jpg"
    src.write_bytes(b"input bytes")
    dst.parent.mkdir()
    dst.write_bytes(b"output bytes")
    return Job(src, dst)


def _done(job: Job, settings: str = "s1") -> Record:
    return Record.for_job(
        job,
        "done",
        input_sha256=file_sha256(job.source),
        output_sha256=file_sha256(job.target),
        settings=settings,
        attempts=1,
    )


def test_round_trip_keeps_the_latest_done_and_ignores_a_torn_line(tmp_path: Path, job: Job) -> None:
    first = _done(job)
    failed = Record.for_job(job, "failed", reason="boom", attempts=3)
    with RunManifest(tmp_path) as manifest:
        manifest.append(first)
        manifest.append(Record.for_job(job, "skipped"))  # not stored
        manifest.append(failed)
    with open(manifest.path, "a") as fh:
        fh.write('{"source": "torn')  # the driver died mid-line
    records = list(RunManifest(tmp_path).records())
    assert records == [first, failed]
    assert RunManifest(tmp_path).completed() == {str(job.target): first}


def test_complete_only_when_output_input_and_settings_match(job: Job) -> None:
    record = _done(job)
    sha = file_sha256(job.source)
    assert is_complete(job, record, "s1", sha)
    assert not is_complete(job, None, "s1", sha)
    assert not is_complete(job, record, "s2", sha)  # settings changed
    assert not is_complete(job, record, "s1", "0" * 64)  # input changed
    job.target.write_bytes(b"edited after the run")
    assert not is_complete(job, record, "s1", sha)
    job.target.unlink()
    assert not is_complete(job, record, "s1", sha)


def test_settings_hash_ignores_what_does_not_change_outputs() -> None:
    base = RunConfig()
    same = dataclasses.replace(base, workers=7, output=OutputConfig(overwrite=True, report=True))
    assert settings_hash(same) == settings_hash(base)
    other = dataclasses.replace(base, anonymizer=AnonymizerConfig(method="pixelate"))
    assert settings_hash(other) != settings_hash(base)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        Record("a", "b", "maybe")
