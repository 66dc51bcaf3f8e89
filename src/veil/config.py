"""Run configuration: frozen dataclasses built once (by the CLI, the API or the service)
and passed whole to :class:`~veil.pipeline.Pipeline` and the runners."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from veil.errors import ConfigError

__all__ = [
    "AnonymizerConfig",
    "ConsentConfig",
    "DetectorConfig",
    "MaskConfig",
    "OutputConfig",
    "RegionConfig",
    "RunConfig",
]


def _frozen(options: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


@dataclass(frozen=True)
class DetectorConfig:
    """Which detector and its options (``threshold`` is shared by all detectors)."""

    name: str = "centerface"
    threshold: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"detector threshold must be within [0, 1], got {self.threshold}")

    def kwargs(self) -> dict[str, Any]:
        out = dict(self.options)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


@dataclass(frozen=True)
class MaskConfig:
    """Region shape around each face (see :class:`veil.mask.Masker`)."""

    shape: str = "ellipse"
    scale: float = 1.4
    feather: float = 0.0
    drop: float = 0.05
    margin: float = 2.0


@dataclass(frozen=True)
class AnonymizerConfig:
    """Which anonymization method, how strong, and its extra options."""

    method: str = "gaussian"
    strength: float = 1.0
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))


@dataclass(frozen=True)
class OutputConfig:
    """How results are written."""

    keep_metadata: bool = False
    jpeg_quality: int = 95
    overwrite: bool = False
    report: bool = False
    png_compression: int = 1  # zlib level 0-9 (veil.io.images.PNG_COMPRESSION)

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg quality must be within [1, 100], got {self.jpeg_quality}")
        if not 0 <= self.png_compression <= 9:
            raise ConfigError(f"png compression must be within [0, 9], got {self.png_compression}")


@dataclass(frozen=True)
class ConsentConfig:
    """Who is anonymized (see :mod:`veil.consent`): everyone (default), everyone except
    the people in the ``keep`` reference photos, or only the people in ``only``'s.

    ``keep_threshold``: a face is kept only when its dlib distance to a reference is
    below it (strict; dlib's own same-person threshold is 0.6). ``only_threshold``: with
    ``only``, a face this close to a reference is anonymized (lenient, so fewer of the
    listed person's faces slip through). ``margin``: with ``keep``, every other person's
    references must be at least this much further than the nearest. ``min_size``: faces
    whose shorter box side is under this many pixels are never matched.
    """

    keep: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    keep_threshold: float = 0.45
    only_threshold: float = 0.6
    margin: float = 0.1
    min_size: float = 40.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", tuple(str(p) for p in self.keep))
        object.__setattr__(self, "only", tuple(str(p) for p in self.only))
        if self.keep and self.only:
            raise ConfigError("--keep and --only cannot be combined: choose one list")
        for name in ("keep_threshold", "only_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"consent {name} must be within (0, 1], got {value}")
        if self.margin < 0 or self.min_size < 0:
            raise ConfigError(
                f"consent margin and min_size must be >= 0, got {self.margin}, {self.min_size}"
            )

    @property
    def active(self) -> bool:
        """Whether anyone is chosen (else every face is anonymized)."""
        return bool(self.keep or self.only)


Polygon = tuple[tuple[float, float], ...]
MAX_POLYGON_POINTS = 1000
MAX_POLYGONS = 64


@dataclass(frozen=True)
class RegionConfig:
    """Where faces are anonymized (see :mod:`veil.regions`): ``include`` polygons restrict
    anonymization to faces touching them (none: the whole frame); a face lying mostly in
    an ``exclude`` polygon (its centre and at least ``exclude_share`` of its box) is left
    visible. Each polygon is ``((x, y), ...)`` with at least 3 points, in pixels, or in
    fractions of the frame when every value of that polygon is <= 1.
    """

    include: tuple[Polygon, ...] = ()
    exclude: tuple[Polygon, ...] = ()
    exclude_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            if len(getattr(self, name)) > MAX_POLYGONS:
                count = len(getattr(self, name))
                raise ConfigError(f"{name} regions: at most {MAX_POLYGONS}, got {count}")
            polygons = tuple(
                _polygon(p, f"{name} region {i + 1}") for i, p in enumerate(getattr(self, name))
            )
            object.__setattr__(self, name, polygons)
        if not 0.0 < self.exclude_share <= 1.0:
            raise ConfigError(f"exclude_share must be within (0, 1], got {self.exclude_share}")

    @property
    def active(self) -> bool:
        """Whether any region is set (else every face is anonymized wherever it is)."""
        return bool(self.include or self.exclude)


def _polygon(points: Any, what: str) -> Polygon:
    """``points`` as a :data:`Polygon`; ConfigError naming ``what`` when malformed."""
    try:
        out = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: expected a list of [x, y] points, got {points!r}") from exc
    values = [v for point in out for v in point]
    if not 3 <= len(out) <= MAX_POLYGON_POINTS:
        raise ConfigError(
            f"{what}: a polygon needs 3 to {MAX_POLYGON_POINTS} points, got {len(out)}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ConfigError(f"{what}: coordinates must be finite and >= 0, got {points!r}")
    if max(values) > 1 and any(0 < v < 1 for v in values):
        raise ConfigError(
            f"{what}: mixes fractions (values < 1) and pixels (values > 1); give every "
            "value as a fraction of the frame (all <= 1) or every value in pixels"
        )
    return out


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    anonymizer: AnonymizerConfig = field(default_factory=AnonymizerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    workers: int = 0
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    # what is anonymized around each face: "face", "head" or "person" (veil.target)
    target: str = "face"

    def __post_init__(self) -> None:
        if self.target not in ("face", "head", "person"):
            raise ConfigError(
                f"unknown target {self.target!r}; choose one of: ('face', 'head', 'person')"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (for audit files and settings files); ``consent`` only
        when a keep or only list is set."""

        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if isinstance(value, Mapping):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, tuple):
                return list(value)
            return value

        result: dict[str, Any] = plain(self)
        if not self.consent.active:  # everyone anonymized: settings (and hashes) as before
            del result["consent"]
        if not self.regions.active:  # the whole frame: settings (and hashes) as before
            del result["regions"]
        if self.target == "face":  # the default: settings (and hashes) as before
            del result["target"]
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        parts = {
            "detector": DetectorConfig,
            "mask": MaskConfig,
            "anonymizer": AnonymizerConfig,
            "output": OutputConfig,
            "consent": ConsentConfig,
            "regions": RegionConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            try:
                kwargs[key] = parts[key](**value) if key in parts else value
            except TypeError as exc:
                raise ConfigError(f"settings section {key!r}: {exc}") from exc
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"settings: {exc}") from exc
