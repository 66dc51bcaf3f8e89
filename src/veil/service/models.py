"""Response models of the HTTP API (they become the OpenAPI schema)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from veil.anonymize.base import ANONYMIZERS
from veil.detect.base import DETECTORS
from veil.mask import MASK_SHAPES
from veil.service.settings import ServiceSettings

__all__ = ["ERRORS", "ErrorBody", "Health", "JobStatus", "Methods", "methods_payload"]
__all__ += ["option_enums", "service_methods"]

#: methods that read a file named on the server (``image``: ``--image PATH``): not offered
FILE_METHODS = frozenset({"image"})


def service_methods() -> list[str]:
    """The anonymization methods the service offers: every registered one but
    :data:`FILE_METHODS`."""
    return [n for n in ANONYMIZERS.names() if n not in FILE_METHODS]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class Health(BaseModel):
    status: str
    version: str
    active_jobs: int


class Named(BaseModel):
    name: str
    summary: str


class Methods(BaseModel):
    detectors: list[Named]
    anonymizers: list[Named]
    masks: list[str]
    defaults: dict[str, Any]
    limits: dict[str, float]


class JobStatus(BaseModel):
    id: str
    kind: str
    status: str
    progress: float
    error: str | None
    expires_in: float | None


_DESCRIPTIONS = {
    400: "malformed request (e.g. broken multipart body)",
    401: "missing or wrong token",
    404: "no such job or file",
    409: "the job has not finished",
    413: "upload too large or too many pixels",
    415: "not an image or video (checked by content)",
    422: "invalid field, option or file",
    429: "job queue full",
    500: "anonymization failed; nothing was returned",
    503: "server busy",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _DESCRIPTIONS.items()
}


def option_enums(
    methods: Sequence[str], detectors: Sequence[str], masks: Sequence[str]
) -> tuple[type[enum.Enum], type[enum.Enum], type[enum.Enum]]:
    """String enums of the registered names, so the schema lists the valid values."""

    def make(name: str, values: Sequence[str]) -> type[enum.Enum]:
        return enum.Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]

    return make("Method", methods), make("Detector", detectors), make("MaskShape", masks)


def methods_payload(detectors: Sequence[str], s: ServiceSettings) -> dict[str, Any]:
    """The body of ``GET /api/methods``: names, defaults and limits."""
    d = s.config
    return {
        "detectors": [{"name": n, "summary": DETECTORS.summary(n)} for n in detectors],
        "anonymizers": [{"name": n, "summary": ANONYMIZERS.summary(n)} for n in service_methods()],
        "masks": list(MASK_SHAPES),
        "defaults": {
            "method": d.anonymizer.method,
            "strength": d.anonymizer.strength,
            "mask": d.mask.shape,
            "detector": d.detector.name,
            "threshold": d.detector.threshold,
            "target": d.target,
        },
        "limits": {
            "max_image_bytes": s.max_image_bytes,
            "max_video_bytes": s.max_video_bytes,
            "max_pixels": s.max_pixels,
            "max_batch_files": s.max_batch_files,
            "result_ttl": s.result_ttl,
            "max_memory_bytes": s.memory_budget,
            "max_frames": s.max_frames,
            "max_duration": s.max_duration,
            "job_timeout": s.job_timeout,
        },
    }
