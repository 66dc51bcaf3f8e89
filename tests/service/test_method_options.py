"""The service takes a method's own options like the CLI: ``degree``, ``method_option``
KEY=VALUE fields and a JSON ``method_options`` object, checked against the constructor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from factories import decode_image, face_on_canvas, png_bytes
from veil.service import ServiceSettings


@pytest.fixture(scope="module")
def client(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    settings = ServiceSettings(work_dir=tmp_path_factory.mktemp("work"))
    with serve(settings) as (url, _), httpx.Client(base_url=url, timeout=120) as http:
        yield http


def post(client: httpx.Client, image: np.ndarray, data: Any) -> httpx.Response:
    files = {"image": ("photo.png", png_bytes(image), "image/png")}
    return client.post("/api/anonymize", files=files, data=data)


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        ({"method": "synthetic", "method_option": ["colour=red"]}, "'colour'"),
        ({"method": "synthetic", "method_options": '{"colour": 1}'}, "'colour'"),
        ({"method": "synthetic", "method_options": "[1]"}, "JSON object"),
        ({"method": "pixelate", "degree": "1.2"}, "'degree'"),
        ({"method": "synthetic", "method_option": ["blend"]}, "KEY=VALUE"),
        ({"method": "synthetic", "method_option": ["gallery=/etc"]}, "not accepted"),
        ({"method": "synthetic", "method_options": '{"blend": "../x"}'}, "paths"),
        ({"method": "synthetic", "method_options": '{"generator_options": {}}'}, "not accepted"),
    ],
)
def test_bad_method_options_are_422_naming_the_key(
    client: httpx.Client, data: dict[str, Any], bad: str
) -> None:
    image, _ = face_on_canvas()
    response = post(client, image, data)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_option" and bad in error["message"]


@pytest.mark.dlib
def test_degree_and_options_reach_the_synthetic_method(client: httpx.Client) -> None:
    pytest.importorskip("dlib")
    image, box = face_on_canvas(scale=0.8, offset=(0, 0), canvas=(400, 400))
    x0, y0, x1, y1 = box.astype(int)
    outs = []
    for data in (
        {"method": "synthetic", "degree": "1.5", "method_option": ["blend=alpha"]},
        {"method": "synthetic", "method_options": '{"degree": 0.0, "blend": "alpha"}'},
    ):
        response = post(client, image, data)
        assert response.status_code == 200, response.text
        out = decode_image(response.content).astype(int)
        assert np.abs(out - image)[y0:y1, x0:x1].mean() > 10  # the face changed
        outs.append(out)
    # degree 1.5 and degree 0 draw different geometry: the outputs differ
    assert np.abs(outs[0] - outs[1])[y0:y1, x0:x1].mean() > 1
