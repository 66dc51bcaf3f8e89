"""How long each action of the review page takes on a long clip (issue 16's target: no
page action over 2 s on 2 cores; renders excepted, they show progress).

Generates a clip (default: 5 minutes of 1080p at 25 fps; ``--minutes`` for less) with
real faces (scikit-image's astronaut and cameraman photos, moving) and a scene cut every
20 s, or takes ``--clip``; prepares the review session (proxy, thumbnails, veil's video
analysis; timed, reported apart) and serves it with uvicorn in this process; then times
the page's HTTP calls with a client:

* open: the page, its script, ``/api/review``, the timeline JSON, the flags, the
  thumbnail strip (one figure: all of them in a row);
* timeline: the timeline JSON alone;
* frame: a frame JPEG and its boxes at random positions (what moving the playhead does);
* track: a track's frames as remove/method entries (clicking a box, then Remove);
* save: writing an edit list with an add and a track's removes (atomic);
* render (``--render``): the re-render, reported apart.

    python benchmarks/review_actions.py --minutes 0.5 --frames 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import uvicorn
from skimage import data

from _machine import describe
from veil.review import VideoReview
from veil.service import ServiceSettings, create_app

TARGET = 2.0  # seconds, the limit for any page action


def make_clip(path: Path, minutes: float, size: tuple[int, int], fps: int = 25) -> Path:
    """Real faces moving over a textured background; a new shot every 20 s."""
    w, h = size
    frames = max(1, round(minutes * 60 * fps))
    faces = [data.astronaut()[20:220, 150:330], np.dstack([data.camera()[20:260, 230:430]] * 3)]
    faces = [cv2.resize(f, None, fx=h / 1080 * 1.2, fy=h / 1080 * 1.2) for f in faces]
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    texture = cv2.resize(texture, (w, h), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            shot = i // (20 * fps)
            img = np.roll(texture, shot * 997, axis=1) // (1 + shot % 2)
            for k, face in enumerate(faces):
                fh, fw = face.shape[:2]
                x = int((0.15 + 0.45 * k) * w + 120 * np.sin(i / 50 + k))
                y = int(0.3 * h + 60 * np.cos(i / 70 + k))
                if (i // 90 + k) % 5 == 4:  # each face leaves for a while now and then
                    continue
                img[y : y + fh, x : x + fw] = face
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return path


@contextmanager
def serving(session: VideoReview, work: Path) -> Iterator[str]:
    app = create_app(ServiceSettings(work_dir=work), review=session)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def get(client: httpx.Client, path: str) -> httpx.Response:
    r = client.get(path)
    r.raise_for_status()
    return r


def measure(client: httpx.Client, session: VideoReview, samples: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(1)
    n = session.info.frames
    open_paths = ["/review", "/static/review.js", "/api/review", "/api/review/timeline"]
    open_paths += ["/api/review/flags", "/api/review/thumbs.jpg"]
    results = {
        "open (page, script, info, timeline, flags, thumbnails)": timed(
            lambda: [get(client, p) for p in open_paths], 5
        ),
        "timeline JSON": timed(lambda: get(client, "/api/review/timeline"), 5),
    }
    positions = iter(rng.integers(0, n, samples).tolist())

    def frame() -> None:
        i = next(positions)
        get(client, f"/api/review/frames/{i}.jpg")
        get(client, f"/api/review/frames/{i}/faces")

    results["frame at a random position (JPEG + boxes)"] = timed(frame, samples)
    tracks = list(session.spans) or [0]
    picks = iter(rng.choice(tracks, samples).tolist())
    results["track -> remove entries"] = timed(
        lambda: get(client, f"/api/review/tracks/{next(picks)}"), samples if session.spans else 0
    )
    chunks = session.track(tracks[0])["chunks"] if session.spans else []
    w, h = session.info.width, session.info.height
    edits = {
        "version": 1,
        "add": [{"frames": [0, n - 1], "box": [w * 0.8, h * 0.1, w * 0.9, h * 0.3], "at": 0}],
        "remove": chunks,
    }

    def save() -> None:
        client.put("/api/review/edits", content=json.dumps(edits)).raise_for_status()

    results["save edits (add + a track's removes)"] = timed(save, 10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="a clip to review instead of a generated one")
    parser.add_argument("--minutes", type=float, default=5.0, help="generated clip length")
    parser.add_argument("--size", default="1920x1080", help="generated clip size, WxH")
    parser.add_argument("--frames", type=int, default=40, help="random frame fetches")
    parser.add_argument("--work", type=Path, help="work folder (kept: a second run reuses it)")
    parser.add_argument("--render", action="store_true", help="also time a re-render")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = args.clip
        if clip is None:
            w, h = map(int, args.size.split("x"))
            clip = work / f"review-{args.minutes:g}min-{w}x{h}.mp4"
            if not clip.exists():
                start = time.perf_counter()
                make_clip(clip, args.minutes, (w, h))
                print(f"generated {clip.name} in {time.perf_counter() - start:.0f} s")
        stages: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            stages.setdefault(stage, time.perf_counter())

        start = time.perf_counter()
        session = VideoReview.prepare(clip, work=work / "sessions", progress=progress)
        prepared = time.perf_counter() - start
        info = session.info
        print(describe())
        print(f"clip: {clip.name}, {info.width}x{info.height}, {info.frames} frames")
        print(f"prepare (proxy + thumbnails + analysis): {prepared:.1f} s", end="")
        print(" (reused)" if not stages else f", {info.frames / prepared:.1f} frames/s")
        print(f"flags: {len(session.flags)}, tracks: {len(session.spans)}\n")
        with serving(session, work) as url, httpx.Client(base_url=url, timeout=120) as client:
            results = measure(client, session, args.frames)
            if args.render:
                start = time.perf_counter()
                client.post("/api/review/render").raise_for_status()
                session.render_job.wait()
                render = time.perf_counter() - start
        print(f"| action | n | median ms | p95 ms | max ms | under {TARGET:g} s |")
        print("|---|---|---|---|---|---|")
        for name, times in results.items():
            if not times:
                continue
            ms = sorted(t * 1000 for t in times)
            p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
            ok = "yes" if ms[-1] < TARGET * 1000 else "NO"
            median = statistics.median(ms)
            print(f"| {name} | {len(ms)} | {median:.0f} | {p95:.0f} | {ms[-1]:.0f} | {ok} |")
        if args.render:
            print(
                f"\nre-render (excepted from the target): {render:.1f} s, "
                f"{info.frames / render:.1f} frames/s, status {session.render_job.status}"
            )


if __name__ == "__main__":
    main()
