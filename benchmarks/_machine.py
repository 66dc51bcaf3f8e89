"""The machine a benchmark ran on, printed with every figure: speed is a property of a
machine, not of veil, so each table names the CPU model and states speed as a ratio
against deface measured in the same run."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

#: CPU flags that decide which inference precision and which x264 code paths are fast
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The flags of :data:`FLAGS` this CPU has."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in FLAGS if f in have]
    except OSError:
        pass
    return []


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> str:
    """One line: CPU model, cores, flags, Python, veil's and deface's versions."""
    flags = " ".join(cpu_flags()) or "no AVX2"
    return (
        f"{cpu_model()} ({flags}), {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"veil {version('veil')}, deface {version('deface')}, openvino {version('openvino')}"
    )
