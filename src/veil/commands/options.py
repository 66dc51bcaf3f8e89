"""Click options shared by every command that runs the pipeline, and the one function
that turns them into a :class:`~veil.config.RunConfig`.

Defaults come from the config dataclasses, so the CLI, the Python API and the service
cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from veil.config import (
    AnonymizerConfig,
    ConsentConfig,
    DetectorConfig,
    MaskConfig,
    OutputConfig,
    RegionConfig,
    RunConfig,
)
from veil.detect.precision import PRECISIONS
from veil.errors import ConfigError
from veil.mask import MASK_SHAPES

__all__ = [
    "anonymizer_options_from",
    "check_method_options",
    "detector_options",
    "image_method_options",
    "method_options",
    "parse_option_value",
    "pipeline_options",
    "region_config_from",
    "region_options",
    "request_method_options",
    "run_config",
    "stack_options",
    "tracking_options",
]

_MASK = MaskConfig()
_ANON = AnonymizerConfig()
_CONSENT = ConsentConfig()


def stack_options(options: list[Callable[[Any], Any]], fn: Any) -> Any:
    """Apply click option decorators in list order (first option listed first in --help)."""
    for option in reversed(options):
        fn = option(fn)
    return fn


_DETECTOR_OPTIONS = [
    click.option(
        "-d",
        "--detector",
        default=DetectorConfig().name,
        show_default=True,
        help="Face detector (see 'veil methods').",
    ),
    click.option(
        "-t",
        "--threshold",
        type=click.FloatRange(0, 1),
        default=None,
        help="Detection score threshold; lower finds more faces (centerface default 0.15).",
    ),
    click.option(
        "--no-upscale",
        is_flag=True,
        help="centerface: skip the small-face pass (faster, misses faces under ~12 px).",
    ),
    click.option(
        "--small-face-proposals",
        "proposal_threshold",
        type=click.FloatRange(0, 1, min_open=True, max_open=True),
        default=None,
        help="centerface: heat-map score from which the small-face pass takes a second "
        "look at 2x (default 0.05 on images, 0.02 on video key frames); lower finds "
        "more small faces and runs more windows.",
    ),
    click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=None,
        help="centerface: inference precision; auto (default, or $VEIL_PRECISION) uses the "
        "fastest that finds the same faces as f32 on this machine, measured once and "
        "cached (see 'veil doctor').",
    ),
]

_MASK_AND_METHOD_OPTIONS = [
    click.option(
        "-m",
        "--method",
        default=_ANON.method,
        show_default=True,
        help="Anonymization method (see 'veil methods').",
    ),
    click.option(
        "-s",
        "--strength",
        type=click.FloatRange(0.05, 20),
        default=_ANON.strength,
        show_default=True,
        help="Method strength; kernels scale with each face's size.",
    ),
    click.option(
        "--mask",
        "mask_shape",
        type=click.Choice(MASK_SHAPES),
        default=_MASK.shape,
        show_default=True,
        help="Region shape around each face.",
    ),
    click.option(
        "--mask-scale",
        type=click.FloatRange(0.5, 4),
        default=_MASK.scale,
        show_default=True,
        help="Grow each face box by this factor before masking.",
    ),
    click.option(
        "--mask-margin",
        type=click.FloatRange(0, 64),
        default=_MASK.margin,
        show_default=True,
        help="Pixels added around every mask after --mask-scale (absorbs box error).",
    ),
    click.option(
        "--mask-drop",
        type=click.FloatRange(-0.5, 0.5),
        default=_MASK.drop,
        show_default=True,
        help="Move the mask down by this fraction of the face height (chin, neck).",
    ),
    click.option(
        "--feather",
        type=click.FloatRange(0, 1),
        default=_MASK.feather,
        show_default=True,
        help="Soft edge outside the mask, as a fraction of face size.",
    ),
    click.option("--seed", type=int, default=None, help="Seed random methods (reproducible)."),
]

_CONSENT_OPTIONS = [
    click.option(
        "--keep",
        multiple=True,
        type=click.Path(exists=True, path_type=str),
        help="Leave these people visible: a photo (one face) or a folder of photos of "
        "people who consented (repeatable). A face is kept only when it clearly matches; "
        "small, blurred, turned or ambiguous faces are anonymized.",
    ),
    click.option(
        "--only",
        multiple=True,
        type=click.Path(exists=True, path_type=str),
        help="Anonymize only these people (an erasure request; same photos as --keep, "
        "repeatable). Faces that cannot be embedded reliably are anonymized too.",
    ),
    click.option(
        "--keep-threshold",
        type=click.FloatRange(0, 1, min_open=True),
        default=_CONSENT.keep_threshold,
        show_default=True,
        help="--keep: dlib face distance under which a face matches a reference.",
    ),
    click.option(
        "--only-threshold",
        type=click.FloatRange(0, 1, min_open=True),
        default=_CONSENT.only_threshold,
        show_default=True,
        help="--only: dlib face distance under which a face is anonymized.",
    ),
]

_TARGET_OPTIONS = [
    click.option(
        "--target",
        type=click.Choice(("face", "head", "person")),
        default=RunConfig().target,
        show_default=True,
        help="What to anonymize: the face; the whole head (hair, ears: the face box "
        "grown, no model); or the whole person (masks from MediaPipe's pose model, found "
        "in the installed mediapipe wheel; a face no person mask covers is still hidden).",
    ),
]


_REGION_OPTIONS = [
    click.option(
        "--region",
        "regions",
        multiple=True,
        metavar="X1,Y1,X2,Y2",
        help="Anonymize only faces touching this box (repeatable; a face partly inside is "
        "anonymized). Pixels, or fractions of the frame when every value is <= 1: "
        "0,0.5,1,1 is the lower half.",
    ),
    click.option(
        "--exclude-region",
        "exclude_regions",
        multiple=True,
        metavar="X1,Y1,X2,Y2",
        help="Leave visible faces lying in this box: their centre and at least half their "
        "box inside (repeatable; e.g. a presenter's corner). Same units as --region.",
    ),
    click.option(
        "--regions-file",
        type=click.Path(exists=True, dir_okay=False, path_type=str),
        default=None,
        help='Polygons as JSON: {"include": [[[x, y], ...], ...], "exclude": [...]}, '
        "pixels or fractions (per polygon: fractions when every value is <= 1).",
    ),
]

_IMAGE_METHOD_OPTIONS = [
    click.option(
        "--image",
        "replacement_image",
        type=click.Path(dir_okay=False, path_type=str),
        default=None,
        help="--method image: the picture put over every face (scaled to cover the face's "
        "mask, centre-cropped).",
    ),
]


def region_options(fn: Any) -> Any:
    """``--region``, ``--exclude-region``, ``--regions-file`` (see :mod:`veil.regions`)."""
    return stack_options(_REGION_OPTIONS, fn)


def image_method_options(fn: Any) -> Any:
    """``--image`` (the picture of ``--method image``)."""
    return stack_options(_IMAGE_METHOD_OPTIONS, fn)


def region_config_from(options: dict[str, Any]) -> RegionConfig:
    """``RegionConfig`` from :func:`region_options` values; ConfigError or InputError."""
    from veil.regions import region_config

    return region_config(
        options.get("regions") or (),
        options.get("exclude_regions") or (),
        options.get("regions_file"),
    )


def anonymizer_options_from(options: dict[str, Any]) -> dict[str, Any]:
    """The method's extra options from :func:`image_method_options` values."""
    image = options.get("replacement_image")
    if image is not None and options.get("method") != "image":
        raise ConfigError("--image applies to --method image only")
    return {"image": image} if image is not None else {}


def _tracking_options(detect_every: int) -> list[Any]:
    return [
        click.option(
            "--detect-every",
            type=click.IntRange(1),
            default=detect_every,
            show_default=True,
            help="Speed mode: full detection every N frames (and on scene cuts); in "
            "between, faces are tracked and uncertain tracks re-checked in small windows.",
        ),
        click.option(
            "--max-age",
            type=click.IntRange(0),
            default=15,
            show_default=True,
            help="Keep masking a lost face for this many frames.",
        ),
    ]


def tracking_options(fn: Any = None, *, detect_every: int = 1) -> Any:
    """``--detect-every`` (default ``detect_every``) and ``--max-age``, for video files
    and live streams; ``@tracking_options`` or ``@tracking_options(detect_every=4)``."""
    if fn is None:
        return lambda f: stack_options(_tracking_options(detect_every), f)
    return stack_options(_tracking_options(detect_every), fn)


def png_compression_option(what: str = "PNG outputs") -> Any:
    """``--png-compression`` (0-9, default 1), shared by the commands that write PNGs."""
    return click.option(
        "--png-compression",
        type=click.IntRange(0, 9),
        default=1,
        show_default=True,
        help=f"zlib level of {what} (0-9): 1 is fast; 6, Pillow's default, makes files "
        "2-15% smaller and is 2-6x slower to write.",
    )


def detector_options(fn: Any) -> Any:
    """``--detector``, ``--threshold``, ``--no-upscale``, ``--small-face-proposals``,
    ``--precision``."""
    return stack_options(_DETECTOR_OPTIONS, fn)


def pipeline_options(fn: Any) -> Any:
    """Detector options plus method, strength, ``--image``, ``--degree``,
    ``--method-option``, mask shape/scale/margin/drop, feather, seed, who is anonymized
    (``--keep``, ``--only``, their thresholds), where (``--region``, ``--exclude-region``,
    ``--regions-file``) and ``--target``."""
    options = _DETECTOR_OPTIONS + _MASK_AND_METHOD_OPTIONS + _IMAGE_METHOD_OPTIONS
    options = options + _METHOD_OPTION_OPTIONS + _CONSENT_OPTIONS + _REGION_OPTIONS
    return stack_options(options + _TARGET_OPTIONS, fn)


def detector_config(options: dict[str, Any]) -> DetectorConfig:
    """``DetectorConfig`` from :func:`detector_options` values; raises ``ConfigError``."""
    det: dict[str, Any] = {}
    if options.get("no_upscale"):
        if options["detector"] != "centerface":
            raise ConfigError("--no-upscale applies to the centerface detector only")
        det["upscale"] = 0.0
    if options.get("proposal_threshold") is not None:
        if options["detector"] != "centerface":
            raise ConfigError("--small-face-proposals applies to the centerface detector only")
        value = options["proposal_threshold"]
        det |= {"proposal_threshold": value, "keyframe_proposal_threshold": value}
    if options.get("precision") is not None:
        if options["detector"] != "centerface":
            raise ConfigError("--precision applies to the centerface detector only")
        det["precision"] = options["precision"]
    return DetectorConfig(name=options["detector"], threshold=options["threshold"], options=det)


def run_config(
    options: dict[str, Any], output: OutputConfig | None = None, workers: int = 0
) -> RunConfig:
    """``RunConfig`` from :func:`pipeline_options` values; raises ``ConfigError``."""
    return RunConfig(
        detector=detector_config(options),
        mask=MaskConfig(
            shape=options["mask_shape"],
            scale=options["mask_scale"],
            feather=options["feather"],
            drop=options["mask_drop"],
            margin=options["mask_margin"],
        ),
        anonymizer=AnonymizerConfig(
            method=options["method"],
            strength=options["strength"],
            seed=options["seed"],
            options=anonymizer_options_from(options) | method_options(options),
        ),
        output=output or OutputConfig(),
        workers=workers,
        consent=ConsentConfig(
            keep=tuple(options.get("keep") or ()),
            only=tuple(options.get("only") or ()),
            keep_threshold=options.get("keep_threshold", _CONSENT.keep_threshold),
            only_threshold=options.get("only_threshold", _CONSENT.only_threshold),
        ),
        regions=region_config_from(options),
        target=options.get("target") or RunConfig().target,
    )


# --- method options: --degree and --method-option key=value (any method's own options) -------

_METHOD_OPTION_OPTIONS = [
    click.option(
        "--degree",
        type=click.FloatRange(0, 2),
        default=None,
        help="synthetic: how far the face's geometry moves from the person's own: 0 keeps "
        "it, 1 (default) takes the synthetic face's, up to 2 goes past it.",
    ),
    click.option(
        "--method-option",
        "method_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="An option of the method's constructor, e.g. --method-option blend=alpha "
        "(repeatable; values are read as int, float, true/false, none or text).",
    ),
]

#: options set by their own flags, never through --method-option
_OWN_FLAGS = {"strength": "--strength", "seed": "--seed"}


def parse_option_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"``/``"false"`` (any case) -> bool,
    ``"none"`` -> None, anything else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return None if lowered in ("none", "null") else text


def _parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"method option {pair!r}: expected KEY=VALUE, e.g. degree=1.2")
        out[key.strip()] = parse_option_value(value.strip())
    return out


def check_method_options(method: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``method``'s constructor: an unknown key (or one with a
    flag of its own) raises ``ConfigError`` naming it and listing the valid keys."""
    from veil.anonymize.base import ANONYMIZERS

    params = inspect.signature(ANONYMIZERS.get(method).__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    valid = [
        n
        for n, p in params.items()
        if n != "self" and n not in _OWN_FLAGS and p.kind is not inspect.Parameter.VAR_POSITIONAL
    ]
    for key in options:
        if key in _OWN_FLAGS:
            raise ConfigError(f"method option {key!r}: use {_OWN_FLAGS[key]}")
        if key not in valid:
            listed = ", ".join(valid) or "none"
            raise ConfigError(f"method {method!r} has no option {key!r}; valid options: {listed}")
    return dict(options)


def method_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The method's own options from ``--method-option`` pairs and ``--degree``, checked
    (see :func:`check_method_options`); empty when neither is given."""
    found = _parse_pairs(options.get("method_option") or ())
    if options.get("degree") is not None:
        found["degree"] = float(options["degree"])
    return check_method_options(options["method"], found) if found else {}


#: options that name files or nest other options: settings files only, never a request
_NOT_FROM_REQUESTS = {"gallery", "generator_options", "model_path"}


def request_method_options(
    method: str,
    pairs: Iterable[str] = (),
    json_text: str | None = None,
    degree: float | None = None,
) -> dict[str, Any]:
    """The service's form fields as :func:`method_options`: ``method_option`` pairs
    (``KEY=VALUE``, repeatable), ``method_options`` (a JSON object, values as typed) and
    ``degree``; raises ``ConfigError``. Only scalar values, and no paths: a request must
    not make the server read its own files (``gallery=/some/folder``)."""
    import json

    found: dict[str, Any] = {}
    if json_text:
        try:
            parsed = json.loads(json_text)
        except ValueError as exc:
            raise ConfigError(f"method_options: not JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ConfigError('method_options: expected a JSON object, e.g. {"degree": 1.2}')
        found |= parsed
    found |= _parse_pairs(pairs)
    if degree is not None:
        found["degree"] = float(degree)
    for key, value in found.items():  # a request must not name files on the server
        if key in _NOT_FROM_REQUESTS or not isinstance(value, (int, float, str, type(None))):
            raise ConfigError(f"method option {key!r} is not accepted by the service")
        if isinstance(value, str) and ("/" in value or "\\" in value or value.startswith(".")):
            raise ConfigError(f"method option {key!r}: paths are not accepted by the service")
    return check_method_options(method, found)
