"""``veil doctor``: machine facts, the inference choice, extras and a short self-benchmark."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from click.testing import CliRunner

from veil._machine import cpu_model
from veil.cli import main


def doctor(*args: str) -> Any:
    return CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)


def test_doctor_prints_cpu_choice_and_speeds() -> None:
    result = doctor("--seconds", "1")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"CPU:        {cpu_model()}" in out
    assert "avx2=" in out or "flags" not in out
    line = next(x for x in out.splitlines() if x.startswith("detector:"))
    assert "centerface on " in line and "precision " in line
    chosen = next(x for x in out.splitlines() if x.strip().startswith("chosen:"))
    assert line.split("precision ")[1] in chosen  # the reason names what runs
    assert "images/s" in out and "frames/s" in out and "5 faces found of 5" in out


def test_doctor_json_and_explicit_precision() -> None:
    result = doctor("--seconds", "0", "--json", "--precision", "f32")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["machine"]["cpu"] == cpu_model()
    assert facts["machine"]["cores"] >= 1
    assert facts["inference"]["precision"] == "f32"
    assert facts["inference"]["reason"] == "precision=f32"
    assert "benchmark" not in facts
    assert set(facts["extras"]) == {"dlib", "serve", "ray", "report", "int8", "person"}


def test_doctor_json_benchmark_numbers() -> None:
    facts = json.loads(doctor("--seconds", "1", "--json").output)
    bench = facts["benchmark"]
    assert bench["images"]["images_per_second"] > 0
    assert bench["images"]["faces_found"] >= 4
    assert bench["video"]["frames_per_second"] > 0 and bench["video"]["frames"] >= 10
    choice = facts["inference"]
    assert choice["chosen"] == f"{choice['backend']}-{choice['precision']}"


def test_missing_extra_shows_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    hidden = {"nncf", "dlib"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a)
    )
    out = doctor("--seconds", "0").output
    assert "int8     missing -> pip install '.[int8]'  (or: pip install nncf)" in out
    assert "pip install dlib-bin face_recognition_models" in out
