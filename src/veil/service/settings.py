"""Service settings: one frozen dataclass, built by ``veil serve`` (or a test) and passed
whole to :func:`veil.service.create_app`. Importable without the ``serve`` extra."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from veil.config import RunConfig
from veil.errors import ConfigError

__all__ = ["LOOPBACK_NAMES", "ServiceSettings", "default_max_memory", "is_loopback"]

MB = 1024 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
"""``Host`` names a loopback-only service without a token accepts (with its port)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_max_memory(slots: int) -> int:
    """A safe per-request memory budget: a quarter of this machine's RAM split among
    ``slots`` requests or jobs running at once (at least 256 MB each)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 * 1024 * MB
    return max(256 * MB, total // 4 // max(slots, 1))


@dataclass(frozen=True)
class ServiceSettings:
    """What the HTTP service allows and how it runs.

    Attributes:
        token: bearer token every ``/api`` call but ``/api/health`` must carry;
            ``None`` disables authentication (``veil serve`` refuses that off loopback
            unless told ``--no-auth``).
        max_image_bytes: largest upload for ``POST /api/anonymize`` and per image in a batch.
        max_video_bytes: largest request body for ``POST /api/jobs``.
        max_pixels: largest image or video frame (width x height), checked from the header
            before decoding.
        max_jobs: jobs run at once (threads).
        max_sync: synchronous ``/api/anonymize`` requests processed at once; others wait.
        max_queue: jobs waiting beyond ``max_jobs``; more are refused with 429.
        max_batch_files: images in one batch job.
        result_ttl: seconds a finished job (and its result) is kept when nobody downloads it.
        sync_wait: seconds a synchronous request waits for a free slot before 503.
        janitor_interval: seconds between sweeps for expired jobs.
        work_dir: parent folder of the private (0700) working folder; ``None``: system temp.
        config: default :class:`~veil.config.RunConfig`; form fields override
            method, strength, mask shape, detector and threshold.
        detectors: detector names a request may choose; ``None``: every registered one.
        max_memory: bytes one request or job may need (estimated from the image or video
            header before anything is decoded; more is refused with 413). ``None``: a
            quarter of the RAM split among ``max_sync + max_jobs`` (:func:`default_max_memory`).
        max_frames: most frames a video job may have (from the container, then counted
            while decoding).
        max_duration: longest video, seconds (from the container, then from the frames
            decoded at the video's frame rate).
        job_timeout: seconds a job may run before it fails.
        body_timeout: seconds a client may stay silent while sending a request body.
        loopback_only: without a token, accept only ``Host`` headers naming a loopback
            address (with the served port) and no foreign ``Origin`` (DNS rebinding and
            cross-site requests get 403). ``veil serve`` turns it off only for ``--no-auth``
            off loopback.
    """

    token: str | None = None
    max_image_bytes: int = 50 * MB
    max_video_bytes: int = 2048 * MB
    max_pixels: int = 50_000_000
    max_jobs: int = 1
    max_sync: int = 2
    max_queue: int = 8
    max_batch_files: int = 50
    result_ttl: float = 600.0
    sync_wait: float = 60.0
    janitor_interval: float = 5.0
    work_dir: Path | None = None
    config: RunConfig = field(default_factory=RunConfig)
    detectors: tuple[str, ...] | None = None
    max_memory: int | None = None
    max_frames: int = 54_000
    max_duration: float = 1800.0
    job_timeout: float = 3600.0
    body_timeout: float = 30.0
    loopback_only: bool = True

    def __post_init__(self) -> None:
        positive = {
            "max_image_bytes": self.max_image_bytes,
            "max_video_bytes": self.max_video_bytes,
            "max_pixels": self.max_pixels,
            "max_jobs": self.max_jobs,
            "max_sync": self.max_sync,
            "max_batch_files": self.max_batch_files,
            "result_ttl": self.result_ttl,
            "janitor_interval": self.janitor_interval,
            "max_memory": 1 if self.max_memory is None else self.max_memory,
            "max_frames": self.max_frames,
            "max_duration": self.max_duration,
            "job_timeout": self.job_timeout,
            "body_timeout": self.body_timeout,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"ServiceSettings: {name}={value!r}; expected > 0")
        if self.max_queue < 0 or self.sync_wait < 0:
            raise ConfigError("ServiceSettings: max_queue and sync_wait must be >= 0")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("ServiceSettings: token must be at least 8 characters long")

    @property
    def memory_budget(self) -> int:
        """``max_memory``, or its default for this machine."""
        if self.max_memory is not None:
            return self.max_memory
        return default_max_memory(self.max_sync + self.max_jobs)
