"""Running the app with uvicorn, with limits for slow or half-open connections: request
headers must arrive within ``header_timeout`` seconds of a connection (or of the previous
response), idle keep-alive connections close after a few seconds, header blocks are
capped in size. Body pace is the :class:`~veil.service.intake.Guard`'s job."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEADER_TIMEOUT", "run", "uvicorn_config"]

HEADER_TIMEOUT = 10.0
"""Seconds a client may take to send a request's headers."""
_MAX_HEADER_BYTES = 16 * 1024


class _HeaderTimeout(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request line and headers, which a
    slow client cannot push back by trickling bytes (uvicorn's keep-alive timer restarts
    on every byte received)."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _expired(self) -> None:
        waiting = self.conn.their_state in (h11.IDLE, h11.MUST_CLOSE)
        idle = self.cycle is None or self.cycle.response_complete
        if waiting and idle and not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(
    app: Any, host: str, port: int, *, header_timeout: float = HEADER_TIMEOUT
) -> Any:
    """A :class:`uvicorn.Config` for ``app`` with the connection limits above."""
    protocol = type("VeilH11Protocol", (_HeaderTimeout,), {"header_timeout": header_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        log_level="info",
        server_header=False,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=_MAX_HEADER_BYTES,
    )


def run(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until interrupted."""
    uvicorn.Server(uvicorn_config(app, host, port)).run()
