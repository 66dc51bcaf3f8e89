"""``serve`` fixture: a real uvicorn server on 127.0.0.1 (free port) in a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
uvicorn = pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra")

from veil.service import ServiceSettings, create_app  # noqa: E402


@contextlib.contextmanager
def running(settings: ServiceSettings, review: Any = None) -> Iterator[tuple[str, Any]]:
    """``(base URL, app)`` of a server for ``settings`` (and a ``veil review`` session);
    stopped (and cleaned) afterwards."""
    app = create_app(settings, review=review)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="veil-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def serve() -> Callable[[ServiceSettings], contextlib.AbstractContextManager[tuple[str, Any]]]:
    """``with serve(settings) as (url, app):`` runs the service for the block."""
    return running
