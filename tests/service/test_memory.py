"""Memory of ``veil serve`` against tiny files that decode to huge images, measured as
the peak RSS (``VmHWM``) of a real server process."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import skimage.data
from PIL import Image

from factories import ASTRONAUT_FACE

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")

MB = 1024 * 1024


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def encoded(image: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **options)
    return buf.getvalue()


def large_face_photo(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``side x side`` grey image with the astronaut (face 96 px) near its centre."""
    image = np.full((side, side, 3), 110, np.uint8)
    x0 = y0 = side // 2 - 256
    image[y0 : y0 + 512, x0 : x0 + 512] = skimage.data.astronaut()
    return image, ASTRONAUT_FACE + np.array([x0, y0, x0, y0], np.float32)


def face_changed(original: np.ndarray, box: np.ndarray, data: bytes) -> float:
    x0, y0, x1, y1 = box.astype(int)
    with Image.open(io.BytesIO(data)) as im:
        out = np.asarray(im.convert("RGB")).astype(int)
    return float(np.abs(out[y0:y1, x0:x1] - original[y0:y1, x0:x1].astype(int)).mean())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``veil serve --max-memory 600`` in its own process: (URL, pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path_factory.mktemp("work")
    cmd = [sys.executable, "-m", "veil.cli", "serve", "--port", str(port)]
    cmd += ["--max-memory", "600", "--work-dir", str(work)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("veil serve did not start") from None
                time.sleep(0.2)
        # warm-up: model loaded, one small face anonymized
        small = cv2.resize(skimage.data.astronaut(), (256, 256))
        files = {"image": ("a.png", encoded(small, "PNG"))}
        response = httpx.post(f"{url}/api/anonymize", files=files, timeout=120)
        assert response.status_code == 200, response.text
        assert face_changed(small, ASTRONAUT_FACE / 2, response.content) > 10
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert list(work.iterdir()) == []  # the work folder went with the server


def jpeg_bomb() -> bytes:
    return encoded(np.full((7000, 7000, 3), 127, np.uint8), "JPEG")


def float_tiff_bomb() -> bytes:
    return encoded(np.zeros((7000, 7000), np.float32), "TIFF", compression="tiff_adobe_deflate")


@pytest.mark.parametrize(("name", "make"), [("JPEG", jpeg_bomb), ("float TIFF", float_tiff_bomb)])
def test_a_tiny_file_of_a_huge_image_is_refused_before_decoding(
    server: tuple[str, int], name: str, make: Callable[[], bytes]
) -> None:
    url, pid = server
    data = make()
    assert len(data) < 1_000_000, name  # a small upload...
    before = peak_mb(pid)
    response = httpx.post(f"{url}/api/anonymize", files={"image": ("x", data)}, timeout=120)
    assert response.status_code == 413, response.text  # ...that would need > 600 MB
    error = response.json()["error"]
    assert error["code"] == "too_much_memory"
    assert "--max-memory" in error["message"] and "7000 x 7000" in error["message"]
    assert peak_mb(pid) < before + 64  # nothing was decoded


def test_a_large_image_is_anonymized_within_its_memory_bound(server: tuple[str, int]) -> None:
    """9 megapixels pass the 600 MB budget; detection runs on a bounded working resolution,
    so the server's peak stays within the budget above its warm size."""
    url, pid = server
    image, box = large_face_photo(3000)
    data = encoded(image, "JPEG", quality=95)
    warm = peak_mb(pid)
    response = httpx.post(f"{url}/api/anonymize", files={"image": ("x.jpg", data)}, timeout=300)
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Veil-Faces"]) >= 1
    assert face_changed(image, box, response.content) > 10
    assert peak_mb(pid) - warm < 520, (warm, peak_mb(pid))  # native detection: ~1100


def huge_frame_clip(path: Path, side: int = 7000, frames: int = 3) -> Path:
    """``frames`` uniform ``side x side`` H.264 frames: a small file of huge frames."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 90, np.uint8), "rgb24")
        for _ in range(frames):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_a_video_of_huge_frames_is_refused_before_decoding(
    server: tuple[str, int], tmp_path: Path
) -> None:
    url, pid = server
    clip = huge_frame_clip(tmp_path / "huge.mp4")
    assert clip.stat().st_size < 2_000_000
    before = peak_mb(pid)
    with clip.open("rb") as f:
        response = httpx.post(f"{url}/api/jobs", files={"files": ("huge.mp4", f)}, timeout=120)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "too_much_memory" and "7000 x 7000" in error["message"]
    assert peak_mb(pid) < before + 64  # not one frame was decoded
