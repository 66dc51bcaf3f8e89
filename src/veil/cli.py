"""The ``veil`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from veil import __version__
from veil.anonymize.base import ANONYMIZERS
from veil.config import AnonymizerConfig, DetectorConfig, MaskConfig, OutputConfig, RunConfig
from veil.detect.base import DETECTORS
from veil.errors import VeilError
from veil.mask import MASK_SHAPES
from veil.runner import FileOutcome, ImageRunner, RunSummary, plan_jobs

EXIT_SOME_FAILED = 1


def _fail(message: str) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="veil")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """veil: find every face in images, video and RGB-D data and make it unrecognizable.

    \b
    Examples:
      veil anonymize photo.jpg                     # -> photo_anonymized.jpg
      veil anonymize photos/ -o clean/ --report    # mirror a folder, audit JSON per file
      veil anonymize in/ -o out/ --method pixelate --mask box
      veil video clip.mp4 --detect-every 3         # tracking fills the frames between
      veil rgbd color/ --depth depth/ -o out/ --heads
      veil eval privacy --original in/ --anonymized out/
      veil detect photo.jpg -o boxes.json
      veil methods
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def detector_options(fn: Any) -> Any:
    fn = click.option(
        "-d",
        "--detector",
        default="centerface",
        show_default=True,
        help="Face detector (see 'veil methods').",
    )(fn)
    fn = click.option(
        "-t",
        "--threshold",
        type=click.FloatRange(0, 1),
        default=None,
        help="Detection score threshold; lower finds more faces (centerface default 0.2).",
    )(fn)
    fn = click.option(
        "--no-upscale",
        is_flag=True,
        help="centerface: skip the upscaled small-face pass (faster, misses tiny faces).",
    )(fn)
    return fn


def _detector_config(detector: str, threshold: float | None, no_upscale: bool) -> DetectorConfig:
    options: dict[str, Any] = {}
    if no_upscale:
        if detector != "centerface":
            _fail("--no-upscale applies to the centerface detector only")
        options["upscale"] = 0.0
    return DetectorConfig(name=detector, threshold=threshold, options=options)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (one input) or folder. Default: NAME_anonymized next to each input.",
)
@detector_options
@click.option(
    "-m",
    "--method",
    default="gaussian",
    show_default=True,
    help="Anonymization method (see 'veil methods').",
)
@click.option(
    "-s",
    "--strength",
    type=click.FloatRange(0.05, 20),
    default=1.0,
    show_default=True,
    help="Method strength; kernels scale with each face's size.",
)
@click.option(
    "--mask",
    "mask_shape",
    type=click.Choice(MASK_SHAPES),
    default="ellipse",
    show_default=True,
    help="Region shape around each face.",
)
@click.option(
    "--mask-scale",
    type=click.FloatRange(0.5, 4),
    default=1.5,
    show_default=True,
    help="Grow each face box by this factor before masking.",
)
@click.option(
    "--feather",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Soft edge outside the mask, as a fraction of face size.",
)
@click.option(
    "--mask-drop",
    type=click.FloatRange(-0.5, 0.5),
    default=0.05,
    show_default=True,
    help="Move the mask down by this fraction of the face height (chin, neck).",
)
@click.option("--seed", type=int, default=None, help="Seed random methods (reproducible).")
@click.option(
    "--keep-metadata",
    is_flag=True,
    help="Keep EXIF/XMP/comments (default strips them: GPS, device, names).",
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist.")
@click.option("--report", is_flag=True, help="Write OUTPUT.audit.json per file.")
@click.option(
    "--recursive/--no-recursive", default=True, show_default=True, help="Descend into sub-folders."
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Only files whose path relative to the folder matches (repeatable).",
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching files (repeatable).")
@click.option(
    "-j",
    "--workers",
    type=click.IntRange(0, 256),
    default=0,
    help="Parallel workers (0 = one per CPU core).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def anonymize(
    inputs: tuple[Path, ...],
    output: Path | None,
    detector: str,
    threshold: float | None,
    no_upscale: bool,
    method: str,
    strength: float,
    mask_shape: str,
    mask_scale: float,
    feather: float,
    mask_drop: float,
    seed: int | None,
    keep_metadata: bool,
    jpeg_quality: int,
    overwrite: bool,
    report: bool,
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    workers: int,
    quiet: bool,
) -> None:
    """Anonymize every face in image and video files and folders.

    Outputs keep each input's format; folders are mirrored. Videos get the video
    defaults (tracking, audio kept; 'veil video' has the video-only options). Files
    whose output exists are skipped (use --overwrite). A file that fails gets no output at all, never an
    un-anonymized copy; the run goes on and exits with status 1, listing the failures.
    """
    try:
        config = RunConfig(
            detector=_detector_config(detector, threshold, no_upscale),
            mask=MaskConfig(shape=mask_shape, scale=mask_scale, feather=feather, drop=mask_drop),
            anonymizer=AnonymizerConfig(method=method, strength=strength, seed=seed),
            output=OutputConfig(
                keep_metadata=keep_metadata,
                jpeg_quality=jpeg_quality,
                overwrite=overwrite,
                report=report,
            ),
            workers=workers,
        )
        jobs = plan_jobs(
            list(inputs), output, recursive=recursive, include=include, exclude=exclude
        )
        if not jobs:
            _fail(f"no image files found in {', '.join(map(str, inputs))}")
        runner = ImageRunner(config, quiet=quiet)
    except VeilError as exc:
        _fail(str(exc))
        return
    summary = _run_with_progress(runner, jobs, quiet)
    _print_summary(summary, quiet)
    if summary.failed:
        sys.exit(EXIT_SOME_FAILED)


def _run_with_progress(runner: ImageRunner, jobs: list[Any], quiet: bool) -> RunSummary:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=quiet or len(jobs) < 2, file=sys.stderr)

    def progress(outcome: FileOutcome) -> None:
        bar.update(1)
        if outcome.status == "failed":
            bar.write(f"veil: failed: {outcome.error}", file=sys.stderr)

    try:
        return runner.run(jobs, progress)
    finally:
        bar.close()


def _print_summary(summary: RunSummary, quiet: bool) -> None:
    done, skipped = summary.count("done"), summary.count("skipped")
    faces = sum(o.faces for o in summary.outcomes)
    failed = summary.failed
    if not quiet or failed:
        click.echo(
            f"veil: {done} anonymized ({faces} faces), {skipped} skipped (output exists), "
            f"{len(failed)} failed",
            err=True,
        )
    for outcome in failed:
        click.echo(f"  FAILED {outcome.job.source}: {outcome.error}", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the JSON here instead of standard output.",
)
@detector_options
def detect(
    inputs: tuple[Path, ...],
    output: Path | None,
    detector: str,
    threshold: float | None,
    no_upscale: bool,
) -> None:
    """Detect faces and write their boxes as JSON (x0, y0, x1, y1 in pixels)."""
    from veil.io.images import read_image

    try:
        det = DETECTORS.create(
            detector, **_detector_config(detector, threshold, no_upscale).kwargs()
        )
        jobs = plan_jobs(list(inputs), None)
    except VeilError as exc:
        _fail(str(exc))
        return
    images, failed = [], 0
    for job in jobs:
        try:
            faces = det.detect(read_image(job.source).image)
            images.append({"file": str(job.source), "faces": faces.to_records()})
        except VeilError as exc:
            failed += 1
            images.append({"file": str(job.source), "error": str(exc)})
            click.echo(f"veil: failed: {exc}", err=True)
    text = json.dumps({"detector": det.describe(), "images": images}, indent=2)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
    if failed:
        sys.exit(EXIT_SOME_FAILED)


@main.command()
def methods() -> None:
    """List detectors and anonymization methods (plug-ins included)."""
    for title, registry in (("detectors", DETECTORS), ("anonymizers", ANONYMIZERS)):
        click.echo(f"{title}:")
        for name in registry.names():
            click.echo(f"  {name:14} {registry.summary(name)}")


@main.command()
@click.argument("output", type=click.Path(path_type=Path), default="veil-sample.png")
def sample(output: Path) -> None:
    """Write a sample photo with a face (public-domain astronaut portrait) to OUTPUT."""
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(output)
    click.echo(f"veil: wrote {output}", err=True)


def _register_commands() -> None:
    """Commands that live in their own modules (they import heavy parts lazily)."""
    from veil.commands.eval import eval_group
    from veil.commands.rgbd import rgbd_command, synth_group
    from veil.commands.video import video

    for command in (video, eval_group, rgbd_command, synth_group):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
