"""Session-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """veil's cache folder (precision choices, int8 model) in a temporary folder: tests
    never read or write the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VEIL_CACHE_DIR", str(tmp_path_factory.mktemp("veil-cache")))
        mp.delenv("VEIL_PRECISION", raising=False)
        yield
