"""The service's ``target`` form field (whole head here: no model needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from factories import decode_image, face_on_canvas, png_bytes
from veil.service import ServiceSettings

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def client(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = ServiceSettings(token=TOKEN, work_dir=tmp_path_factory.mktemp("work"))
    with serve(settings) as (url, _), httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_target_head_hides_the_hair_above_the_face(client: httpx.Client, tmp_path: Path) -> None:
    image, box = face_on_canvas(scale=0.8, offset=(20, 40), canvas=(400, 480))
    x0, y0, x1, y1 = box.astype(int)
    hx, hy = (x0 + x1) // 2, y0 - int(0.35 * (y1 - y0))
    files = {"image": ("photo.png", png_bytes(image), "image/png")}
    change = {}
    for target in ("face", "head"):
        r = client.post("/api/anonymize", files=files, data={"target": target}, headers=AUTH)
        assert r.status_code == 200, r.text
        out = decode_image(r.content).astype(int)
        change[target] = float(
            np.abs(out - image.astype(int))[hy - 4 : hy + 4, hx - 4 : hx + 4].mean()
        )
    assert change["head"] > 5 and change["face"] < 1
    bad = client.post("/api/anonymize", files=files, data={"target": "body"}, headers=AUTH)
    assert bad.status_code == 422
