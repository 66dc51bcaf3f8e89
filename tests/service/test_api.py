"""The HTTP API against a real server: images, jobs, limits, authentication, cleanup."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from factories import decode_image, face_on_canvas, png_bytes
from veil.service import ServiceSettings, jobs
from video_factory import make_video

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


decode = decode_image


@pytest.fixture(scope="module")
def server(
    serve: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Any]]:
    settings = ServiceSettings(
        token=TOKEN,
        max_image_bytes=2_000_000,
        max_pixels=1_000_000,
        work_dir=tmp_path_factory.mktemp("work"),
    )
    with serve(settings) as (url, app), httpx.Client(base_url=url, timeout=60) as client:
        yield client, app


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    return face_on_canvas()


def post_image(client: httpx.Client, data: bytes, **fields: Any) -> httpx.Response:
    files = {"image": ("photo.png", data, "image/png")}
    return client.post("/api/anonymize", files=files, data=fields, headers=AUTH)


def wait_done(client: httpx.Client, job_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        seen.append(status)
        if status["status"] in ("done", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {seen[-1]}")


def work_files(app: Any) -> list[Path]:
    return list(app.state.service.root.iterdir())


def test_health_needs_no_token(server: Any) -> None:
    client, _ = server
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["active_jobs"] == 0


def test_methods_lists_registered_names(server: Any) -> None:
    client, _ = server
    body = client.get("/api/methods", headers=AUTH).json()
    assert "centerface" in [d["name"] for d in body["detectors"]]
    assert {"gaussian", "pixelate"} <= {a["name"] for a in body["anonymizers"]}
    assert body["masks"] == ["box", "ellipse"] and body["defaults"]["method"] == "gaussian"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-123"}, 401),
        ({"Authorization": TOKEN}, 401),
        (AUTH, 200),
    ],
)
def test_token_is_required(server: Any, headers: dict[str, str], status: int) -> None:
    client, _ = server
    response = client.get("/api/methods", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_anonymize_changes_the_face_only(server: Any, face: Any) -> None:
    client, app = server
    image, box = face
    response = post_image(client, png_bytes(image), method="pixelate", mask="box")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-veil-faces"] == "1"
    out = decode(response.content)
    x0, y0, x1, y1 = box.astype(int)
    diff = np.abs(out.astype(int) - image.astype(int))
    assert diff[y0:y1, x0:x1].mean() > 10  # the face is changed
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 1.5
    outside = np.ones(image.shape[:2], bool)
    top, left = max(int(cy - half), 0), max(int(cx - half), 0)
    outside[top : int(cy + half), left : int(cx + half)] = False
    assert np.array_equal(out[outside], image[outside])  # PNG: exact outside the region
    assert work_files(app) == []


def test_anonymize_keeps_jpeg_and_strips_metadata(server: Any, face: Any) -> None:
    client, _ = server
    buf = io.BytesIO()
    Image.fromarray(face[0]).save(buf, "JPEG", comment=b"VEIL-SECRET")
    response = post_image(client, buf.getvalue())
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert b"VEIL-SECRET" not in response.content


@pytest.mark.parametrize(
    ("payload", "fields", "status", "code"),
    [
        (b"definitely not an image", {}, 415, "unsupported_media_type"),
        (b"", {}, 422, "empty_file"),
        ("big", {}, 413, "too_large"),
        ("many-pixels", {}, 413, "too_many_pixels"),
        ("face", {"method": "nope"}, 422, "invalid_request"),
        ("face", {"strength": "0"}, 422, "invalid_request"),
        ("face", {"threshold": "2"}, 422, "invalid_request"),
    ],
)
def test_bad_uploads_get_json_errors(
    server: Any, face: Any, payload: Any, fields: dict[str, str], status: int, code: str
) -> None:
    client, app = server
    rng = np.random.default_rng(0)
    data = (
        {
            "big": lambda: png_bytes(rng.integers(0, 256, (900, 1000, 3), np.uint8)),
            "many-pixels": lambda: png_bytes(np.zeros((1001, 1000, 3), np.uint8)),
            "face": lambda: png_bytes(face[0]),
        }[payload]()
        if isinstance(payload, str)
        else payload
    )
    response = post_image(client, data, **fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert work_files(app) == []


def test_unknown_route_and_method_are_json(server: Any) -> None:
    client, _ = server
    assert client.get("/api/nothing", headers=AUTH).json()["error"]["code"] == "not_found"
    response = client.put("/api/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_video_job_lifecycle(server: Any, tmp_path: Path) -> None:
    client, app = server
    video = make_video(tmp_path / "clip.mp4", frames=12, audio=False)
    files = {"files": ("../../etc/passwd", video.read_bytes(), "video/mp4")}
    response = client.post("/api/jobs", files=files, headers=AUTH)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "video" and job["status"] in ("queued", "running")
    seen = wait_done(client, job["id"])
    assert seen[-1]["status"] == "done" and seen[-1]["progress"] == 1.0
    assert all(0 <= s["progress"] <= 1 for s in seen)
    assert [p.suffix for p in work_files(app)] == [".mp4"]  # the original is gone
    result = client.get(f"/api/jobs/{job['id']}/result", headers=AUTH)
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert len(result.content) > 1000
    again = client.get(f"/api/jobs/{job['id']}/result", headers=AUTH)
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    assert work_files(app) == []


def test_image_batch_job_returns_a_zip(server: Any, face: Any) -> None:
    client, app = server
    files = [("files", (f"a{k}.png", png_bytes(face[0]), "image/png")) for k in range(2)]
    job = client.post("/api/jobs", files=files, headers=AUTH).json()
    assert wait_done(client, job["id"])[-1]["status"] == "done"
    result = client.get(f"/api/jobs/{job['id']}/result", headers=AUTH)
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        assert archive.namelist() == ["anonymized_001.png", "anonymized_002.png"]
    assert work_files(app) == []


def test_delete_job_and_unknown_job(server: Any, face: Any) -> None:
    client, app = server
    files = {"files": ("a.png", png_bytes(face[0]), "image/png")}
    job = client.post("/api/jobs", files=files, headers=AUTH).json()
    assert client.delete(f"/api/jobs/{job['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/api/jobs/{job['id']}", headers=AUTH).status_code == 404
    assert client.delete(f"/api/jobs/{job['id']}", headers=AUTH).status_code == 404
    time.sleep(0.5)  # a running job stops at its next progress step and cleans up
    assert work_files(app) == []


def test_not_a_video_with_video_name_is_refused(server: Any) -> None:
    client, app = server
    files = {"files": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42 but not really", "video/mp4")}
    response = client.post("/api/jobs", files=files, headers=AUTH)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert work_files(app) == []


def test_queue_full_is_429(
    serve: Any, monkeypatch: pytest.MonkeyPatch, face: Any, tmp_path: Path
) -> None:
    import threading

    release = threading.Event()

    def blocked(job: Any, **_: Any) -> None:
        release.wait(10)

    monkeypatch.setattr(jobs, "run_images_task", blocked)
    settings = ServiceSettings(max_jobs=1, max_queue=1, work_dir=tmp_path)
    with serve(settings) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        files = {"files": ("a.png", png_bytes(face[0]), "image/png")}
        codes = [client.post("/api/jobs", files=files).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        release.set()
    assert list(tmp_path.iterdir()) == []  # shutdown removed the work folder


def test_unread_results_expire(serve: Any, face: Any, tmp_path: Path) -> None:
    settings = ServiceSettings(result_ttl=0.3, janitor_interval=0.1, work_dir=tmp_path)
    with serve(settings) as (url, app), httpx.Client(base_url=url, timeout=30) as client:
        files = {"files": ("a.png", png_bytes(face[0]), "image/png")}
        job = client.post("/api/jobs", files=files).json()
        assert wait_done(client, job["id"])[-1]["status"] == "done"
        time.sleep(0.8)
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert work_files(app) == []


def test_openapi_schema_is_served_with_the_token(server: Any) -> None:
    client, _ = server
    for path in ("/openapi.json", "/docs"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "unauthorized"
    for path in ("/", "/static/app.js", "/static/style.css", "/api/health"):
        assert client.get(path).status_code == 200, path
    schema = client.get("/openapi.json", headers=AUTH).json()
    assert {"/api/anonymize", "/api/jobs", "/api/jobs/{job_id}/result"} <= set(schema["paths"])
