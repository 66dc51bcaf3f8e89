"""Session-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """veil's cache folder (precision choices, compiled models) in a temporary folder:
    tests never read or write the user's cache. ``precision=auto`` does not build the int8
    model where nncf is installed (20-60 s; tests/detect/test_int8.py builds one)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VEIL_CACHE_DIR", str(tmp_path_factory.mktemp("veil-cache")))
        mp.delenv("VEIL_PRECISION", raising=False)
        mp.setattr("veil.detect.int8.int8_selectable", lambda: False)
        yield
