"""``veil review``'s HTTP API against a real server: timeline, frames at any index, edit
lists (round trip, refusals), renders (progress, result, same bytes as ``veil video
--edits``), photo folders, and the service's guard (token, loopback Host)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas
from veil.cli import main
from veil.review import PhotoReview, VideoReview
from veil.review.proxy import PROXY_GOP
from veil.review.render import RenderJob
from veil.service import ServiceSettings
from video_factory import face_change, face_video

TOKEN = "review-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRAMES = 40
EMPTY = [240.0, 150.0, 300.0, 220.0]  # noise, away from the moving face


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def iou(a: list[float], b: Any) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(inter / (area - inter))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    folder = tmp_path_factory.mktemp("clip")
    return face_video(folder / "clip.mp4", frames=FRAMES, size=(320, 240))


@pytest.fixture(scope="module")
def session(clip: tuple[Path, list[np.ndarray]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return VideoReview.prepare(clip[0], work=tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def client(
    serve: Any, session: VideoReview, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path_factory.mktemp("serve"))
    with serve(settings, session) as (url, _), httpx.Client(base_url=url, timeout=60) as c:
        yield c


def wait_render(client: httpx.Client, timeout: float = 120) -> list[dict[str, Any]]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(client.get("/api/review/render", headers=AUTH).json())
        if seen[-1]["status"] in ("done", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"render did not finish: {seen[-1]}")


def put_edits(client: httpx.Client, data: Any, **params: Any) -> httpx.Response:
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.put("/api/review/edits", content=body, headers=AUTH, params=params)


def test_timeline_has_every_frame_and_the_face_track(
    client: httpx.Client, clip: tuple[Path, list[np.ndarray]]
) -> None:
    info = client.get("/api/review", headers=AUTH).json()
    assert (info["kind"], info["frames"], info["width"], info["height"]) == (
        "video",
        FRAMES,
        320,
        240,
    )
    t = client.get("/api/review/timeline", headers=AUTH).json()
    assert len(t["counts"]) == len(t["scores"]) == len(t["tracked"]) == FRAMES
    assert all(c >= 1 for c in t["counts"])  # the face is there on every frame
    assert [s for s in t["scores"] if s is not None]  # key frames carry detection scores
    assert t["tracks"] and t["thumbs"]["count"] >= 1
    thumbs = client.get("/api/review/thumbs.jpg", headers=AUTH)
    assert thumbs.headers["content-type"] == "image/jpeg"
    strip = cv2.imdecode(np.frombuffer(thumbs.content, np.uint8), cv2.IMREAD_COLOR)
    assert strip.shape[1] == t["thumbs"]["size"][0] * t["thumbs"]["count"]
    for k in (0, 13, FRAMES - 1):
        faces = client.get(f"/api/review/frames/{k}/faces", headers=AUTH).json()["faces"]
        assert max(iou(f["box"], clip[1][k]) for f in faces) > 0.4


@pytest.mark.parametrize("index", [0, 1, PROXY_GOP - 1, PROXY_GOP, PROXY_GOP + 1, 23, FRAMES - 1])
def test_frame_fetch_returns_that_frame(
    client: httpx.Client, clip: tuple[Path, list[np.ndarray]], index: int
) -> None:
    response = client.get(f"/api/review/frames/{index}.jpg", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    got = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR),
        cv2.COLOR_BGR2RGB,
    ).astype(int)
    source = decode(clip[0])
    errors = [np.abs(cv2.resize(f, got.shape[1::-1]).astype(int) - got).mean() for f in source]
    assert int(np.argmin(errors)) == index  # the right frame, not a neighbour


def test_frames_outside_the_clip_are_refused(client: httpx.Client) -> None:
    for path in (f"/api/review/frames/{FRAMES}.jpg", "/api/review/frames/-1/faces"):
        r = client.get(path, headers=AUTH)
        assert r.status_code == 422 and "outside" in r.json()["error"]["message"]
    assert client.get("/api/review/tracks/999", headers=AUTH).status_code == 422


def test_edits_round_trip(client: httpx.Client, session: VideoReview) -> None:
    track = client.get("/api/review/tracks/1", headers=AUTH).json()
    covered = [f for c in track["chunks"] for f in range(c["frames"][0], c["frames"][1] + 1)]
    assert covered == list(range(track["first"], track["last"] + 1))
    edits = {
        "version": 1,
        "add": [{"frames": [3, 20], "box": EMPTY, "track": True, "at": 10}],
        "remove": track["chunks"][:1],
        "methods": [{"frames": [0, 5], "box": [1.0, 1.0, 50.0, 50.0], "method": "pixelate"}],
    }
    saved = put_edits(client, edits)
    assert saved.status_code == 200, saved.text
    assert client.get("/api/review/edits", headers=AUTH).json() == saved.json()
    on_disk = json.loads(session.edits_path.read_text(encoding="utf-8"))
    assert on_disk["add"] == edits["add"] and on_disk["methods"] == edits["methods"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"version": 1, "add": [{"frames": [0, 5], "box": [1, 2, 3]}]}, "add[0].box"),
        ({"version": 1, "add": [{"frames": [0, FRAMES], "box": EMPTY}]}, "add[0].frames"),
        ({"version": 1, "remove": [{"frames": [5, 2], "box": EMPTY}]}, "remove[0]"),
        ({"version": 1, "remove": [{"frames": [0, 0], "box": [400, 10, 500, 50]}]}, "outside"),
        ({"version": 2}, "version"),
    ],
)
def test_malformed_edits_are_refused_and_nothing_written(
    client: httpx.Client, session: VideoReview, body: Any, message: str
) -> None:
    put_edits(client, {"version": 1, "add": [], "remove": []})
    before = session.edits_path.read_bytes()
    r = put_edits(client, body)
    assert r.status_code == 422
    assert message in r.json()["error"]["message"]
    assert session.edits_path.read_bytes() == before


def test_oversized_edits_are_refused(client: httpx.Client) -> None:
    r = put_edits(client, b" " * (5 * 1024 * 1024))
    assert r.status_code == 413


@pytest.mark.parametrize("tracked", [False, True], ids=["fixed-add", "tracked-add"])
def test_render_reports_progress_and_gives_the_same_bytes_as_the_cli(
    client: httpx.Client,
    session: VideoReview,
    clip: tuple[Path, list[np.ndarray]],
    tmp_path: Path,
    tracked: bool,
) -> None:
    """A tracked add is followed before the frames (its own share of the progress bar);
    either way the page writes the bytes ``veil video --edits`` writes."""
    src, boxes = clip
    track = client.get("/api/review/tracks/1", headers=AUTH).json()
    kept = [c for c in track["chunks"] if c["frames"][1] < 20]
    cut = kept[-1]["frames"][1] + 1  # the face is left as it is before, anonymized after
    edits = {
        "version": 1,
        "add": [{"frames": [0, FRAMES - 1], "box": EMPTY, "track": tracked, "at": 0}],
        "remove": kept,
    }
    assert put_edits(client, edits).status_code == 200
    started = client.post("/api/review/render", headers=AUTH)
    assert started.status_code == 202
    seen = wait_render(client)
    assert seen[-1]["status"] == "done", seen[-1]
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    page = client.get("/api/review/render/result", headers=AUTH)
    assert page.status_code == 200 and page.content == session.output.read_bytes()

    cli_out = tmp_path / "cli.mp4"
    args = ["video", str(src), "--edits", str(session.edits_path), "-o", str(cli_out), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert cli_out.read_bytes() == page.content  # page and command line: same bytes

    change = face_change(src, session.output, boxes)
    assert max(change[:cut]) < 4 and min(change[cut:]) > 10  # removed, then anonymized
    empty = face_change(src, session.output, [np.array(EMPTY, int)] * FRAMES)
    # the added box: exactly there when fixed; followed over noise it may drift a little
    assert min(empty) > (10 if not tracked else 5)


def test_render_job_runs_one_at_a_time() -> None:
    job, release = RenderJob(), threading.Event()

    def work(progress: Callable[[float], None]) -> None:
        progress(0.5)
        release.wait(10)

    assert job.start(work)
    assert not job.start(lambda progress: None)  # refused while running
    time.sleep(0.1)
    assert job.describe()["progress"] == 0.5
    release.set()
    assert job.wait(10) and job.status == "done" and job.progress == 1.0


def test_a_running_render_refuses_another(client: httpx.Client, session: VideoReview) -> None:
    release = threading.Event()
    assert session.render_job.start(lambda progress: release.wait(10) and None)
    try:
        r = client.post("/api/review/render", headers=AUTH)
        assert r.status_code == 409
        assert client.get("/api/review/render/result", headers=AUTH).status_code == 409
    finally:
        release.set()
        session.render_job.wait(10)


def test_token_and_host_guard(serve: Any, session: VideoReview, tmp_path: Path) -> None:
    with serve(ServiceSettings(token=TOKEN, work_dir=tmp_path), session) as (url, _):
        assert httpx.get(f"{url}/review").status_code == 200  # the page itself is open
        assert httpx.get(f"{url}/static/review.js").status_code == 200
        for path in ("/api/review", "/api/review/timeline", "/api/review/frames/0.jpg"):
            assert httpx.get(url + path).status_code == 401
        bad = {"Authorization": "Bearer wrong-token-0000"}
        assert httpx.put(f"{url}/api/review/edits", content="{}", headers=bad).status_code == 401
    with serve(ServiceSettings(work_dir=tmp_path), session) as (url, _):  # loopback, no token
        assert httpx.get(f"{url}/api/review/timeline").status_code == 200
        host = {"Host": "evil.example"}
        assert httpx.get(f"{url}/api/review/timeline", headers=host).status_code == 403
        origin = {"Origin": "http://evil.example"}
        assert httpx.put(f"{url}/api/review/edits", content="{}", headers=origin).status_code == 403


def test_routes_exist_only_with_a_review_session(serve: Any, tmp_path: Path) -> None:
    with serve(ServiceSettings(work_dir=tmp_path)) as (url, _):
        assert httpx.get(f"{url}/review").status_code == 404
        assert httpx.get(f"{url}/api/review").status_code == 404


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos") / "photos"
    (folder / "sub").mkdir(parents=True)
    face, _ = face_on_canvas()
    Image.fromarray(face).save(folder / "a_face.png")
    noise = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "sub" / "b_empty.png")
    return folder


def test_photo_folder_review(serve: Any, photos: Path, tmp_path: Path) -> None:
    face_img, _face_box = face_on_canvas()
    out = tmp_path / "released"
    session = PhotoReview.prepare(photos, work=tmp_path / "work", output=out)
    with (
        serve(ServiceSettings(token=TOKEN, work_dir=tmp_path), session) as (url, _),
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        listed = c.get("/api/review/photos", headers=AUTH).json()["photos"]
        assert [p["name"] for p in listed] == ["sub/b_empty.png", "a_face.png"]  # flagged first
        assert listed[0]["flags"] == ["none"] and listed[1]["faces"] == 1
        empty_k, face_k = listed[0]["index"], listed[1]["index"]
        assert c.get(f"/api/review/thumbs/{empty_k}.jpg", headers=AUTH).status_code == 200
        face = c.get(f"/api/review/frames/{face_k}/faces", headers=AUTH).json()["faces"][0]
        add = {"version": 1, "add": [{"frames": [0, 0], "box": [20, 20, 120, 120], "track": False}]}
        assert put_edits(c, add, item=empty_k).status_code == 200
        remove = {"version": 1, "add": [], "remove": [{"frames": [0, 0], "box": face["box"]}]}
        assert put_edits(c, remove, item=face_k).status_code == 200
        bad = {"version": 1, "add": [{"frames": [0, 1], "box": [1, 1, 9, 9]}]}
        assert put_edits(c, bad, item=face_k).status_code == 422  # a photo has frame 0 only
        assert (photos.parent / "photos.edits" / "sub" / "b_empty.png.edits.json").is_file()
        assert c.post("/api/review/render", headers=AUTH).status_code == 202
        assert wait_render(c)[-1]["status"] == "done"
        one = c.get("/api/review/render/result", headers=AUTH, params={"item": face_k})
        assert one.status_code == 200
    edits = photos.parent / "photos.edits" / "sub" / "b_empty.png.edits.json"
    cli_out = tmp_path / "cli.png"
    args = ["anonymize", str(photos / "sub" / "b_empty.png"), "--edits", str(edits)]
    result = CliRunner().invoke(main, [*args, "-o", str(cli_out), "-q"])
    assert result.exit_code == 0, result.output
    assert cli_out.read_bytes() == (out / "sub" / "b_empty.png").read_bytes()  # same bytes
    empty_out = np.asarray(Image.open(out / "sub" / "b_empty.png")).astype(int)
    noise = np.asarray(Image.open(photos / "sub" / "b_empty.png")).astype(int)
    assert np.abs(empty_out - noise)[30:110, 30:110].mean() > 10  # the drawn box
    assert np.abs(empty_out - noise)[:, 200:].max() == 0
    face_out = np.asarray(Image.open(out / "a_face.png")).astype(int)
    assert np.array_equal(face_out, face_img.astype(int))  # the removed face is left
