"""The review page in a real browser (Debian's Chromium, headless, Playwright): open a
clip with a real face, draw a box on an empty region, remove the detected face, save,
re-render, download; the drawn region changed, the removed face did not. Screenshots go
to ``$VEIL_ARTIFACTS`` (``artifacts/review-*.png``) or the test's temp folder.
Skipped like tests/service/test_browser.py when Playwright or Chromium is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from browser import (
    CHROMIUM,
    NO_CHROMIUM,
    artifacts_dir,
    download,
    served_chromium,
    watch_requests,
)
from veil.review import VideoReview
from veil.service import ServiceSettings
from video_factory import face_video

TOKEN = "review-token-0123456789"
DRAWN = (236, 150, 300, 222)  # source pixels: noise, far from the face
FRAMES, SIZE = 24, (320, 240)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]


def canvas_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Viewport coordinates of source pixel ``(x, y)`` on the overlay canvas."""
    box = page.locator("#overlay").bounding_box()
    return box["x"] + x * box["width"] / SIZE[0], box["y"] + y * box["height"] / SIZE[1]


def test_review_page_adds_removes_and_renders(serve: Any, tmp_path: Path) -> None:
    src, boxes = face_video(tmp_path / "clip.mp4", frames=FRAMES, size=SIZE)
    session = VideoReview.prepare(src, work=tmp_path / "work")
    face = next(f for f in session.faces(10) if f.get("track_id") is not None)
    artifacts = artifacts_dir(tmp_path)
    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path)
    with served_chromium(
        serve(settings, session), tmp_path / "profile", viewport={"width": 1280, "height": 900}
    ) as (url, browser):
        page = browser.new_page()
        external = watch_requests(page, url)
        page.goto(f"{url}/review#token={TOKEN}")
        sync_api.expect(page.locator("#status")).to_have_text("Ready.", timeout=20_000)
        page.fill("#frame-no", "10")
        page.dispatch_event("#frame-no", "change")
        sync_api.expect(page.locator("#frame")).to_have_attribute("data-index", "10")
        page.wait_for_timeout(300)
        # draw a box on the empty region and add it for the whole clip
        x0, y0 = canvas_point(page, DRAWN[0], DRAWN[1])
        x1, y1 = canvas_point(page, DRAWN[2], DRAWN[3])
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
        page.mouse.move(x1, y1, steps=4)
        page.mouse.up()
        page.fill("#add-first", "0")
        page.fill("#add-last", str(FRAMES - 1))
        page.uncheck("#add-track")
        page.click("#add-face")
        # click the detected face and remove its track
        cx, cy = canvas_point(page, *_centre(face["box"]))
        page.mouse.click(cx, cy)
        page.click("#remove-track")
        sync_api.expect(page.locator("#restore-track")).to_be_visible()
        page.screenshot(path=str(artifacts / "review-edit.png"), full_page=True)
        page.click("#save")
        sync_api.expect(page.locator("#status")).to_contain_text("Edits saved")
        page.click("#render")
        link = page.locator("#download[href]")
        link.wait_for(timeout=60_000)
        rendered = download(page, link, tmp_path / "rendered.mp4")
        page.screenshot(path=str(artifacts / "review-rendered.png"), full_page=True)
    assert external == []  # no CDN, no third party
    saved = json.loads(session.edits_path.read_text())
    assert saved["add"] == [
        {"frames": [0, FRAMES - 1], "box": [float(v) for v in DRAWN], "track": False, "at": 10}
    ]
    removed = {f for e in saved["remove"] for f in range(e["frames"][0], e["frames"][1] + 1)}
    assert removed == set(range(FRAMES))  # the whole track, in chunks that follow the face
    a, b = decode(src), decode(rendered)
    assert len(a) == len(b) == FRAMES
    x0, y0, x1, y1 = DRAWN
    for k in range(FRAMES):
        drawn = np.abs(
            a[k][y0 + 4 : y1 - 4, x0 + 4 : x1 - 4] - b[k][y0 + 4 : y1 - 4, x0 + 4 : x1 - 4]
        )
        fx0, fy0, fx1, fy1 = boxes[k]
        kept = np.abs(a[k][fy0:fy1, fx0:fx1] - b[k][fy0:fy1, fx0:fx1])
        assert drawn.mean() > 10, (k, drawn.mean())  # the drawn box was anonymized
        assert kept.mean() < 4, (k, kept.mean())  # the removed face was left as it was


def _centre(box: list[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_review_page_on_a_photo_folder(serve: Any, tmp_path: Path) -> None:
    from PIL import Image

    from factories import face_on_canvas
    from veil.review import PhotoReview

    folder = tmp_path / "photos"
    folder.mkdir()
    image, box = face_on_canvas()
    Image.fromarray(image).save(folder / "face.png")
    noise = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "empty.png")
    session = PhotoReview.prepare(folder, work=tmp_path / "work", output=tmp_path / "out")
    artifacts = artifacts_dir(tmp_path)
    with served_chromium(
        serve(ServiceSettings(work_dir=tmp_path), session),
        tmp_path / "profile",
        viewport={"width": 1280, "height": 900},
    ) as (url, browser):
        page = browser.new_page()
        page.goto(f"{url}/review")  # loopback without a token
        sync_api.expect(page.locator("#status")).to_have_text("Ready.", timeout=20_000)
        thumbs = page.locator(".thumb")
        sync_api.expect(thumbs).to_have_count(2)
        sync_api.expect(thumbs.first).to_contain_text("empty.png")  # flagged: no face
        sync_api.expect(thumbs.first).to_have_class("thumb flagged current")
        x0, y0 = canvas_point(page, 20, 20)
        x1, y1 = canvas_point(page, 120, 120)
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=5)
        page.mouse.up()
        page.click("#add-face")
        thumbs.nth(1).click()  # switching photos saves the edits of this one
        sync_api.expect(page.locator("#frame")).to_have_attribute("data-index", "1")
        page.screenshot(path=str(artifacts / "review-photos.png"), full_page=True)
        page.click("#render")
        page.locator("#download[href]").wait_for(timeout=60_000)
    assert (tmp_path / "photos.edits" / "empty.png.edits.json").is_file()
    out_empty = np.asarray(Image.open(tmp_path / "out" / "empty.png")).astype(int)
    assert np.abs(out_empty - noise)[30:110, 30:110].mean() > 10  # the drawn box
    assert np.abs(out_empty - noise)[:, 200:].max() == 0
    out_face = np.asarray(Image.open(tmp_path / "out" / "face.png")).astype(int)
    x0, y0, x1, y1 = box.astype(int)
    assert np.abs(out_face - image)[y0:y1, x0:x1].mean() > 10  # detected face anonymized
