"""``veil eval consent`` (and benchmarks/consent.py's measures) on a small identity set
built from the packaged astronaut and cameraman."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas
from veil.cli import main


def identity_set(root: Path) -> Path:
    """astronaut/: three photos (sizes and places vary); cameraman/: two (in profile,
    refused as a reference: too turned to embed reliably)."""
    shots = {
        "astronaut": [dict(seed=7), dict(scale=0.55, seed=3), dict(scale=0.6, offset=(20, 5))],
        "cameraman": [dict(scale=0.8, seed=1), dict(scale=0.7, offset=(0, 10), seed=2)],
    }
    for person, kwargs in shots.items():
        (root / person).mkdir(parents=True)
        for k, kw in enumerate(kwargs):
            image, _ = face_on_canvas(person=person, canvas=(300, 400), **kw)  # type: ignore[arg-type]
            Image.fromarray(image).save(root / person / f"{k}.png")
    return root


def test_eval_consent_counts_kept_and_hidden_faces(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    root = identity_set(tmp_path / "ids")
    out = tmp_path / "consent.json"
    args = ["eval", "consent", str(root), "--keep-thresholds", "0.45,0.3", "--json", str(out)]
    result = CliRunner().invoke(main, [*args, "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| 0.45 | 0/2 (0.0%) | 2/2 (100.0%) |" in result.output
    data = json.loads(out.read_text())
    assert data["people"] == ["astronaut"] and data["inputs"] == 4
    assert data["refused"] == {"the face in this reference photo is turned": 2}
    loose, strict = data["rows"]
    assert loose["others_kept"] == [0, 2] and loose["own_kept"] == [2, 2]
    assert strict["own_kept"][0] <= loose["own_kept"][0]  # stricter keeps no more
    assert loose["only_own_hidden"] == [2, 2]  # --only hides the listed person
    assert loose["only_others_hidden"] == [2, 2]  # and the unreliable cameraman too


def test_eval_consent_without_a_usable_reference_fails(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    root = tmp_path / "ids"
    (root / "nobody").mkdir(parents=True)
    Image.fromarray(face_on_canvas(person="cameraman", scale=0.8)[0]).save(root / "nobody/a.png")
    result = CliRunner().invoke(main, ["eval", "consent", str(root), "-q"])
    assert result.exit_code == 1
    assert "no person had a usable reference photo" in result.output
