"""The machine a benchmark ran on, printed with every figure: speed is a property of a
machine, not of veil, so each table names the CPU model and states speed as a ratio
against deface measured in the same run. The facts come from :mod:`veil._machine` (the
same ones ``veil doctor`` prints)."""

from __future__ import annotations

import platform
from importlib import metadata

from veil._machine import cpu_count, cpu_model

#: CPU flags that decide which inference precision and which x264 code paths are fast
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")

__all__ = ["FLAGS", "cpu_flags", "cpu_model", "describe", "version"]


def cpu_flags() -> list[str]:
    """The flags of :data:`FLAGS` this CPU has."""
    from veil._machine import cpu_flags as flags

    have = flags()
    return [f for f in FLAGS if f in have]


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> str:
    """One line: CPU model, cores, flags, Python, veil's and deface's versions."""
    flags = " ".join(cpu_flags()) or "no AVX2"
    return (
        f"{cpu_model()} ({flags}), {cpu_count()} cores, Python {platform.python_version()}, "
        f"veil {version('veil')}, deface {version('deface')}, openvino {version('openvino')}"
    )
