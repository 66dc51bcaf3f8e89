"""Batch runs over large datasets: on this machine (``engine="local"``) or on a Ray
cluster (``engine="ray"``), resumable through a manifest of input hash -> output hash.

>>> from veil.distributed import collect_jobs, make_engine, run_batch  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from veil.config import RunConfig
from veil.distributed.local import (
    BatchSummary,
    Engine,
    JobWorker,
    LocalEngine,
    WorkItem,
    new_run_id,
    run_batch,
    sweep_temp_files,
)
from veil.distributed.manifest import (
    RUNS_DIR,
    Record,
    RunManifest,
    file_sha256,
    is_complete,
    settings_hash,
)
from veil.distributed.sources import collect_jobs, read_manifest_paths
from veil.errors import ConfigError

__all__ = [
    "ENGINES",
    "RUNS_DIR",
    "BatchSummary",
    "Engine",
    "JobWorker",
    "LocalEngine",
    "Record",
    "RunManifest",
    "WorkItem",
    "collect_jobs",
    "file_sha256",
    "is_complete",
    "make_engine",
    "new_run_id",
    "read_manifest_paths",
    "run_batch",
    "settings_hash",
    "sweep_temp_files",
]

ENGINES = ("local", "ray")


def make_engine(
    name: str, config: RunConfig, *, retries: int = 2, run_id: str = "", **options: Any
) -> Engine:
    """``"local"`` (no options) or ``"ray"`` (options of
    :class:`~veil.distributed.ray_engine.RayEngine`: address, actors, cpus_per_actor,
    batch_size, init_kwargs)."""
    settings = settings_hash(config)
    if name == "local":
        if options:
            raise ConfigError(f"{', '.join(sorted(options))}: ray engine options only")
        return LocalEngine(config, settings, retries=retries, run_id=run_id)
    if name == "ray":
        from veil.distributed.ray_engine import RayEngine

        return RayEngine(config, settings, retries=retries, run_id=run_id, **options)
    raise ConfigError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
