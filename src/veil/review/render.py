"""Re-rendering from the review page: one background job at a time, with progress.

The work itself is the edit list's own re-render API (:mod:`veil.edits`), the same call
``veil video --edits FILE`` and ``veil anonymize --edits FILE`` make, so the page and the
command line write the same bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from veil.errors import VeilError

__all__ = ["RenderJob"]

log = logging.getLogger(__name__)

Progress = Callable[[float], None]


class RenderJob:
    """The state of the review session's render: ``idle``, ``running``, ``done`` or
    ``failed``, progress 0-1, the error of a failed run. :meth:`start` runs
    ``work(progress)`` in a thread unless a render is already running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status, self.progress = "idle", 0.0
        self.error: str | None = None
        self.started: float | None = None
        self.seconds: float | None = None
        self.runs = 0

    def start(self, work: Callable[[Progress], None]) -> bool:
        """Start ``work`` in a thread; False (nothing started) while one is running."""
        with self._lock:
            if self.status == "running":
                return False
            self.status, self.progress, self.error = "running", 0.0, None
            self.started, self.seconds = time.monotonic(), None
            self.runs += 1
        threading.Thread(target=self._run, args=(work,), name="veil-review-render").start()
        return True

    def _run(self, work: Callable[[Progress], None]) -> None:
        try:
            work(self._progress)
        except VeilError as exc:
            self._end("failed", str(exc))
        except Exception as exc:  # reported on the page, logged with its traceback
            log.exception("review render failed")
            self._end("failed", f"internal error: {exc}")
        else:
            self._end("done", None)

    def _progress(self, fraction: float) -> None:
        self.progress = min(max(fraction, 0.0), 0.999)

    def _end(self, status: str, error: str | None) -> None:
        with self._lock:
            self.status, self.error = status, error
            self.progress = 1.0 if status == "done" else self.progress
            if self.started is not None:
                self.seconds = time.monotonic() - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no render runs (tests, benchmarks); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status == "running":
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "progress": round(self.progress, 4),
            "error": self.error,
            "seconds": self.seconds,
            "runs": self.runs,
        }
