"""Precision selection: the fastest candidate that keeps the f32 boxes, cached per key."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from factories import best_iou, face_on_canvas
from veil.detect import runtime
from veil.detect.centerface import CenterFace
from veil.detect.precision import (
    Candidate,
    ChoiceCache,
    lost_boxes,
    measure,
    resolve_precision,
    select,
)
from veil.errors import BackendError, ConfigError

BOXES = [np.array([[10, 10, 50, 60], [100, 20, 130, 55]], np.float32)]
SHIFTED = [BOXES[0] + np.array([8, 0, 8, 0], np.float32)]  # IoU ~0.67 and ~0.58
INPUTS = [np.zeros((64, 64, 3), np.uint8), np.zeros((2, 32, 32, 3), np.uint8)]


def decode(outputs: list[np.ndarray]) -> list[np.ndarray]:
    return outputs


class Fake:
    """Counts builds and calls; answers ``boxes`` per image after ``delay`` seconds."""

    def __init__(self) -> None:
        self.builds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def candidate(
        self,
        name: str,
        precision: str,
        *,
        delay: float = 0.0,
        boxes: list[np.ndarray] = BOXES,
        fail: str = "",
    ) -> Candidate:
        def run(x: np.ndarray) -> list[np.ndarray]:
            self.calls[name] += 1
            if fail == "run":
                raise RuntimeError("inference crashed")
            time.sleep(delay)
            return [boxes[0]] * (len(x) if x.ndim == 4 else 1)

        def build() -> Callable[[np.ndarray], list[np.ndarray]]:
            self.builds[name] += 1
            if fail == "build":
                raise RuntimeError("cannot compile")
            return run

        return Candidate(name, precision, build)


def test_slow_candidate_loses() -> None:
    fake = Fake()
    cands = [fake.candidate("f32", "f32", delay=0.012), fake.candidate("bf16", "bf16", delay=0.006)]
    choice, _ = measure(cands, INPUTS, decode, budget_s=0.1)
    assert choice.name == "bf16"
    assert choice.timings_ms["f32"] > choice.timings_ms["bf16"]
    fake = Fake()
    cands = [fake.candidate("f32", "f32", delay=0.006), fake.candidate("bf16", "bf16", delay=0.012)]
    choice, _ = measure(cands, INPUTS, decode, budget_s=0.1)
    assert choice.name == "f32" and choice.timings_ms["bf16"] > choice.timings_ms["f32"]


def test_much_slower_candidate_is_ruled_out_early() -> None:
    fake = Fake()
    cands = [
        fake.candidate("ov-f32", "f32", delay=0.004),
        fake.candidate("ort-f32", "f32", delay=0.1),
        fake.candidate("bf16", "bf16", delay=0.002),
    ]
    choice, _ = measure(cands, INPUTS, decode, budget_s=0.05)
    assert choice.name == "bf16"
    assert "slower than the fastest" in choice.refused["ort-f32"]
    assert fake.calls["ort-f32"] == 2  # timed on the smallest input only
    assert fake.calls["ov-f32"] > 2 * len(INPUTS)


def test_faster_candidate_with_other_boxes_is_refused() -> None:
    fake = Fake()
    cands = [
        fake.candidate("f32", "f32", delay=0.01),
        fake.candidate("int8", "int8", delay=0.004, boxes=SHIFTED),
        fake.candidate("bf16", "bf16", delay=0.006),
    ]
    choice, _ = measure(cands, INPUTS, decode, budget_s=0.1)
    assert choice.name == "bf16"
    assert "boxes differ" in choice.refused["int8"]
    assert "int8" not in choice.timings_ms


def test_lost_box_counts_extra_boxes_do_not() -> None:
    ref = BOXES[0]
    assert lost_boxes(ref, ref) == 0
    assert lost_boxes(ref, np.vstack([ref, [[200, 200, 240, 240]]])) == 0
    assert lost_boxes(ref, ref[:1]) == 1
    assert lost_boxes(ref, SHIFTED[0]) == 2
    assert lost_boxes(ref, np.zeros((0, 4), np.float32)) == 2


@pytest.mark.parametrize("fail", ["build", "run"])
def test_failing_candidate_is_skipped(fail: str) -> None:
    fake = Fake()
    cands = [fake.candidate("f32", "f32", delay=0.005), fake.candidate("bf16", "bf16", fail=fail)]
    choice, runner = measure(cands, INPUTS, decode, budget_s=0.05)
    assert choice.name == "f32"
    assert "RuntimeError" in choice.refused["bf16"]
    assert runner(INPUTS[0])[0].shape == (2, 4)


def test_failing_reference_falls_back_to_another_f32() -> None:
    fake = Fake()
    cands = [fake.candidate("ov", "f32", fail="build"), fake.candidate("ort", "f32")]
    assert measure(cands, INPUTS, decode)[0].name == "ort"
    fake = Fake()
    with pytest.raises(BackendError, match="no f32 backend"):
        measure([fake.candidate("ov", "f32", fail="run")], INPUTS, decode)


def test_choice_is_cached_reused_and_invalidated(tmp_path: Path) -> None:
    fake = Fake()
    cands = [fake.candidate("f32", "f32", delay=0.01), fake.candidate("bf16", "bf16", delay=0.005)]
    cache = ChoiceCache(tmp_path / "precision.json")
    key = {"cpu": "test CPU", "threads": 2}
    first, _ = select(cands, lambda: INPUTS, decode, key=key, cache=cache, budget_s=0.05)
    assert first.measured and first.name == "bf16"
    stored = json.loads(cache.path.read_text())
    assert [e["key"] for e in stored.values()] == [key]
    calls = sum(fake.calls.values())

    again, _ = select(cands, lambda: INPUTS, decode, key=key, cache=cache, budget_s=0.05)
    assert not again.measured and again.name == "bf16"
    assert again.timings_ms == pytest.approx(first.timings_ms)
    assert sum(fake.calls.values()) == calls  # nothing re-measured
    assert fake.builds == Counter({"f32": 1, "bf16": 2})  # only the chosen one rebuilt

    other, _ = select(cands, lambda: INPUTS, decode, key=key | {"threads": 1}, cache=cache)
    assert other.measured and sum(fake.calls.values()) > calls
    assert len(json.loads(cache.path.read_text())) == 2


def test_workers_starting_together_measure_once(tmp_path: Path) -> None:
    fake = Fake()
    cands = [fake.candidate("f32", "f32", delay=0.006), fake.candidate("bf16", "bf16", delay=0.003)]
    cache = ChoiceCache(tmp_path / "precision.json")
    with ThreadPoolExecutor(4) as pool:
        jobs = [
            pool.submit(
                select, cands, lambda: INPUTS, decode, key={"k": 1}, cache=cache, budget_s=0.05
            )
            for _ in range(4)
        ]
        choices = [job.result()[0] for job in jobs]
    assert sum(c.measured for c in choices) == 1
    assert {c.name for c in choices} == {"bf16"}


def test_unreadable_cache_is_measured_again(tmp_path: Path) -> None:
    fake = Fake()
    cache = ChoiceCache(tmp_path / "precision.json")
    cache.path.write_text("{not json")
    choice, _ = select(
        [fake.candidate("f32", "f32")], lambda: INPUTS, decode, key={"k": 1}, cache=cache
    )
    assert choice.measured and cache.get({"k": 1}) is not None


def test_env_and_explicit_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision(None) == "auto"
    monkeypatch.setenv("VEIL_PRECISION", "BF16")
    assert resolve_precision(None) == "bf16"
    assert resolve_precision("f32") == "f32"  # an explicit option beats the variable
    monkeypatch.setenv("VEIL_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="VEIL_PRECISION"):
        resolve_precision(None)
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("half")


def _cache_file() -> Path:
    return runtime._choices_file()


def test_centerface_auto_measures_once_then_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    first = CenterFace()
    assert first.choice.measured and _cache_file().is_file()
    assert first.choice.name == f"{first.backend}-{first.precision}"
    assert {"openvino-f32", "onnxruntime-f32"} <= set(first.choice.timings_ms) | set(
        first.choice.refused
    )
    second = CenterFace()
    assert not second.choice.measured and second.choice.name == first.choice.name
    image, box = face_on_canvas(scale=0.6, offset=(30, 10), canvas=(300, 400))
    assert best_iou(second.detect(image), box) > 0.5
    assert second.describe()["precision"] == second.precision


@pytest.mark.parametrize("how", ["option", "env"])
def test_centerface_explicit_precision_skips_measuring(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    if how == "env":
        monkeypatch.setenv("VEIL_PRECISION", "f32")
    detector = CenterFace(precision="f32" if how == "option" else None)
    assert (detector.backend, detector.precision) == ("openvino", "f32")
    assert not _cache_file().exists()


def test_centerface_refuses_what_the_machine_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    monkeypatch.setenv("VEIL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "_openvino_capabilities", lambda: frozenset({"FP32"}))
    with pytest.raises(ConfigError, match="bf16"):
        CenterFace(precision="bf16")
    monkeypatch.setattr("veil.detect.int8.nncf_installed", lambda: False)
    with pytest.raises(ConfigError, match="build_int8_centerface"):
        CenterFace(precision="int8")
    with pytest.raises(ConfigError, match="openvino"):
        CenterFace(backend="onnxruntime", precision="bf16")
    assert CenterFace(backend="onnxruntime", precision="f32").backend == "onnxruntime"


def test_precision_option_is_for_centerface_only() -> None:
    from veil.commands.options import detector_config

    opts = {"detector": "centerface", "threshold": None, "precision": "bf16"}
    assert detector_config(opts).options["precision"] == "bf16"
    assert "precision" not in detector_config(opts | {"precision": None}).options
    with pytest.raises(ConfigError, match="--precision"):
        detector_config(opts | {"detector": "haar"})
