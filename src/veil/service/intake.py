"""What the service lets in: the ASGI guard (token, body size, security headers), the
JSON error shape, and uploads stored under generated names and sniffed by content."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import warnings
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil.errors import BackendError, ConfigError, InputError, VeilError
from veil.service.settings import ServiceSettings

__all__ = ["ApiError", "Guard", "error_body", "sniff", "sniff_image", "store", "veil_call"]

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "queue_full",
    500: "internal_error",
    503: "busy",
}
_SLACK = 64 * 1024  # multipart boundaries and form fields around the file
_PIL_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "TIFF": "TIFF"}
_PIL_FORMATS |= {"BMP": "BMP", "DIB": "BMP", "GIF": "GIF"}
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
]


class ApiError(HTTPException):
    """An HTTP error with a stable machine-readable ``code``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code


def error_body(
    status: int, message: str, code: str | None = None, details: list[Any] | None = None
) -> dict[str, Any]:
    """``{"error": {"code", "message"[, "details"]}}``."""
    error: dict[str, Any] = {"code": code or _CODES.get(status, "error"), "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


class Guard:
    """ASGI middleware run before any route: rejects a missing or wrong bearer token on
    ``/api`` (but ``/api/health``) and bodies over the limit *before* they are read, and
    adds security headers (CSP without any external origin, nosniff, no framing)."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.token = settings.token.encode() if settings.token else None
        self.limits = {
            "/api/anonymize": settings.max_image_bytes + _SLACK,
            "/api/jobs": settings.max_video_bytes + _SLACK,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        path, headers = scope["path"], dict(scope["headers"])
        if self._needs_token(path) and not self._authorized(headers):
            body = error_body(401, "missing or wrong token (Authorization: Bearer ...)")
            await _send_json(send_with_headers, 401, body, [(b"www-authenticate", b"Bearer")])
            return
        limit = self.limits.get(path) if scope["method"] == "POST" else None
        if limit is None:
            await self.app(scope, receive, send_with_headers)
            return
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            body = error_body(413, f"request body is larger than {limit:,} bytes")
            await _send_json(send_with_headers, 413, body)
            return
        await self.app(scope, _counting(receive, limit), send_with_headers)

    def _needs_token(self, path: str) -> bool:
        return self.token is not None and path.startswith("/api/") and path != "/api/health"

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        assert self.token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises 413 once more than ``limit`` body bytes arrived (a body
    sent without, or with a wrong, Content-Length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ApiError(413, "too_large", f"request body is larger than {limit:,} bytes")
        return message

    return wrapped


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": data})


def store(source: IO[bytes], folder: Path, limit: int) -> Path:
    """Copy an upload into ``folder`` under a random name (never the client's); 413 when
    over ``limit`` bytes, 422 when empty. Nothing is left behind on error."""
    path = folder / f"{secrets.token_hex(16)}.upload"
    size = 0
    try:
        with path.open("xb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "too_large", f"a file is larger than {limit:,} bytes")
                out.write(chunk)
        if size == 0:
            raise ApiError(422, "empty_file", "an uploaded file is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def sniff_image(path: Path, max_pixels: int) -> str | None:
    """veil's format name if ``path`` holds an image (by content, header only), else None.
    413 when it has more than ``max_pixels`` pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                fmt, (w, h) = _PIL_FORMATS.get(im.format or ""), im.size
        except Image.DecompressionBombError as exc:
            raise ApiError(413, "too_many_pixels", "the image has too many pixels") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return None
    if fmt is not None and w * h > max_pixels:
        message = f"the image is {w} x {h} pixels, more than the limit of {max_pixels:,}"
        raise ApiError(413, "too_many_pixels", message)
    return fmt


def sniff(path: Path, settings: ServiceSettings) -> tuple[str, int]:
    """``("image", 0)`` or ``("video", expected frame count)`` by content; 415 otherwise."""
    if sniff_image(path, settings.max_pixels) is not None:
        if path.stat().st_size > settings.max_image_bytes:
            limit = settings.max_image_bytes
            raise ApiError(413, "too_large", f"an image is larger than {limit:,} bytes")
        return "image", 0
    from veil.io.video import probe_video

    try:
        info = probe_video(path)
    except InputError as exc:
        raise ApiError(415, "unsupported_media_type", "neither an image nor a video") from exc
    if info.width * info.height > settings.max_pixels:
        limit = settings.max_pixels
        raise ApiError(413, "too_many_pixels", f"video frames have more than {limit:,} pixels")
    return "video", info.frame_count or round((info.duration or 0) * info.fps)


def video_suffix(path: Path) -> str:
    """``.mp4`` for an MP4/MOV source, else ``.mkv`` (Matroska holds any codec)."""
    import av

    with av.open(str(path)) as container:
        return ".mp4" if "mp4" in container.format.name else ".mkv"


def veil_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; veil's errors become JSON errors without server paths."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        raise ApiError(422, "invalid_option", str(exc)) from exc
    except InputError as exc:
        raise ApiError(422, "invalid_file", scrub(exc)) from exc
    except BackendError as exc:
        log.error("backend failure: %s", exc)
        raise ApiError(500, "backend_error", "anonymization failed; nothing was returned") from exc
    except VeilError as exc:  # MissingExtraError and friends
        raise ApiError(422, "unavailable", str(exc)) from exc


def scrub(exc: Exception) -> str:
    """The message without the server-side path at its start."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("/") and ": " in text else text
