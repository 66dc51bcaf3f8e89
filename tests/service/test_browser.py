"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright.

Uploads a face image, waits for the result, downloads it and checks the face changed;
saves a screenshot to ``$VEIL_ARTIFACTS`` (CI keeps it) or the test's temp folder.
Skipped when Playwright or ``/usr/bin/chromium`` is missing
(``scripts/install_browser_test_deps.sh`` installs both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from browser import CHROMIUM, NO_CHROMIUM, artifacts_dir, download, served_chromium, service_page
from factories import decode_image, face_on_canvas, two_people
from veil.service import ServiceSettings

TOKEN = "browser-token-0123456789"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)


def test_page_anonymizes_and_downloads_a_face(serve: Any, tmp_path: Path) -> None:
    image, box = face_on_canvas()
    source = tmp_path / "face.png"
    Image.fromarray(image).save(source)
    artifacts = artifacts_dir(tmp_path)

    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path)
    with served_chromium(serve(settings), tmp_path / "profile") as (url, browser):
        page, external = service_page(browser, url, TOKEN)
        page.select_option("#method", "pixelate")
        page.set_input_files("#files", str(source))
        page.click("#go")
        done = page.locator(".download[href]")
        done.wait_for(timeout=30_000)
        sync_api.expect(page.locator("img.after")).to_have_attribute("data-faces", "1")
        downloaded = download(page, done, tmp_path / "downloaded.png")
        page.screenshot(path=str(artifacts / "veil-service-page.png"), full_page=True)
    assert external == []  # no CDN, no third party
    with Image.open(downloaded) as im:
        out = np.asarray(im.convert("RGB"))
    assert out.shape == image.shape
    x0, y0, x1, y1 = box.astype(int)
    diff = np.abs(out.astype(int) - image.astype(int))
    assert diff[y0:y1, x0:x1].mean() > 10  # the face changed
    assert diff[:, 250:].max() == 0  # far from the face nothing did


def test_page_keeps_the_person_of_a_reference_photo(serve: Any, tmp_path: Path) -> None:
    """The keep-list upload: a photo of the astronaut as reference, a scene with the
    astronaut and the cameraman; the astronaut stays exactly as they were."""
    pytest.importorskip("dlib")
    scene, a_box, c_box = two_people()
    Image.fromarray(scene).save(tmp_path / "scene.png")
    Image.fromarray(face_on_canvas(canvas=(300, 400), seed=7)[0]).save(tmp_path / "ada.png")
    artifacts = artifacts_dir(tmp_path)

    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path)
    with served_chromium(serve(settings), tmp_path / "profile") as (url, browser):
        page, _ = service_page(browser, url, TOKEN)
        page.set_input_files("#keep", str(tmp_path / "ada.png"))
        page.select_option("#consent-mode", "keep")
        page.set_input_files("#files", str(tmp_path / "scene.png"))
        page.click("#go")
        done = page.locator(".download[href]")
        done.wait_for(timeout=60_000)
        sync_api.expect(page.locator("img.after")).to_have_attribute("data-faces", "1")
        downloaded = download(page, done, tmp_path / "downloaded.png")
        page.screenshot(path=str(artifacts / "veil-service-keep.png"), full_page=True)
    with Image.open(downloaded) as im:
        out = np.asarray(im.convert("RGB")).astype(int)
    diff = np.abs(out - scene.astype(int))
    x0, y0, x1, y1 = a_box.astype(int)
    assert diff[y0:y1, x0:x1].max() == 0  # the consenting person: exactly as they were
    x0, y0, x1, y1 = c_box.astype(int)
    assert diff[y0:y1, x0:x1].mean() > 8  # the other person: anonymized


def test_page_hides_whole_heads_when_asked(serve: Any, tmp_path: Path) -> None:
    """The page's "Hide" choice reaches the service: with "whole heads" the hair above the
    face changes too (face mode leaves it: checked in the same test through the API)."""
    image, box = face_on_canvas()
    source = tmp_path / "face.png"
    Image.fromarray(image).save(source)
    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path)
    hair = (slice(6, 16), slice(145, 160))  # above the face box (y0 = 33), inside the head
    assert box[1] > hair[0].stop
    with served_chromium(serve(settings), tmp_path / "profile") as (url, browser):
        page, _ = service_page(browser, url, TOKEN)
        page.select_option("#method", "pixelate")
        page.select_option("#target", "head")
        page.set_input_files("#files", str(source))
        page.click("#go")
        done = page.locator(".download[href]")
        done.wait_for(timeout=30_000)
        downloaded = download(page, done, tmp_path / "head.png")
        page.screenshot(path=str(artifacts_dir(tmp_path) / "veil-service-head.png"))
        face_only = httpx.post(
            url + "/api/anonymize",
            headers={"Authorization": f"Bearer {TOKEN}"},
            data={"method": "pixelate", "target": "face"},
            files={"image": ("face.png", source.read_bytes(), "image/png")},
            timeout=60,
        )
    assert face_only.status_code == 200
    with Image.open(downloaded) as im:
        head = np.asarray(im.convert("RGB")).astype(int)
    face = decode_image(face_only.content).astype(int)
    original = image.astype(int)
    assert np.abs(head - original)[hair].mean() > 10  # the hair: hidden with the head
    assert np.abs(face - original)[hair].max() == 0  # face mode leaves it as it was
    x0, y0, x1, y1 = box.astype(int)
    assert np.abs(head - original)[y0:y1, x0:x1].mean() > 10  # and the face itself
