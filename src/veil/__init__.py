"""veil: find every face in images, video and RGB-D data and make it unrecognizable.

The curated public API; everything else lives in private-by-convention modules.

>>> import veil
>>> from skimage import data
>>> out = veil.anonymize_image(data.astronaut())
>>> out.shape
(512, 512, 3)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

__version__ = "0.1.0"

from veil.anonymize.base import ANONYMIZERS, Anonymizer
from veil.config import (
    AnonymizerConfig,
    ConsentConfig,
    DetectorConfig,
    MaskConfig,
    OutputConfig,
    RunConfig,
)
from veil.detect.base import DETECTORS, Detector
from veil.errors import (
    BackendError,
    ConfigError,
    InputError,
    MissingExtraError,
    OutputError,
    VeilError,
)
from veil.mask import Masker, Region
from veil.pipeline import Pipeline, Result
from veil.types import Faces, Frame

__all__ = [
    "ANONYMIZERS",
    "DETECTORS",
    "Anonymizer",
    "AnonymizerConfig",
    "BackendError",
    "ConfigError",
    "ConsentConfig",
    "Detector",
    "DetectorConfig",
    "EditList",
    "Faces",
    "Frame",
    "InputError",
    "MaskConfig",
    "Masker",
    "MissingExtraError",
    "OutputConfig",
    "OutputError",
    "Pipeline",
    "Region",
    "Result",
    "RunConfig",
    "VeilError",
    "__version__",
    "anonymize_image",
    "detect_faces",
    "load_edits",
    "save_edits",
]

if TYPE_CHECKING:
    from veil.edits import EditList, load_edits, save_edits

_LAZY = {"EditList": "veil.edits", "load_edits": "veil.edits", "save_edits": "veil.edits"}


def __getattr__(name: str) -> Any:
    """Names imported on first use (edit lists: not every run needs them at start-up)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'veil' has no attribute {name!r}")


_PIPELINES: dict[str, Pipeline] = {}


def _pipeline(config: RunConfig) -> Pipeline:
    # models load once per distinct config; repeated calls reuse them
    key = json.dumps(config.to_dict(), sort_keys=True, default=str)
    if key not in _PIPELINES:
        _PIPELINES[key] = Pipeline.from_config(config)
    return _PIPELINES[key]


def anonymize_image(
    image: np.ndarray,
    *,
    method: str = "gaussian",
    detector: str = "centerface",
    strength: float = 1.0,
    threshold: float | None = None,
    mask: str = "ellipse",
    mask_scale: float = 1.4,
    seed: int | None = None,
    config: RunConfig | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` (RGB ``uint8 (H, W, 3)``) with every face anonymized.

    Pass either the keyword shortcuts or a whole :class:`RunConfig`. The input array is
    never modified. Raises :class:`VeilError` subclasses on bad input or backend failure.
    """
    if config is None:
        config = RunConfig(
            detector=DetectorConfig(name=detector, threshold=threshold),
            mask=MaskConfig(shape=mask, scale=mask_scale),
            anonymizer=AnonymizerConfig(method=method, strength=strength, seed=seed),
        )
    return _pipeline(config).process(image).image


def detect_faces(image: np.ndarray, *, detector: str = "centerface", **options: Any) -> Faces:
    """Detect faces in an RGB ``uint8 (H, W, 3)`` image with the named detector."""
    config = RunConfig(detector=DetectorConfig(name=detector, options=options))
    return _pipeline(config).detect(image)
