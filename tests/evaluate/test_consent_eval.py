"""`veil eval consent`: the keep-list check on a generated two-person identity set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.factories import face_on_canvas

from veil.cli import main
from veil.config import ConsentConfig
from veil.evaluate.consent import decide, measure_identity_set
from veil.io.images import write_image

pytest.importorskip("dlib")


def identity_set(root: Path) -> Path:
    """Two real people, three photos each at other places and sizes: the astronaut (frontal)
    and the cameraman (in profile: refused as a reference, never kept, hidden by --only)."""
    for person in ("astronaut", "cameraman"):
        folder = root / person
        folder.mkdir(parents=True)
        for i, (scale, offset) in enumerate([(0.8, (20, 0)), (0.7, (60, 10)), (0.9, (0, -20))]):
            image, _ = face_on_canvas(
                person=person, scale=scale, offset=offset, canvas=(360, 440), seed=i
            )
            write_image(folder / f"{i}.png", image)
    return root


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return identity_set(tmp_path_factory.mktemp("people"))


def test_measures_and_decisions(people: Path) -> None:
    config = ConsentConfig()
    measures = measure_identity_set(people, config)
    assert sorted(measures.references) == ["astronaut"]
    assert dict(measures.refused) == {"the face in this reference photo is turned": 3}
    assert len(measures.photos) == 5  # the astronaut's first photo is the reference
    row = decide(measures, config)
    assert (row.own, row.other_pairs, row.gallery_photos) == (2, 3, 2)
    assert row.own_kept == 2 and row.gallery_own_kept == 2
    assert row.others_kept == 0 and row.gallery_wrong == 0
    assert row.only_own_hidden == 2
    assert row.only_others_hidden == 3  # turned: --only hides what it cannot tell apart
    # a threshold no distance can pass keeps no one: the counts follow the decisions
    strict = decide(measures, ConsentConfig(keep_threshold=0.001))
    assert strict.own_kept == 0 and strict.others_kept == 0


def test_cli_table_and_json(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "consent.json"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "consent",
            str(people),
            "--keep-thresholds",
            "0.001,0.45",
            "--json",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "others kept" in result.output and "0.45" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["keep_threshold"] for r in rows] == [0.001, 0.45]
    assert [r["own_kept"] for r in rows] == [0, 2]


def test_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["eval", "consent", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a folder" in result.output
    result = runner.invoke(main, ["eval", "consent", str(tmp_path), "--keep-thresholds", "x"])
    assert result.exit_code == 2 and "comma-separated" in result.output
