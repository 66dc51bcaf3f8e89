"""`compare_methods` on a tiny generated set, and the self-contained HTML report."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from factories import face_on_canvas
from veil.errors import MissingExtraError
from veil.evaluate.compare import compare_methods, flat_row
from veil.io.images import write_image

pytest.importorskip("dlib")
pytest.importorskip("matplotlib")


def _sets(root: Path) -> tuple[Path, Path]:
    """A coverage set (annotations.json + 2 images) and an identity set (2 people x 2)."""
    cov, ident = root / "cov", root / "ident"
    entries = []
    for i in range(2):
        image, box = face_on_canvas(offset=(40 + 30 * i, 0), seed=i)
        write_image(cov / "images" / f"{i}.png", image)
        x0, y0, x1, y1 = (float(v) for v in box)
        entries.append({"file": f"images/{i}.png", "faces": [[x0, y0, x1 - x0, y1 - y0]]})
        for person, who in (("a", "astronaut"), ("b", "cameraman")):  # two real people
            face, _ = face_on_canvas(
                scale=0.5 if who == "astronaut" else 0.6,
                offset=(30 + 40 * i, 10) if who == "astronaut" else (-40 + 20 * i, -20),
                person=who,
                seed=i + 5,
            )
            write_image(ident / person / f"{i}.png", face)
    (cov / "annotations.json").write_text(json.dumps({"images": entries}))
    return cov, ident


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("compare")
    cov, ident = _sets(root)
    external = root / "tool"  # another tool that anonymized one identity image only
    write_image(external / "identity" / "a" / "0.png", face_on_canvas(seed=9)[0])
    result = compare_methods(
        ["gaussian", "pixelate"],
        coverage_set=cov,
        identity_set=ident,
        attacks=(),
        work_dir=root / "work",
        externals={"tool": external},
    )
    return {"root": root, "data": result.to_dict()}


def test_compare_rows_carry_every_metric(compared: dict) -> None:
    rows = compared["data"]["rows"]
    assert [r["method"] for r in rows] == ["gaussian", "pixelate", "tool"]
    keys = set(flat_row(rows[0]))
    for row in rows[:2]:
        flat = flat_row(row)
        assert set(flat) == keys
        assert flat["recall"] == 1.0
        assert flat["ssim_outside"] == 1.0  # lossless PNG outputs, same detections
        assert flat["band"] in ("excellent", "good", "moderate", "poor")
        assert row["utility"]["measured"] == 4
    tool = rows[2]
    assert tool["utility"]["missing_anonymized"] == ["a/1.png", "b/0.png", "b/1.png"]
    assert tool["coverage"]["missing"] == 2  # no coverage outputs: faces counted as missed
    assert tool["privacy"]["missing_anonymized"] == ["a/1.png", "b/0.png", "b/1.png"]


def test_report_is_self_contained_with_json_and_csv(compared: dict, tmp_path: Path) -> None:
    from veil.commands.report import report

    src = tmp_path / "compare.json"
    src.write_text(json.dumps(compared["data"]))
    out = tmp_path / "report.html"
    res = CliRunner().invoke(report, [str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert '<img src="data:image/png;base64,' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    csv = out.with_suffix(".csv").read_text().splitlines()
    assert csv[0].startswith("method,") and len(csv) == 4
    assert json.loads(out.with_suffix(".json").read_text())["table"][0]["method"] == "gaussian"


def test_report_without_matplotlib_names_the_extra(
    compared: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from veil.evaluate.report import write_report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(
        MissingExtraError,
        match=r"pip install .* \(in a clone of veil: pip install '\.\[report\]'\)",
    ):
        write_report([compared["data"]], tmp_path / "r.html")


def test_compare_refuses_an_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        compare_methods(["nope"], identity_set=tmp_path, work_dir=tmp_path)


def test_limit_samples_across_people() -> None:
    from veil.evaluate.compare import across_people

    rels = [f"{p}/{i}.jpg" for p in ("ann", "bob", "cat") for i in range(4)]
    assert across_people(rels, 4) == ["ann/0.jpg", "ann/1.jpg", "bob/0.jpg", "bob/1.jpg"]
    six = across_people(rels, 6)
    assert {r.split("/")[0] for r in six} == {"ann", "bob", "cat"}
    assert across_people(rels, 8)[6:] == ["ann/2.jpg", "ann/3.jpg"]
    assert across_people(rels, None) == rels and across_people(rels, 99) == rels


def test_report_without_identity_set_says_so(tmp_path: Path) -> None:
    from veil.evaluate.report import write_report

    root = tmp_path / "sets"
    cov, _ = _sets(root)
    result = compare_methods(["gaussian"], coverage_set=cov, attacks=(), work_dir=root / "w")
    page = write_report([result.to_dict()], tmp_path / "r.html")[0].read_text()
    assert "no identity set given" in page
    assert page.count('<img src="data:image/png;base64,') == 1  # coverage bins only


def test_compare_table_has_a_legend(tmp_path: Path) -> None:
    from veil.cli import main

    cov, _ = _sets(tmp_path)
    args = ["eval", "compare", "--methods", "gaussian", "--coverage-set", str(cov)]
    res = CliRunner().invoke(main, [*args, "--work-dir", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert "recall<10px" in res.output and "the same for faces under 10 px" in res.output
