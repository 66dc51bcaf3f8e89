"""``veil.detect._openvino.import_openvino``: OpenVINO without its conversion tool at
start-up, ``convert_model`` still there on demand (in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("openvino")

SCRIPT = """
import sys
from veil.detect._openvino import import_openvino
ov = import_openvino()
assert "openvino.tools.ovc" not in sys.modules, "conversion tool imported"
assert "openvino_telemetry" not in sys.modules, "telemetry client imported"
assert import_openvino() is ov
core = ov.Core()
assert "CPU" in core.available_devices
assert callable(ov.convert_model)  # imported now, on first use
assert "openvino.tools.ovc" in sys.modules
try:
    ov.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("unknown attribute did not raise")
print("ok")
"""


def test_openvino_is_imported_without_the_conversion_tool() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
