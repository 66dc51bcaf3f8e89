"""Load test of ``veil serve`` on loopback: requests/s and latency of ``POST /api/anonymize``
for a 640x480 face image at several concurrencies, and the server's memory (RSS) during a
burst of simultaneous uploads.

The server runs in its own process (uvicorn, 127.0.0.1, default settings: 2 synchronous
requests at a time), so its RSS is measured alone. Every phase is bounded in time.

    python benchmarks/service_load.py [--requests 40] [--concurrency 1 2 4] [--burst 20]
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
    server = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start within 60 s")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--burst", type=int, default=20, help="simultaneous uploads")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per phase, at most")
    args = parser.parse_args()

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
