"""Load test of ``veil serve`` on loopback: requests/s and latency of ``POST /api/anonymize``
for a 640x480 face image at several concurrencies, and the server's memory (RSS) during a
burst of simultaneous uploads.

The server runs in its own process (uvicorn, 127.0.0.1, default settings: 2 synchronous
requests at a time), so its RSS is measured alone. Every phase is bounded in time.

``--abuse`` measures hostile input instead (issue 18), each case on a fresh ``veil serve``
process whose peak RSS is its ``VmHWM``: a 7000 x 7000 JPEG "bomb" (a uniform image, a
few hundred KB) against a normal 7000 x 7000 photo, a float TIFF bomb, a 100,000-frame
clip, and 100 sequential requests of mixed sizes (RSS after request 10 vs after 100).

    python benchmarks/service_load.py [--requests 40] [--concurrency 1 2 4] [--burst 20]
    python benchmarks/service_load.py --abuse [--frames 100000] [--sequential 100]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import skimage.data
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import _machine


def face_image(width: int = 640, height: int = 480) -> bytes:
    """The astronaut photo (one face) fitted into a ``width x height`` PNG."""
    photo = skimage.data.astronaut()
    photo = cv2.resize(photo, (height, height), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 128, np.uint8)
    x0 = (width - height) // 2
    canvas[:, x0 : x0 + height] = photo
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread while in the ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))


def start_server(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "veil.service.app:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return _healthy(subprocess.Popen(cmd), port, "server")


def _healthy(server: subprocess.Popen[bytes], port: int, name: str) -> subprocess.Popen[bytes]:
    """``server`` once ``/api/health`` answers (killed after 60 s without)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"{name} did not start within 60 s")


def post(client: httpx.Client, data: bytes) -> float:
    start = time.perf_counter()
    response = client.post("/api/anonymize", files={"image": ("face.png", data, "image/png")})
    response.raise_for_status()
    assert response.headers["x-veil-faces"] == "1", response.headers
    return time.perf_counter() - start


def load(url: str, data: bytes, concurrency: int, requests: int, budget: float) -> list[float]:
    """``requests`` uploads by ``concurrency`` clients, stopping after ``budget`` seconds."""
    deadline = time.monotonic() + budget
    latencies: list[float] = []

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(n):
                if time.monotonic() > deadline:
                    return
                latencies.append(post(client, data))

    share = [requests // concurrency + (k < requests % concurrency) for k in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, share))
    return latencies


def status_mb(pid: int, key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def encoded(image: np.ndarray, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **options)
    return buf.getvalue()


def photo_7000(side: int = 7000) -> bytes:
    """A photo-like ``side x side`` JPEG: skimage photos tiled and enlarged, faces kept."""
    tiles = [skimage.data.astronaut(), skimage.data.chelsea()[:, :, :3], skimage.data.coffee()]
    row = np.concatenate([cv2.resize(t, (512, 512)) for t in tiles], axis=1)
    mosaic = np.concatenate([row, row[:, ::-1]], axis=0)
    big = cv2.resize(mosaic, (side, side), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).integers(-6, 7, big.shape, dtype=np.int16)
    return encoded(np.clip(big + noise, 0, 255).astype(np.uint8), "JPEG", quality=90)


def float_tiff_bomb(side: int = 7000) -> bytes:
    """A ``side x side`` float32 TIFF of zeros, deflate-compressed (a few hundred KB)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, side), np.float32), "F").save(
        buf, "TIFF", compression="tiff_adobe_deflate"
    )
    return buf.getvalue()


def long_clip(path: Path, frames: int) -> Path:
    """``frames`` frames of 16 x 16 at 30 fps, H.264 (PyAV)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 90, np.uint8), "rgb24")
        for _ in range(frames):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def start_veil_serve(port: int, *options: str) -> subprocess.Popen[bytes]:
    """``veil serve`` (the command, with its connection limits) in its own process."""
    cmd = [sys.executable, "-m", "veil.cli", "serve", "--port", str(port), *options]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _healthy(server, port, "veil serve")


def peak_for(data: bytes, name: str, *options: str) -> dict[str, float | str]:
    """A fresh server, one warm-up request, then ``data`` twice: the answer, peak RSS
    (VmHWM) when warm and after each request, and RSS after each request (MiB)."""
    port = free_port()
    server = start_veil_serve(port, *options)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            post(client, face_image())
            row: dict[str, float | str] = {"warm": status_mb(server.pid, "VmHWM")}
            for k in (1, 2):
                response = client.post("/api/anonymize", files={"image": (name, data)})
                code = "" if response.is_success else response.json()["error"]["code"]
                row["answer"] = f"{response.status_code} {code}".strip()
                row[f"peak{k}"] = status_mb(server.pid, "VmHWM")
                row[f"after{k}"] = status_mb(server.pid, "VmRSS")
            return row
    finally:
        server.terminate()
        server.wait(timeout=30)


def mixed_images() -> list[bytes]:
    sizes = [(640, 480), (1280, 720), (1920, 1080), (2592, 1944)]
    return [face_image(w, h) for w, h in sizes]


def abuse(args: argparse.Namespace) -> None:
    print(f"# {_machine.cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print("# each case: a fresh `veil serve` (default settings), one 640x480 warm-up request")
    print("# then the input twice; peak = VmHWM, after = VmRSS once the answer arrived")
    print("| input | file KiB | answer | warm peak | peak | after | peak, 2nd | after, 2nd |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    cases = [
        ("7000x7000 uniform JPEG (bomb)", encoded(np.full((7000, 7000, 3), 127, np.uint8), "JPEG")),
        ("7000x7000 photo JPEG", photo_7000()),
        ("7000x7000 float TIFF (bomb)", float_tiff_bomb()),
    ]
    peaks = {}
    for label, data in cases:
        r = peak_for(data, "x.img")
        peaks[label] = float(r["peak1"])
        print(
            f"| {label} | {len(data) / 1024:.0f} | {r['answer']} | {r['warm']:.0f} | "
            f"{r['peak1']:.0f} | {r['after1']:.0f} | {r['peak2']:.0f} | {r['after2']:.0f} |"
        )
    bomb, photo = peaks[cases[0][0]], peaks[cases[1][0]]
    print(
        f"\nbomb / photo peak RSS: {bomb / photo:.2f} (target <= 1.2); "
        f"bomb {bomb:.0f} MiB (target <= 1536)"
    )

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        clip = long_clip(Path(tmp) / "long.mp4", args.frames)
        made = time.perf_counter() - start
        port = free_port()
        server = start_veil_serve(port)
        try:
            start = time.perf_counter()
            with clip.open("rb") as f:
                url = f"http://127.0.0.1:{port}/api/jobs"
                response = httpx.post(url, files={"files": ("long.mp4", f)}, timeout=600)
            seconds = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(timeout=30)
        body = response.json()
        answer = body.get("error", {}).get("message") or body.get("status")
        print(
            f"\n{args.frames:,}-frame clip ({clip.stat().st_size / 1024:.0f} KiB, made in "
            f"{made:.0f} s): {response.status_code} in {seconds:.2f} s: {answer}"
        )

    port = free_port()
    server = start_veil_serve(port)
    images = mixed_images()
    try:
        rss = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            start = time.perf_counter()
            for k in range(args.sequential):
                post(client, images[k % len(images)])
                rss.append(status_mb(server.pid, "VmRSS"))
            seconds = time.perf_counter() - start
        print(
            f"\n{args.sequential} sequential requests (640x480 to 2592x1944, cycled) in "
            f"{seconds:.0f} s: RSS after 10 {rss[9]:.0f} MiB, after {args.sequential} "
            f"{rss[-1]:.0f} MiB, peak {status_mb(server.pid, 'VmHWM'):.0f} MiB"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--burst", type=int, default=20, help="simultaneous uploads")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per phase, at most")
    parser.add_argument("--abuse", action="store_true", help="hostile inputs instead of load")
    parser.add_argument("--frames", type=int, default=100_000, help="frames of the long clip")
    parser.add_argument("--sequential", type=int, default=100, help="requests, memory growth")
    args = parser.parse_args()
    if args.abuse:
        abuse(args)
        return

    data = face_image()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    try:
        idle = rss_mb(server.pid)
        load(url, data, 1, 3, args.budget)  # warm-up: model loaded, pipeline cached
        warm = rss_mb(server.pid)
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}; 640x480 PNG ({len(data) / 1024:.0f} KiB), "
            "default settings (centerface, gaussian, 2 sync slots)"
        )
        print("| concurrency | requests | req/s | p50 ms | p95 ms | max ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for c in args.concurrency:
            start = time.perf_counter()
            lat = np.array(load(url, data, c, args.requests, args.budget)) * 1000
            rate = len(lat) / (time.perf_counter() - start)
            p50, p95 = np.percentile(lat, [50, 95])
            print(f"| {c} | {len(lat)} | {rate:.1f} | {p50:.0f} | {p95:.0f} | {lat.max():.0f} |")
        with PeakRss(server.pid) as rss:
            start = time.perf_counter()
            lat = np.array(load(url, data, args.burst, args.burst, args.budget)) * 1000
            seconds = time.perf_counter() - start
        after = rss_mb(server.pid)
        print(
            f"\nburst of {args.burst} simultaneous uploads: {len(lat)} done in {seconds:.1f} s, "
            f"latency max {lat.max():.0f} ms"
        )
        print(
            f"server RSS MiB: idle {idle:.0f}, warm {warm:.0f}, burst peak {rss.peak:.0f}, "
            f"after {after:.0f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
