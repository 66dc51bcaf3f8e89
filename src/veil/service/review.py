"""The review page's routes (``veil review``), mounted by :func:`veil.service.create_app`
only when it is given a review session (:mod:`veil.review`).

Behind the same guard as every other route (loopback ``Host``/``Origin`` check, bearer
token): ``/review`` and its static files are open, every ``/api/review`` call needs the
token when the service has one. Frames are proxy JPEGs; boxes are in source pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from veil.errors import InputError, VeilError
from veil.review import PhotoReview, VideoReview
from veil.service.intake import ApiError

__all__ = ["MAX_EDITS_BYTES", "add_review_routes"]

MAX_EDITS_BYTES = 4 * 1024 * 1024
"""Largest edit list the page may save."""

T = TypeVar("T")
_IMMUTABLE = {"Cache-Control": "private, max-age=86400"}  # a frame never changes


def add_review_routes(
    app: FastAPI,
    session: VideoReview | PhotoReview,
    auth: list[Any],
    static: Callable[[str], bytes],
) -> None:
    """Add ``/review`` and ``/api/review/...`` for ``session`` to ``app``."""
    deps = auth

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        return Response(static("review.html"), media_type="text/html; charset=utf-8")

    @app.get("/api/review", dependencies=deps)
    def describe() -> dict[str, Any]:
        """What is under review, where edits and output go, and the render's state."""
        return session.describe() | {"render": session.render_job.describe()}

    @app.get("/api/review/timeline", dependencies=deps)
    def timeline() -> dict[str, Any]:
        """Video: faces, lowest score and tracked boxes per frame, cuts, track spans."""
        return _video(session).timeline()

    @app.get("/api/review/photos", dependencies=deps)
    def photo_list() -> dict[str, Any]:
        """Folder: every photo, flagged ones first."""
        if not isinstance(session, PhotoReview):
            raise ApiError(404, "not_found", "this review is of a video")
        return {"photos": session.photo_list()}

    @app.get("/api/review/flags", dependencies=deps)
    def flags() -> dict[str, Any]:
        return {"flags": session.flag_list()}

    @app.get("/api/review/frames/{index}.jpg", dependencies=deps, response_class=Response)
    def frame(index: int) -> Response:
        """Frame ``index`` of the proxy (video) or the photo's preview, as JPEG."""
        data = _call(session.frame_jpeg, index)
        return Response(data, media_type="image/jpeg", headers=_IMMUTABLE)

    @app.get("/api/review/frames/{index}/faces", dependencies=deps)
    def faces(index: int) -> dict[str, Any]:
        """The boxes of frame ``index`` (source pixels) and, for a video, its shot."""
        out: dict[str, Any] = {"index": index, "faces": _call(session.faces, index)}
        if isinstance(session, VideoReview):
            out["shot"] = session.shot(index)
        return out

    @app.get("/api/review/thumbs.jpg", dependencies=deps, response_class=Response)
    def thumbs() -> Response:
        """Video: the thumbnail strip (``timeline.thumbs`` gives its layout)."""
        data = _video(session).thumbs_jpeg()
        return Response(data, media_type="image/jpeg", headers=_IMMUTABLE)

    @app.get("/api/review/thumbs/{index}.jpg", dependencies=deps, response_class=Response)
    def thumb(index: int) -> Response:
        """Folder: photo ``index``'s thumbnail."""
        if not isinstance(session, PhotoReview):
            raise ApiError(404, "not_found", "this review is of a video")
        return Response(_call(session.thumb_jpeg, index), media_type="image/jpeg")

    @app.get("/api/review/tracks/{track}", dependencies=deps)
    def track(track: int) -> dict[str, Any]:
        """A track's frames as ``{frames, box}`` chunks (for remove / methods entries)."""
        return _call(_video(session).track, track)

    @app.get("/api/review/edits", dependencies=deps)
    def get_edits(item: int = 0) -> dict[str, Any]:
        """The saved edit list (of photo ``item`` in a folder)."""
        if isinstance(session, PhotoReview):
            return _call(session.load_edits, item)
        return _call(session.load_edits)

    @app.put("/api/review/edits", dependencies=deps)
    async def put_edits(request: Request, item: int = 0) -> dict[str, Any]:
        """Validate and save an edit list (atomic write); 422 names the bad entry."""
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_EDITS_BYTES:
            raise ApiError(413, "too_large", f"an edit list is at most {MAX_EDITS_BYTES:,} bytes")
        body = await request.body()
        if len(body) > MAX_EDITS_BYTES:
            raise ApiError(413, "too_large", f"an edit list is at most {MAX_EDITS_BYTES:,} bytes")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(422, "invalid_edits", f"not valid JSON: {exc}") from exc
        if isinstance(session, PhotoReview):
            return _call(session.save_edits, data, item)
        return _call(session.save_edits, data)

    @app.post("/api/review/render", status_code=202, dependencies=deps)
    def render() -> dict[str, Any]:
        """Re-render with the saved edit list(s) in the background; poll ``GET``."""
        if not session.render():
            raise ApiError(409, "conflict", "a render is already running")
        return session.render_job.describe()

    @app.get("/api/review/render", dependencies=deps)
    def render_status() -> dict[str, Any]:
        return session.render_job.describe()

    @app.get("/api/review/render/result", dependencies=deps, response_class=FileResponse)
    def result(item: int = 0) -> Response:
        """The rendered video (or photo ``item`` of a folder), once a render is done."""
        job = session.render_job
        if job.status != "done":
            raise ApiError(409, "not_ready", f"the render is {job.status}")
        path = session.output
        if isinstance(session, PhotoReview):
            path = path / _call(session.photo_name, item)
        if not path.is_file():
            raise ApiError(404, "not_found", f"{path.name} is not there any more")
        return FileResponse(path, filename=path.name, headers={"Cache-Control": "no-store"})


def _video(session: VideoReview | PhotoReview) -> VideoReview:
    if not isinstance(session, VideoReview):
        raise ApiError(404, "not_found", "this review is of a folder of photos")
    return session


def _call(fn: Callable[..., T], *args: Any) -> T:
    """Run a session method; its InputError (a bad index, a bad edit list) becomes 422."""
    try:
        return fn(*args)
    except InputError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    except VeilError as exc:
        raise ApiError(500, "internal_error", str(exc)) from exc
