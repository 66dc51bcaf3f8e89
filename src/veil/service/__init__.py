"""veil's HTTP service: ``create_app(ServiceSettings(...))`` returns a FastAPI app
(``veil serve`` runs it with uvicorn). Needs the ``serve`` extra."""

from __future__ import annotations

import importlib.util

from veil.errors import MissingExtraError
from veil.service.settings import ServiceSettings, is_loopback

for _module, _package in (("fastapi", "fastapi"), ("python_multipart", "python-multipart")):
    if importlib.util.find_spec(_module) is None:  # pragma: no cover - environment
        raise MissingExtraError(_package, "serve", "veil's HTTP service")

from veil.service.app import create_app  # noqa: E402

__all__ = ["ServiceSettings", "create_app", "is_loopback"]
