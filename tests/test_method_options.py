"""``--degree`` and ``--method-option KEY=VALUE``: parsed, checked against the method's
constructor, passed whole to the anonymizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from factories import face_on_canvas
from veil.cli import main
from veil.commands.options import (
    check_method_options,
    method_options,
    parse_option_value,
    request_method_options,
)
from veil.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-2", 0.01),
        ("true", True),
        ("False", False),
        ("none", None),
        ("alpha", "alpha"),
        ("../donors", "../donors"),
    ],
)
def test_values_are_read_as_int_float_bool_none_or_text(text: str, value: Any) -> None:
    parsed = parse_option_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    ("given", "expected", "error"),
    [
        ({"method": "synthetic", "degree": 1.4}, {"degree": 1.4}, None),
        (
            {"method": "synthetic", "method_option": ("blend=alpha", "k=4")},
            {"blend": "alpha", "k": 4},
            None,
        ),
        ({"method": "pixelate", "method_option": ()}, {}, None),
        ({"method": "synthetic", "method_option": ("blend",)}, None, "expected KEY=VALUE"),
        ({"method": "synthetic", "method_option": ("=1",)}, None, "expected KEY=VALUE"),
        ({"method": "synthetic", "method_option": ("colour=red",)}, None, "'colour'.*degree"),
        ({"method": "gaussian", "degree": 1.2}, None, "gaussian.*no option 'degree'"),
        ({"method": "synthetic", "method_option": ("seed=3",)}, None, "use --seed"),
    ],
)
def test_method_options_are_checked_against_the_constructor(
    given: dict[str, Any], expected: dict[str, Any] | None, error: str | None
) -> None:
    if error is None:
        assert method_options(given) == expected
    else:
        with pytest.raises(ConfigError, match=error):
            method_options(given)


def test_service_fields_json_and_pairs() -> None:
    got = request_method_options("synthetic", ["blend=alpha"], '{"degree": 1.5, "k": 3}')
    assert got == {"blend": "alpha", "degree": 1.5, "k": 3}
    assert request_method_options("synthetic", degree=0.5) == {"degree": 0.5}
    for bad in ("[1, 2]", "{nope"):
        with pytest.raises(ConfigError, match="method_options"):
            request_method_options("synthetic", json_text=bad)
    with pytest.raises(ConfigError, match=r"valid options: .*blend"):
        check_method_options("synthetic", {"bogus": 1})


def _run(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_rejects_an_unknown_key_listing_the_valid_ones(tmp_path: Path) -> None:
    image, _ = face_on_canvas()
    src = tmp_path / "photo.png"
    Image.fromarray(image).save(src)
    result = _run("anonymize", src, "--method", "pixelate", "--method-option", "cells=4")
    assert result.exit_code != 0
    assert "'cells'" in result.output and "valid options" in result.output
    assert not (tmp_path / "photo_anonymized.png").exists()
    result = _run("anonymize", src, "--method", "pixelate", "--degree", "1.2")
    assert result.exit_code != 0 and "'degree'" in result.output


@pytest.mark.dlib
def test_cli_degree_and_options_reach_the_synthetic_method(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    image, box = face_on_canvas(scale=0.8, offset=(0, 0), canvas=(400, 400))
    src = tmp_path / "photo.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "out.png"
    result = _run(
        "anonymize", src, "-o", out, "--method", "synthetic", "--degree", "1.5",
        "--method-option", "blend=alpha", "--seed", "0", "--report",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    x0, y0, x1, y1 = box.astype(int)
    changed = np.abs(np.asarray(Image.open(out)).astype(int) - image)[y0:y1, x0:x1].mean()
    assert changed > 10
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    text = json.dumps(report)
    assert '"degree": 1.5' in text and '"blend": "alpha"' in text
