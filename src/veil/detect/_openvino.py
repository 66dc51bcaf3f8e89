"""``import openvino`` for inference only, about 0.15-0.3 s faster at start-up.

``openvino/__init__.py`` ends with ``try: from openvino.tools.ovc import convert_model``
``except ImportError: pass``: the model-conversion tool, which imports its telemetry
client (``http.client``, ``ssl``, ``email``, ...) and looks up package versions. veil
only reads and compiles ONNX models, so that import is skipped; ``openvino.convert_model``
stays available and imports the tool on first use.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["import_openvino"]

_TOOL = "openvino.tools.ovc"
_lock = threading.Lock()


def import_openvino() -> ModuleType:
    """The ``openvino`` module, imported without its conversion tool unless already
    imported (then it is returned as it is)."""
    with _lock:
        if "openvino" in sys.modules:
            return sys.modules["openvino"]
        blocked = _TOOL not in sys.modules
        if blocked:
            sys.modules[_TOOL] = None  # type: ignore[assignment]  # makes the import fail
        try:
            ov = importlib.import_module("openvino")
        finally:
            if blocked and sys.modules.get(_TOOL, 0) is None:
                del sys.modules[_TOOL]
        if not hasattr(ov, "convert_model"):
            ov.__dict__.setdefault("__getattr__", _convert_model_on_demand)
        return ov


def _convert_model_on_demand(name: str) -> Any:
    if name == "convert_model":
        from openvino.tools.ovc import convert_model

        return convert_model
    raise AttributeError(f"module 'openvino' has no attribute {name!r}")
