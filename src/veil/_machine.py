"""Facts about the machine: CPU model and flags, cores, memory, and veil's cache folder."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cache_dir", "cpu_count", "cpu_flags", "cpu_model", "file_lock", "memory_bytes"]

#: environment variable naming veil's cache folder (default ``$XDG_CACHE_HOME/veil``)
CACHE_ENV = "VEIL_CACHE_DIR"


def cache_dir() -> Path:
    """veil's cache folder: ``$VEIL_CACHE_DIR``, else ``$XDG_CACHE_HOME/veil``, else
    ``~/.cache/veil`` (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "veil"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name, e.g. ``"AMD EPYC 7B13"``; ``"unknown"`` if nothing tells."""
    info = _cpuinfo()
    name = info.get("model name") or info.get("Model name") or platform.processor()
    return name or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """Instruction-set flags of ``/proc/cpuinfo`` (``avx2``, ``avx512_bf16``, ``amx_tile``...);
    empty where the file does not exist (macOS, Windows)."""
    info = _cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def memory_bytes() -> int | None:
    """Physical memory in bytes, ``None`` if unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def cpu_count() -> int:
    """CPUs this process may run on (its affinity where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) against other threads and
    processes; no lock where ``fcntl`` is missing or the folder is not writable."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")  # noqa: SIM115
    except (ImportError, OSError):
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
