"""What the browser tests share: Debian's Chromium, headless, driven by Playwright.

``scripts/install_browser_test_deps.sh`` installs both; tests skip without them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NO_CHROMIUM = "Debian's chromium is not installed (scripts/install_browser_test_deps.sh)"


def artifacts_dir(default: Path) -> Path:
    """``$VEIL_ARTIFACTS`` (CI keeps it) or ``default``, made."""
    folder = Path(os.environ.get("VEIL_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium(playwright: Any, profile: Path, **options: Any) -> Iterator[Any]:
    """A persistent Chromium context (downloads accepted), closed on exit."""
    browser = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=ARGS, accept_downloads=True, **options
    )
    try:
        yield browser
    finally:
        browser.close()


def watch_requests(page: Any, url: str) -> list[str]:
    """The list the page's requests to anything but ``url`` (and blob:/data:) go into."""
    external: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((url, "blob:", "data:")) else external.append(r.url),
    )
    return external


def download(page: Any, link: Any, path: Path) -> Path:
    """Click ``link`` and save what it downloads to ``path``."""
    with page.expect_download() as info:
        link.click()
    info.value.save_as(path)
    return path


def service_page(browser: Any, url: str, token: str) -> tuple[Any, list[str]]:
    """``veil serve``'s page opened with ``token`` entered and ready, and the list its
    requests to other hosts go into (see :func:`watch_requests`)."""
    from playwright.sync_api import expect

    page = browser.new_page()
    external = watch_requests(page, url)
    page.goto(url + "/")
    page.fill("#token", token)
    page.dispatch_event("#token", "change")
    expect(page.locator("#status")).to_have_text("Ready.", timeout=20_000)
    return page, external


@contextmanager
def served_chromium(served: Any, profile: Path, **options: Any) -> Iterator[tuple[str, Any]]:
    """Enter ``served`` (a ``serve(...)`` context of the service tests) and start Chromium
    with ``profile`` (``options`` as for :func:`chromium`); yields ``(url, browser)`` and
    removes the profile afterwards."""
    from playwright import sync_api

    try:
        with (
            served as (url, _),
            sync_api.sync_playwright() as p,
            chromium(p, profile, **options) as browser,
        ):
            yield url, browser
    finally:
        shutil.rmtree(profile, ignore_errors=True)
