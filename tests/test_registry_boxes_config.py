from __future__ import annotations

import numpy as np
import pytest

from veil.anonymize.base import ANONYMIZERS
from veil.boxes import box_iou, fuse_boxes, mask_box, nms, scale_boxes
from veil.config import AnonymizerConfig, DetectorConfig, RunConfig
from veil.detect.base import DETECTORS
from veil.errors import ConfigError
from veil.registry import Registry


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"centerface.*haar"):
        DETECTORS.get("nope")
    with pytest.raises(ConfigError, match="gaussian"):
        ANONYMIZERS.create("nope")


def test_registry_loads_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    ep = EntryPoint("mine", "veil.anonymize.fill:SolidFill", "veil.test-group")
    monkeypatch.setattr(
        "veil.registry.entry_points", lambda group: [ep] if group == "veil.test-group" else []
    )
    reg: Registry[object] = Registry("thing", "veil.test-group")
    assert reg.names() == ["mine"]
    assert reg.get("mine").__name__ == "SolidFill"


def test_builtin_names_do_not_scan_installed_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[str] = []
    monkeypatch.setattr("veil.registry.entry_points", lambda group: scans.append(group) or [])
    reg: Registry[object] = Registry("thing", "veil.test-group")
    reg.register("solid", "veil.anonymize.fill:SolidFill")
    assert reg.get("solid").__name__ == "SolidFill"
    assert scans == [], "a built-in is found without the entry-point scan"
    with pytest.raises(ConfigError, match="unknown thing 'nope'; choose one of: solid"):
        reg.get("nope")
    assert scans == ["veil.test-group"]


def test_registry_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="bad options"):
        ANONYMIZERS.create("gaussian", nonsense=1)


def test_box_iou_nms_and_fusion() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], np.float32)
    iou = box_iou(a, a)
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == pytest.approx(50 / 150)
    assert iou[0, 3] == 0
    keep = nms(a, np.array([0.9, 0.8, 0.7, 0.6]), 0.4)
    assert keep.tolist() == [0, 2, 3]
    fused, scores, members = fuse_boxes(a, np.array([0.9, 0.9, 0.1, 0.5]), 0.3)
    assert len(fused) == 2
    assert sorted(members[0].tolist()) == [0, 1, 2]
    assert scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(scale_boxes(a[:1], 2.0), [[-5, -5, 15, 15]])


def test_run_config_round_trips_and_rejects_bad_values() -> None:
    cfg = RunConfig(
        detector=DetectorConfig(threshold=0.3, options={"upscale": 0}),
        anonymizer=AnonymizerConfig(method="pixelate", strength=2),
    )
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    assert again.detector.kwargs() == {"upscale": 0, "threshold": 0.3}
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"detector": {"colour": 1}})
    with pytest.raises(ConfigError):
        DetectorConfig(threshold=2)


def test_mask_box_bounds_the_true_pixels() -> None:
    mask = np.zeros((10, 12), bool)
    assert mask_box(mask) is None
    mask[2, 3] = mask[6, 9] = True
    assert mask_box(mask) == (2, 7, 3, 10)
