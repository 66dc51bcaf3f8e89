"""SOURCE -> jobs: a folder, a glob pattern or a manifest file (one path per line, or a
CSV / Parquet table with a path column). Targets mirror each input's path relative to
the source's root below DEST.

Paths are plain local (or shared file system) paths here. The one place that touches
the file system is :func:`collect_jobs`; an object store (``pyarrow.fs`` / S3) slots in
by listing keys instead of walking folders, the job list keeps the same shape.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from veil.errors import InputError, MissingExtraError, OutputError
from veil.io.images import iter_image_files
from veil.runner import MEDIA_SUFFIXES, Job, check_targets

__all__ = ["MANIFEST_SUFFIXES", "collect_jobs", "read_manifest_paths"]

MANIFEST_SUFFIXES = frozenset({".txt", ".lst", ".csv", ".parquet", ".pq"})
"""Suffixes of files read as a list of inputs rather than as one input."""

_GLOB_CHARS = frozenset("*?[")
_MAX_LISTED = 5


def collect_jobs(source: str | os.PathLike[str], dest: Path, *, column: str = "path") -> list[Job]:
    """Jobs for every image or video named by ``source``, targets mirrored under ``dest``.

    ``source`` is a folder (walked recursively, hidden entries skipped), a glob
    (``data/**/*.jpg``; the part before the first wildcard is the root) or a manifest
    file with a suffix in :data:`MANIFEST_SUFFIXES` (relative entries are relative to the
    manifest's folder; the root is the entries' common folder). Outputs already inside
    ``dest`` are never inputs.

    Raises:
        InputError: nothing found, a listed file is missing, a manifest lacks ``column``.
        OutputError: a target would overwrite an input or two inputs share a target.
    """
    text = os.fspath(source)
    if _GLOB_CHARS & set(text):
        root, files = _glob_root(text), _from_glob(text)
    elif Path(text).is_dir():
        root = Path(text)
        files = list(iter_image_files(root, suffixes=MEDIA_SUFFIXES))
    elif Path(text).suffix.lower() in MANIFEST_SUFFIXES and Path(text).is_file():
        files = read_manifest_paths(Path(text), column=column)
        root = _common_root(files)
    elif Path(text).is_file():
        root, files = Path(text).parent, [Path(text)]
    else:
        raise InputError(f"{text}: no such file, folder or glob match")
    dest_resolved = dest.resolve()
    if dest_resolved == root.resolve():
        raise OutputError(f"{dest}: DEST is the source root; outputs would overwrite inputs")
    files = [f for f in files if dest_resolved not in f.resolve().parents]
    if not files:
        raise InputError(f"{text}: no image or video files found")
    jobs = [Job(f, dest / f.relative_to(root)) for f in files]
    check_targets(jobs)
    return jobs


def read_manifest_paths(path: Path, *, column: str = "path") -> list[Path]:
    """Input paths listed in a ``.txt``/``.lst`` (one a line, ``#`` comments), ``.csv`` or
    ``.parquet`` (``column``) file; every listed file must exist.

    Raises:
        InputError: unreadable manifest, missing column, listed files that do not exist.
        MissingExtraError: a Parquet manifest without ``pyarrow`` installed.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            entries = _parquet_column(path, column)
        elif suffix == ".csv":
            entries = _csv_column(path, column)
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            entries = [s for s in (ln.strip() for ln in lines) if s and not s.startswith("#")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read manifest: {exc}") from exc
    files = [_resolve(entry, path.parent.absolute()) for entry in entries]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        shown = ", ".join(missing[:_MAX_LISTED])
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        raise InputError(f"{path}: {len(missing)} listed files do not exist: {shown}{more}")
    return files


def _resolve(entry: str, base: Path) -> Path:
    p = Path(entry).expanduser()
    return p if p.is_absolute() else base / p


def _csv_column(path: Path, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise InputError(
                f"{path}: no {column!r} column (columns: {', '.join(reader.fieldnames or [])})"
            )
        return [row[column].strip() for row in reader if (row[column] or "").strip()]


def _parquet_column(path: Path, column: str) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("pyarrow", "ray", "reading Parquet manifests") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and friends
        raise InputError(f"{path}: cannot read Parquet manifest: {exc}") from exc
    if column not in table.column_names:
        raise InputError(f"{path}: no {column!r} column (columns: {', '.join(table.column_names)})")
    return [str(v) for v in table.column(column).to_pylist() if v]


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS & set(p))]
    return Path(*fixed) if fixed else Path(".")


def _from_glob(pattern: str) -> list[Path]:
    matches = (Path(m) for m in glob.glob(pattern, recursive=True))
    return sorted(m for m in matches if m.is_file() and m.suffix.lower() in MEDIA_SUFFIXES)


def _common_root(files: Sequence[Path]) -> Path:
    if not files:
        return Path(".")
    return Path(os.path.commonpath([str(f.absolute().parent) for f in files]))
