"""Click options shared by every command that runs the pipeline, and the one function
that turns them into a :class:`~veil.config.RunConfig`.

Defaults come from the config dataclasses, so the CLI, the Python API and the service
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "detector_options",
    "image_method_options",
    "pipeline_options",
    "region_config_from",
    "region_options",
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
    """Detector options plus method, strength, ``--image``, mask shape/scale/margin/drop,
    feather, seed, who is anonymized (``--keep``, ``--only``, their thresholds), where
    (``--region``, ``--exclude-region``, ``--regions-file``) and ``--target``."""
    options = _DETECTOR_OPTIONS + _MASK_AND_METHOD_OPTIONS + _IMAGE_METHOD_OPTIONS
    return stack_options(options + _CONSENT_OPTIONS + _REGION_OPTIONS + _TARGET_OPTIONS, fn)


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
            options=anonymizer_options_from(options),
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
