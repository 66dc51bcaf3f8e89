"""What every file job shares, whatever kind of file it is: the job, its outcome, the
audit file beside the output, hashing and atomic JSON writes. Image runs
(:mod:`veil.runner`) and video runs (:mod:`veil.video`) both import it; it imports
neither, so neither imports the other through it."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veil.errors import OutputError

__all__ = ["FileOutcome", "Job", "audit_path", "file_sha256", "write_json_atomic"]


@dataclass(frozen=True)
class Job:
    """One input file and where its anonymized copy goes."""

    source: Path
    target: Path


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one job: ``status`` is ``done``, ``skipped`` or ``failed``."""

    job: Job
    status: str
    faces: int = 0
    error: str | None = None
    seconds: float = 0.0


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def audit_path(target: Path) -> Path:
    return target.with_name(target.name + ".audit.json")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write audit file: {exc}") from exc
