"""The run manifest: what a batch run has finished, so a re-run can skip it.

``DEST/.veil-runs/manifest.jsonl`` is append-only JSON lines, one :class:`Record` per
finished or failed job, written only by the driver. An output counts as complete only
when the last ``done`` record for its target has the same input sha256 and the same
settings hash as now, *and* the file on disk still has the recorded output sha256: an
output edited, truncated or deleted after the run, a changed input or changed settings
all mean "do it again".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from veil import __version__
from veil.config import RunConfig
from veil.errors import OutputError
from veil.files import Job, file_sha256

__all__ = ["MANIFEST_NAME", "RUNS_DIR", "Record", "RunManifest", "file_sha256", "settings_hash"]


log = logging.getLogger(__name__)

RUNS_DIR = ".veil-runs"
"""Folder under DEST holding the manifest and one audit JSON per run (hidden: never an input)."""
MANIFEST_NAME = "manifest.jsonl"

STATUSES = ("done", "skipped", "failed")


def settings_hash(config: RunConfig) -> str:
    """Hash of everything that changes output bytes: the config minus ``workers``,
    ``overwrite`` and ``report``, plus the veil version."""
    data = config.to_dict()
    data.pop("workers", None)
    for key in ("overwrite", "report"):
        data["output"].pop(key, None)
    text = json.dumps({"veil": __version__, "config": data}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Record:
    """One job's result. ``status``: ``done``, ``skipped`` (verified complete) or ``failed``
    (``reason`` says why, after ``attempts`` tries)."""

    source: str
    target: str
    status: str
    input_sha256: str = ""
    output_sha256: str = ""
    settings: str = ""
    reason: str | None = None
    attempts: int = 0
    faces: int = 0
    seconds: float = 0.0
    kind: str = "image"
    frames: int = 0
    run_id: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def for_job(cls, job: Job, status: str, **fields: Any) -> Record:
        return cls(str(job.source), str(job.target), status, **fields)


def is_complete(job: Job, expected: Record | None, settings: str, input_sha: str) -> bool:
    """True when ``expected`` (the manifest's last ``done`` record for ``job.target``)
    matches this input and these settings and the output on disk is unchanged."""
    if expected is None or expected.status != "done":
        return False
    if expected.input_sha256 != input_sha or expected.settings != settings:
        return False
    try:
        return file_sha256(job.target) == expected.output_sha256
    except OSError:
        return False


class RunManifest:
    """Append-only JSONL manifest under ``DEST/.veil-runs``; safe to append from threads."""

    def __init__(self, dest: Path) -> None:
        self.path = dest / RUNS_DIR / MANIFEST_NAME
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None

    def records(self) -> Iterator[Record]:
        """Every readable record in order; a torn last line (driver crash) is ignored."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield Record.from_dict(json.loads(line))
                except (ValueError, TypeError) as exc:
                    log.warning("%s:%d: unreadable record skipped: %s", self.path, number, exc)

    def completed(self) -> dict[str, Record]:
        """Target path -> its latest ``done`` record (a later ``failed`` does not erase it:
        the verified output from before is still on disk)."""
        return {r.target: r for r in self.records() if r.status == "done"}

    def append(self, record: Record) -> None:
        """Write one record as one line and flush it (``skipped`` records are not stored)."""
        if record.status == "skipped":
            return
        line = json.dumps(record.to_dict(), sort_keys=True) + "\n"
        with self._lock:
            try:
                if self._fh is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._fh.write(line)
                self._fh.flush()
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot append to the run manifest: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None

    def __enter__(self) -> RunManifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
