"""Abuse of the service: cross-site and DNS-rebinding requests, answers before the body,
slow clients, over-long videos, token defaults of ``veil serve``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from factories import decode_image, face_on_canvas, png_bytes
from veil.commands.serve import resolve_token, serve
from veil.errors import InputError
from veil.service import ServiceSettings, is_loopback, jobs
from veil.service.intake import _loopback_authority
from video_factory import make_video

decode = decode_image


def face_changed(original: np.ndarray, box: np.ndarray, data: bytes) -> float:
    """Mean absolute change inside the face box of the returned image."""
    x0, y0, x1, y1 = box.astype(int)
    out = decode(data).astype(int)
    return float(np.abs(out[y0:y1, x0:x1] - original[y0:y1, x0:x1].astype(int)).mean())


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    return face_on_canvas()


@pytest.fixture(scope="module")
def local(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A loopback server without a token (``veil serve``'s default)."""
    settings = ServiceSettings(work_dir=tmp_path_factory.mktemp("work"), max_pixels=1_000_000)
    with serve(settings) as (url, _):
        yield url, int(url.rsplit(":", 1)[1])


def raw_request(port: int, head: bytes, body: bytes = b"", wait: float = 10) -> bytes:
    """Send ``head`` (and ``body``) on a socket; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head + body)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def upload_head(port: int, path: str, length: int, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("127.0.0.1:{port}", None, 200),
        ("localhost:{port}", "http://localhost:{port}", 200),
        ("127.0.0.1:{port}", "http://127.0.0.1:{port}", 200),
        ("evil.example:{port}", "http://evil.example:{port}", 403),  # DNS rebinding
        ("evil.example:{port}", None, 403),
        ("127.0.0.1:{port}", "http://evil.example:{port}", 403),  # cross-site POST
        ("127.0.0.1:{port}", "null", 403),  # sandboxed frame, file: page
        ("127.0.0.1:1", None, 403),  # another port: another origin
        ("127.0.0.1:{port}", "http://127.0.0.1:1", 403),
        ("localhost.evil.example:{port}", None, 403),
    ],
)
def test_loopback_without_token_accepts_only_local_host_and_origin(
    local: tuple[str, int], face: Any, host: str, origin: str | None, status: int
) -> None:
    url, port = local
    image, box = face
    headers = {"Host": host.format(port=port)}
    if origin is not None:
        headers["Origin"] = origin.format(port=port)
    files = {"image": ("a.png", png_bytes(image), "image/png")}
    response = httpx.post(f"{url}/api/anonymize", files=files, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    if status == 200:
        assert int(response.headers["X-Veil-Faces"]) >= 1
        assert face_changed(image, box, response.content) > 10
    else:
        assert response.json()["error"]["code"] == "forbidden"
        page = httpx.get(f"{url}/", headers=headers)  # the page is not served to them either
        assert page.status_code == 403


@pytest.mark.parametrize(
    ("authority", "port", "ok"),
    [
        ("localhost:8000", 8000, True),
        ("LOCALHOST:8000", 8000, True),
        ("[::1]:8000", 8000, True),
        ("127.0.0.1", 80, True),  # no port: the scheme's default
        ("127.0.0.1", 8000, False),
        ("127.0.0.2:8000", 8000, False),  # loopback, but not a name a browser page uses
        ("[::1]x:8000", 8000, False),
        ("localhost:80a", 8000, False),
        ("", 8000, False),
    ],
)
def test_loopback_authority(authority: str, port: int, ok: bool) -> None:
    assert _loopback_authority(authority, port, 80) is ok


def test_queue_full_and_too_large_are_answered_before_the_body(
    serve: Any, monkeypatch: pytest.MonkeyPatch, face: Any, tmp_path: Path
) -> None:
    release = threading.Event()
    monkeypatch.setattr(jobs, "run_images_task", lambda job, **_: release.wait(10))
    settings = ServiceSettings(max_jobs=1, max_queue=0, work_dir=tmp_path, max_video_bytes=2**20)
    with serve(settings) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        files = {"files": ("a.png", png_bytes(face[0]), "image/png")}
        assert httpx.post(f"{url}/api/jobs", files=files, timeout=30).status_code == 202
        # 500 MB announced, not one byte of it sent: the answer must come anyway
        started = time.monotonic()
        answer = raw_request(port, upload_head(port, "/api/jobs", 500_000_000))
        assert answer.startswith(b"HTTP/1.1 429"), answer
        assert time.monotonic() - started < 5
        assert [p.suffix for p in app.state.service.root.iterdir()] == [".upload"]  # job 1
        release.set()
    with serve(ServiceSettings(work_dir=tmp_path, max_video_bytes=2**20)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        answer = raw_request(port, upload_head(port, "/api/jobs", 500_000_000))
        assert answer.startswith(b"HTTP/1.1 413"), answer


def test_sync_requests_beyond_twice_the_slots_are_answered_before_the_body(
    serve: Any, tmp_path: Path
) -> None:
    settings = ServiceSettings(work_dir=tmp_path, max_sync=1, body_timeout=20)
    with serve(settings) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for _ in range(2):  # two uploads in progress: one per slot plus one waiting
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(upload_head(port, "/api/anonymize", 100_000) + b"--XyZ\r\n")
            slow.append(sock)
        time.sleep(0.3)
        try:
            answer = raw_request(port, upload_head(port, "/api/anonymize", 100_000))
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"retry-after: 2" in answer.lower()
        finally:
            for sock in slow:
                sock.close()


def test_uploads_are_spooled_in_the_work_folder(
    serve: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The system temp folder is made unusable: an upload larger than Starlette's 1 MB
    in-memory spool still works, so it went to the service's own folder."""
    import tempfile

    image, box = face_on_canvas(canvas=(900, 1200), offset=(300, 200))
    data = png_bytes(image)
    assert len(data) > 2**20
    work = tmp_path / "work"
    work.mkdir()
    settings = ServiceSettings(work_dir=work, max_image_bytes=10_000_000)
    with serve(settings) as (url, _):
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
        files = {"image": ("a.png", data, "image/png")}
        response = httpx.post(f"{url}/api/anonymize", files=files, timeout=120)
        monkeypatch.undo()
    assert response.status_code == 200, response.text
    assert face_changed(image, box, response.content) > 10


def test_a_silent_client_times_out(serve: Any, tmp_path: Path) -> None:
    settings = ServiceSettings(work_dir=tmp_path, body_timeout=0.5)
    with serve(settings) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        started = time.monotonic()
        answer = raw_request(port, upload_head(port, "/api/anonymize", 100_000), b"--XyZ\r\n")
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 5
        assert list(app.state.service.root.iterdir()) == []


def test_headers_must_arrive_in_time(face: Any) -> None:
    import uvicorn

    from veil.service import create_app
    from veil.service.server import uvicorn_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(ServiceSettings())
    config = uvicorn_config(app, "127.0.0.1", port, header_timeout=0.5)
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            started = time.monotonic()
            assert trickle_until_closed(sock, 5) < 2  # trickling bytes does not keep it open
            assert time.monotonic() - started > 0.4
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.service.close()


def trickle_until_closed(sock: socket.socket, limit: float) -> float:
    """Send a byte every 0.1 s until the server closes the connection; seconds it took."""
    import select

    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            sock.sendall(b"x")
        except OSError:
            return time.monotonic() - started
        if select.select([sock], [], [], 0.1)[0]:
            try:
                if sock.recv(100) == b"":
                    return time.monotonic() - started
            except OSError:
                return time.monotonic() - started
    return limit


def test_a_video_over_the_frame_limit_is_refused_from_its_container(
    serve: Any, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "long.mp4", frames=120, size=(32, 32), audio=False)
    settings = ServiceSettings(work_dir=tmp_path / "w", max_frames=50)
    (tmp_path / "w").mkdir()
    with serve(settings) as (url, app):
        files = {"files": ("long.mp4", clip.read_bytes(), "video/mp4")}
        response = httpx.post(f"{url}/api/jobs", files=files, timeout=60)
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "too_many_frames"
        assert list(app.state.service.root.iterdir()) == []
    settings = ServiceSettings(work_dir=tmp_path / "w", max_duration=2)
    with serve(settings) as (url, app):
        files = {"files": ("long.mp4", clip.read_bytes(), "video/mp4")}
        response = httpx.post(f"{url}/api/jobs", files=files, timeout=60)
        assert response.status_code == 413, response.text  # 120 frames at 25 fps: 4.8 s
        assert response.json()["error"]["code"] == "too_long"


def test_a_video_over_the_frame_limit_stops_while_decoding(tmp_path: Path) -> None:
    """A container that lies (or says nothing) about its length: the frames are counted,
    the job fails at the limit and leaves no result."""
    from veil.config import RunConfig
    from veil.pipeline import Pipeline

    clip = make_video(tmp_path / "long.mp4", frames=300, size=(32, 32), audio=False)
    job = jobs.Job("j", "video", [clip], tmp_path / "out.mp4", "video/mp4", "anonymized.mp4")
    settings = ServiceSettings(max_frames=40)
    pipeline = Pipeline.from_config(RunConfig())
    with pytest.raises(InputError, match="more than 40 frames"):
        jobs.run_video_task(job, pipeline=pipeline, config=RunConfig(), settings=settings)
    assert not job.result.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["long.mp4"]


def test_a_job_over_its_time_limit_fails_with_no_result(serve: Any, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=60, size=(64, 48), audio=False)
    work = tmp_path / "w"
    work.mkdir()
    with serve(ServiceSettings(work_dir=work, job_timeout=1e-3)) as (url, app):
        files = {"files": ("clip.mp4", clip.read_bytes(), "video/mp4")}
        job = httpx.post(f"{url}/api/jobs", files=files, timeout=60).json()
        deadline = time.monotonic() + 60
        while (status := httpx.get(f"{url}/api/jobs/{job['id']}").json())["status"] not in (
            "done",
            "failed",
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status["status"] == "failed"
        assert "--job-timeout" in status["error"]
        assert list(app.state.service.root.iterdir()) == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_token_defaults_of_veil_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolve_token("127.0.0.1", None, False, True) is None  # loopback: no token needed
    assert resolve_token("127.0.0.1", "given-token", False, True) == "given-token"
    generated = resolve_token("0.0.0.0", None, False, False)
    assert generated is not None and len(generated) >= 24
    assert generated in capsys.readouterr().err  # shown once
    assert resolve_token("0.0.0.0", None, True, False) is None
    assert "WARNING: --no-auth" in capsys.readouterr().err
    assert resolve_token("127.0.0.1", None, True, True) is None
    assert "WARNING" not in capsys.readouterr().err
    with pytest.raises(click.UsageError, match="exclude each other"):
        resolve_token("0.0.0.0", "given-token", True, False)


def test_veil_serve_refuses_no_auth_with_a_token() -> None:
    result = CliRunner().invoke(serve, ["--no-auth", "--token", "abcdefghijk"])
    assert result.exit_code == 2
    assert "exclude each other" in result.output
