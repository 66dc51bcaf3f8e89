"""What the service lets in: the ASGI guard (Host and Origin, token, capacity, body size
and pace, security headers), the JSON error shape, uploads stored under generated names
and sniffed by content, and the memory a request will need, estimated from headers."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import json
import logging
import secrets
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil.errors import BackendError, ConfigError, InputError, VeilError
from veil.service.settings import LOOPBACK_NAMES, MB, ServiceSettings

__all__ = ["ApiError", "Guard", "error_body", "image_memory", "sniff", "sniff_image", "store"]
__all__ += ["upload_folder", "veil_call", "video_memory"]

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
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


_OPEN_PATHS = frozenset({"/", "/api/health", "/static/app.js", "/static/style.css"})
_OPEN_PATHS |= {"/review", "/static/review.js", "/static/review.css"}  # veil review's page
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Guard:
    """ASGI middleware run before any route, in this order, each answer sent before a
    byte of the body is read:

    1. without a token on a loopback-only service, a ``Host`` that is not a loopback name
       with the served port, or a foreign ``Origin``: 403 (DNS rebinding, cross-site);
    2. a missing or wrong bearer token on anything but the page and ``/api/health``: 401;
    3. no free place: 429 for ``/api/jobs`` (queued and running jobs plus uploads in
       progress reach the queue's capacity), 503 for ``/api/anonymize`` (twice
       ``max_sync`` requests already in progress);
    4. a declared body over the limit: 413.

    The body is then counted (413 past the limit) and must keep arriving: a client
    silent for ``body_timeout`` seconds gets 408. Every answer carries security headers
    (CSP without any external origin, nosniff, no framing).

    ``job_places`` returns how many more jobs the job manager would accept now;
    ``work_folder`` the service's private folder, where uploads are spooled.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ServiceSettings,
        job_places: Callable[[], int],
        work_folder: Callable[[], Path],
    ) -> None:
        self.app = app
        self.token = settings.token.encode() if settings.token else None
        self.check_host = settings.token is None and settings.loopback_only
        self.limits = {
            "/api/anonymize": settings.max_image_bytes + _SLACK,
            "/api/jobs": settings.max_video_bytes + _SLACK,
        }
        self.body_timeout = settings.body_timeout
        self.job_places = job_places
        self.work_folder = work_folder
        self.max_sync_requests = 2 * settings.max_sync
        self.in_progress = {"/api/anonymize": 0, "/api/jobs": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            status, body, extra = refusal
            await _send_json(send_with_headers, status, body, extra)
            return
        path = scope["path"]
        limit = self.limits.get(path) if scope["method"] == "POST" else None
        if limit is None:
            await self.app(scope, receive, send_with_headers)
            return
        upload_folder(self.work_folder())
        self.in_progress[path] += 1
        try:
            paced = _paced(receive, limit, self.body_timeout)
            await self.app(scope, paced, send_with_headers)
        finally:
            self.in_progress[path] -= 1

    def _refusal(self, scope: Scope) -> tuple[int, dict[str, Any], list[Any]] | None:
        """``(status, body, extra headers)`` of the answer that ends the request now."""
        path, headers = scope["path"], dict(scope["headers"])
        if self.check_host and not _local_request(headers, scope.get("server")):
            message = "only loopback Host names and same-origin requests are accepted"
            return 403, error_body(403, message), []
        if self._needs_token(path) and not self._authorized(headers):
            body = error_body(401, "missing or wrong token (Authorization: Bearer ...)")
            return 401, body, [(b"www-authenticate", b"Bearer")]
        if scope["method"] != "POST" or path not in self.limits:
            return None
        if path == "/api/jobs" and self.in_progress[path] >= self.job_places():
            body = error_body(429, "too many jobs; retry later")
            return 429, body, [(b"retry-after", b"5")]
        if path == "/api/anonymize" and self.in_progress[path] >= self.max_sync_requests:
            body = error_body(503, "the server is busy; retry later")
            return 503, body, [(b"retry-after", b"2")]
        declared = headers.get(b"content-length", b"0")
        limit = self.limits[path]
        if not declared.isdigit() or int(declared) > limit:
            return 413, error_body(413, f"request body is larger than {limit:,} bytes"), []
        return None

    def _needs_token(self, path: str) -> bool:
        return self.token is not None and path not in _OPEN_PATHS

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        assert self.token is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)


def _local_request(headers: dict[bytes, bytes], server: tuple[str, int] | None) -> bool:
    """True when ``Host`` names a loopback address with the served port and ``Origin``,
    if sent, is such a page too (a browser sends ``Origin`` on cross-site requests)."""
    port = server[1] if server else None
    if not _loopback_authority(headers.get(b"host", b"").decode("latin-1"), port, 80):
        return False
    origin = headers.get(b"origin")
    if origin is None:
        return True
    parts = urlsplit(origin.decode("latin-1"))
    if parts.scheme not in _DEFAULT_PORTS or parts.path or parts.username:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    return _loopback_authority(parts.netloc, port, _DEFAULT_PORTS[parts.scheme])


def _loopback_authority(authority: str, port: int | None, default_port: int) -> bool:
    """``authority`` is ``name[:port]`` with a loopback name and the served ``port``
    (``None``: any port, for a server whose address is unknown)."""
    text = authority.lower()
    if text.startswith("["):  # [::1]:8000
        name, _, rest = text.partition("]")
        name += "]"
        if rest and not rest.startswith(":"):
            return False
        given = rest[1:]
    else:
        name, _, given = text.partition(":")
    if name not in LOOPBACK_NAMES or (given and not given.isdigit()):
        return False
    return port is None or (int(given) if given else default_port) == port


def _paced(receive: Receive, limit: int, timeout: float) -> Receive:
    """``receive`` that raises 413 once more than ``limit`` body bytes arrived (a body
    sent without, or with a wrong, Content-Length) and 408 when the client sends nothing
    for ``timeout`` seconds before its body is complete."""
    seen, complete = 0, False

    async def wrapped() -> Message:
        nonlocal seen, complete
        if complete:  # after the body: waiting for a disconnect may take any time
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
            raise ApiError(408, "timeout", f"no body data for {timeout:g} s") from None
        seen += len(message.get("body", b""))
        complete = message["type"] != "http.request" or not message.get("more_body", False)
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


_UPLOAD_FOLDER: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "veil_upload_folder", default=None
)


def _spooled_file(max_size: int = 0, **kwargs: Any) -> Any:
    """Starlette's spooled upload file, but in the folder set by :func:`upload_folder`
    for this request (the system temp folder for any other application)."""
    kwargs.setdefault("dir", _UPLOAD_FOLDER.get())
    return tempfile.SpooledTemporaryFile(max_size=max_size, **kwargs)


def upload_folder(folder: Path) -> None:
    """Spool the current request's multipart files into ``folder`` (the service's own
    work folder) instead of the system temp folder. Starlette's parser creates its
    files by the module-level name ``SpooledTemporaryFile``, looked up at call time."""
    import starlette.formparsers

    if starlette.formparsers.SpooledTemporaryFile is not _spooled_file:
        setattr(starlette.formparsers, "SpooledTemporaryFile", _spooled_file)  # noqa: B010
    _UPLOAD_FOLDER.set(folder)


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


_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3}
_MODE_BYTES |= {"LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4}
DETECTION_BYTES = 384 * MB
"""Memory of detection on the bounded working resolution (:mod:`veil.detect.working`),
whatever the image size."""
_COPIES = 12  # RGB bytes per pixel besides the decoded image: array, result, encoder copies


def image_memory(width: int, height: int, mode: str) -> int:
    """Bytes needed to anonymize a ``width x height`` image decoded in Pillow ``mode``."""
    decoded = _MODE_BYTES.get(mode, 2 if mode.startswith("I;16") else 4)
    return width * height * (decoded + _COPIES) + DETECTION_BYTES


def video_memory(width: int, height: int) -> int:
    """Bytes needed to anonymize a video of ``width x height`` frames: every frame the
    stages' queues and the look-ahead hold at once, as RGB."""
    from veil.video import VideoConfig

    v = VideoConfig()
    frames = 4 * v.queue_size + v.lookahead + 8
    return width * height * 3 * frames + DETECTION_BYTES


def check_memory(needed: int, settings: ServiceSettings, what: str) -> None:
    """413 when ``needed`` bytes exceed the per-request budget (``--max-memory``)."""
    budget = settings.memory_budget
    if needed > budget:
        message = (
            f"{what} needs about {needed / MB:,.0f} MB of memory to process, more than "
            f"this server's limit of {budget / MB:,.0f} MB per request (--max-memory)"
        )
        raise ApiError(413, "too_much_memory", message)


def sniff_image(path: Path, settings: ServiceSettings) -> str | None:
    """veil's format name if ``path`` holds an image (by content, header only), else None.
    413 when it has more than ``max_pixels`` pixels or would need more memory than the
    budget (both from the header, before any pixel is decoded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                fmt, (w, h), mode = _PIL_FORMATS.get(im.format or ""), im.size, im.mode
        except Image.DecompressionBombError as exc:
            raise ApiError(413, "too_many_pixels", "the image has too many pixels") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return None
    if fmt is not None and w * h > settings.max_pixels:
        message = f"the image is {w} x {h} pixels, more than the limit of {settings.max_pixels:,}"
        raise ApiError(413, "too_many_pixels", message)
    if fmt is not None:
        check_memory(image_memory(w, h, mode), settings, f"the {w} x {h} image")
    return fmt


def sniff(path: Path, settings: ServiceSettings) -> tuple[str, int]:
    """``("image", 0)`` or ``("video", expected frame count)`` by content; 415 otherwise.
    A video over the frame, duration, pixel or memory limits (from its container) is 413."""
    if sniff_image(path, settings) is not None:
        if path.stat().st_size > settings.max_image_bytes:
            limit = settings.max_image_bytes
            raise ApiError(413, "too_large", f"an image is larger than {limit:,} bytes")
        return "image", 0
    from veil.io.video import probe_video

    _check_video_header(path, settings)  # before a frame is decoded
    try:
        info = probe_video(path)
    except InputError as exc:
        raise ApiError(415, "unsupported_media_type", "neither an image nor a video") from exc
    s = settings
    if info.width * info.height > s.max_pixels:
        raise ApiError(
            413, "too_many_pixels", f"video frames have more than {s.max_pixels:,} pixels"
        )
    frames = info.frame_count or round((info.duration or 0) * info.fps)
    if frames > s.max_frames:
        message = f"the video has {frames:,} frames, more than the limit of {s.max_frames:,}"
        raise ApiError(413, "too_many_frames", message)
    if (info.duration or 0) > s.max_duration:
        message = (
            f"the video lasts {info.duration:,.0f} s, "
            f"more than the limit of {s.max_duration:,.0f} s"
        )
        raise ApiError(413, "too_long", message)
    what = f"a video of {info.width} x {info.height} frames"
    check_memory(video_memory(info.width, info.height), s, what)
    return "video", frames


def _check_video_header(path: Path, settings: ServiceSettings) -> None:
    """413 when the container's first video stream declares frames over the pixel or
    memory limits; nothing when it cannot tell (``probe_video`` then decides)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            w, h = stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, IndexError, OSError, ValueError):
        return
    if w * h > settings.max_pixels:
        message = f"video frames of {w} x {h} have more than {settings.max_pixels:,} pixels"
        raise ApiError(413, "too_many_pixels", message)
    if w and h:
        check_memory(video_memory(w, h), settings, f"a video of {w} x {h} frames")


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
