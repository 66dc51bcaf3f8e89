"""The API's keep / only reference uploads and regions, against a real server and real
faces (the packaged astronaut and cameraman)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from factories import box_change as changed
from factories import decode_image, face_on_canvas, png_bytes, two_people
from veil.service import ServiceSettings

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SIZE = (300, 640)
MAX_IMAGE = 1_500_000


def astronaut_reference() -> bytes:
    return png_bytes(face_on_canvas(canvas=(300, 400), seed=7)[0])


@pytest.fixture(scope="module")
def server(
    serve: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Any]]:
    settings = ServiceSettings(
        token=TOKEN,
        max_image_bytes=MAX_IMAGE,
        max_batch_files=3,
        work_dir=tmp_path_factory.mktemp("work"),
    )
    with serve(settings) as (url, app), httpx.Client(base_url=url, timeout=60) as client:
        yield client, app


def post(client: httpx.Client, image: bytes, refs: list[Any] = (), **fields: Any) -> Any:  # type: ignore[assignment]
    files = [("image", ("scene.png", image, "image/png")), *refs]
    return client.post("/api/anonymize", files=files, data=fields, headers=AUTH)


def work_files(app: Any) -> list[Path]:
    return list(app.state.service.root.iterdir())


def test_keep_reference_leaves_that_person_and_hides_the_other(server: Any) -> None:
    pytest.importorskip("dlib")
    client, app = server
    image, a_box, c_box = two_people()
    ref = ("keep", ("ada.png", astronaut_reference(), "image/png"))
    response = post(client, png_bytes(image), [ref])
    assert response.status_code == 200, response.text
    out = decode_image(response.content)
    assert changed(out, image, a_box) == 0.0  # kept: exactly as it was
    assert changed(out, image, c_box) > 8.0  # the other person
    assert response.headers["x-veil-faces"] == "1"
    assert work_files(app) == []  # the reference photo is gone too


def test_only_reference_hides_that_person_and_never_less(server: Any) -> None:
    pytest.importorskip("dlib")
    client, _ = server
    image, a_box, c_box = two_people()
    refs = [("only", ("ada.png", astronaut_reference(), "image/png"))]
    response = post(client, png_bytes(image), refs)
    out = decode_image(response.content)
    assert changed(out, image, a_box) > 8.0  # the listed person
    # the cameraman is in profile: too turned to embed reliably, so hidden as well
    assert changed(out, image, c_box) > 8.0 and response.headers["x-veil-faces"] == "2"


@pytest.mark.parametrize(
    ("refs", "status", "message"),
    [
        ({"keep": {"blank.png": "noise"}}, 422, "blank.png: reference photo must show exactly one"),
        ({"keep": {"pair.png": "pair"}}, 422, "pair.png: reference photo must show exactly one"),
        ({"keep": {"notes.png": "text"}}, 415, "'notes.png' is not an image"),
        ({"keep": {"a.png": "ada"}, "only": {"b.png": "ada"}}, 422, "cannot be combined"),
        ({"keep": {f"{k}.png": "ada" for k in range(4)}}, 422, "at most 3 reference photos"),
    ],
)
def test_bad_reference_photos_are_named(
    server: Any, refs: dict[str, dict[str, str]], status: int, message: str
) -> None:
    pytest.importorskip("dlib")
    client, app = server
    content = {
        "noise": png_bytes(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)),
        "pair": png_bytes(two_people()[0]),
        "text": b"these are notes, not a photo",
        "ada": astronaut_reference(),
    }
    files = [
        (field, (name, content[kind], "image/png"))
        for field, photos in refs.items()
        for name, kind in photos.items()
    ]
    response = post(client, png_bytes(two_people()[0]), files)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert work_files(app) == []


def test_regions_and_their_errors(server: Any) -> None:
    client, app = server
    image, a_box, c_box = two_people()
    out = decode_image(post(client, png_bytes(image), exclude_region="0,0,0.5,1").content)
    assert changed(out, image, a_box) == 0.0 and changed(out, image, c_box) > 8.0
    polygons = '{"include": [[[0, 0], [320, 0], [320, 300], [0, 300]]]}'
    out = decode_image(post(client, png_bytes(image), regions=polygons).content)
    assert changed(out, image, a_box) > 8.0 and changed(out, image, c_box) == 0.0
    for fields, message in [
        ({"region": "1,2,3"}, "'1,2,3': expected four numbers"),
        ({"regions": "{oops"}, "not valid JSON"),
        ({"regions": '{"exclude": [[[0, 0], [1, 1]]]}'}, "needs 3 to 1000 points"),
        ({"regions": json.dumps({"exclude": [[[0, 0]] * 1001]})}, "got 1001"),
    ]:
        response = post(client, png_bytes(image), **fields)
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]["message"]
    assert work_files(app) == []


def test_reference_uploads_count_toward_the_body_limit(server: Any) -> None:
    client, app = server
    image = png_bytes(two_people()[0])
    padding = MAX_IMAGE - len(image) + 80_000  # together over the limit, each under it
    big = png_bytes(np.random.default_rng(1).integers(0, 256, (1, padding // 3, 3), np.uint8))
    assert len(big) < MAX_IMAGE and len(image) < MAX_IMAGE
    response = post(client, image, [("keep", ("big.png", big, "image/png"))])
    assert response.status_code == 413, response.text
    assert work_files(app) == []


def test_job_with_a_keep_reference(server: Any) -> None:
    pytest.importorskip("dlib")
    client, app = server
    image, a_box, c_box = two_people()
    files = [
        ("files", ("scene.png", png_bytes(image), "image/png")),
        ("keep", ("ada.png", astronaut_reference(), "image/png")),
    ]
    response = client.post("/api/jobs", files=files, headers=AUTH)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}", headers=AUTH).json()["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = client.get(f"/api/jobs/{job_id}/result", headers=AUTH)
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        out = decode_image(archive.read("anonymized_001.png"))
    assert changed(out, image, a_box) == 0.0 and changed(out, image, c_box) > 8.0
    assert work_files(app) == []


def test_methods_do_not_offer_a_server_side_picture(server: Any) -> None:
    client, _ = server
    names = {a["name"] for a in client.get("/api/methods", headers=AUTH).json()["anonymizers"]}
    assert "image" not in names and "gaussian" in names
    response = post(client, png_bytes(two_people()[0]), method="image")
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("name", "person"),
    [("ada.jpg", "ada"), ("ada-2.jpg", "ada"), ("ada_3.png", "ada"), ("bob 12.jpg", "bob")],
)
def test_photos_named_alike_are_one_person(name: str, person: str) -> None:
    from veil.service.selection import person_of

    assert person_of(name) == person
    assert person_of("2024.jpg") == "2024"  # nothing left: the whole stem


def test_several_photos_of_the_consenting_person(server: Any) -> None:
    pytest.importorskip("dlib")
    client, _ = server
    image, a_box, c_box = two_people()
    second = png_bytes(face_on_canvas(scale=0.55, canvas=(300, 400), seed=3)[0])
    refs = [
        ("keep", ("ada-1.png", astronaut_reference(), "image/png")),
        ("keep", ("ada-2.png", second, "image/png")),
    ]
    out = decode_image(post(client, png_bytes(image), refs).content)
    assert changed(out, image, a_box) == 0.0 and changed(out, image, c_box) > 8.0
