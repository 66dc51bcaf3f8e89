"""The ``veil`` command line."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from veil import __version__
from veil.anonymize.base import ANONYMIZERS
from veil.commands.options import (
    detector_config,
    detector_options,
    pipeline_options,
    png_compression_option,
    run_config,
)
from veil.config import OutputConfig
from veil.detect.base import DETECTORS
from veil.errors import MissingExtraError, VeilError
from veil.runner import FileOutcome, ImageRunner, RunSummary, is_video, plan_jobs

EXIT_SOME_FAILED = 1


def _fail(message: str) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(2)


class _Group(click.Group):
    """The top-level group: a missing optional dependency anywhere is a usage error
    (exit 2) whose message names the install command, never a traceback or exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MissingExtraError as exc:
            _fail(str(exc))


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
      veil doctor                                  # machine, chosen settings, self-benchmark
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file (one input) or folder. Default: NAME_anonymized next to each input.",
)
@pipeline_options
@click.option(
    "--keep-metadata",
    is_flag=True,
    help="Keep EXIF/XMP/comments (default strips them: GPS, device, names).",
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@png_compression_option()
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
@click.option(
    "--edits",
    "edits_path",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Edit list JSON (docs/edits.md): boxes to add, detections to leave, methods per "
    "face. Needs exactly one input file.",
)
def anonymize(
    inputs: tuple[Path, ...],
    output: Path | None,
    keep_metadata: bool,
    jpeg_quality: int,
    png_compression: int,
    overwrite: bool,
    report: bool,
    recursive: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    workers: int,
    quiet: bool,
    edits_path: Path | None,
    **options: Any,
) -> None:
    """Anonymize every face in image and video files and folders.

    Outputs keep each input's format; folders are mirrored. Videos get the video
    defaults (tracking, audio kept; 'veil video' has the video-only options). Files
    whose output exists are skipped (use --overwrite). A file that fails gets no
    output at all, never an un-anonymized copy; the run goes on and exits with
    status 1, listing the failures.
    """
    try:
        out = OutputConfig(
            keep_metadata=keep_metadata,
            jpeg_quality=jpeg_quality,
            png_compression=png_compression,
            overwrite=overwrite,
            report=report,
        )
        config = run_config(options, out, workers)
        jobs = plan_jobs(
            list(inputs), output, recursive=recursive, include=include, exclude=exclude
        )
        if not jobs:
            _fail(f"no image files found in {', '.join(map(str, inputs))}")
        if not workers and len(jobs) == 1 and not is_video(jobs[0].source):
            config = dataclasses.replace(config, workers=1)  # one image: every core on it
        edits = _edits_for(edits_path, inputs, jobs)
        runner = ImageRunner(config, quiet=quiet, edits=edits)
    except VeilError as exc:
        _fail(str(exc))
        return
    summary = _run_with_progress(runner, jobs, quiet)
    _print_summary(summary, quiet)
    if summary.failed:
        sys.exit(EXIT_SOME_FAILED)


def _edits_for(
    path: Path | None, inputs: tuple[Path, ...], jobs: list[Any]
) -> dict[Path, Any] | None:
    """``--edits``: the edit list for the one input file (usage error otherwise)."""
    if path is None:
        return None
    from veil.edits import load_edits

    if len(inputs) != 1 or len(jobs) != 1 or not inputs[0].is_file():
        _fail(f"--edits applies to exactly one input file, got {', '.join(map(str, inputs))}")
    return {jobs[0].source: load_edits(path)}


def _run_with_progress(runner: ImageRunner, jobs: list[Any], quiet: bool) -> RunSummary:
    if quiet or len(jobs) < 2:  # no bar: spare the start-up the import of tqdm

        def echo_failure(outcome: FileOutcome) -> None:
            if outcome.status == "failed":
                click.echo(f"veil: failed: {outcome.error}", err=True)

        return runner.run(jobs, echo_failure)
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", file=sys.stderr)

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
def detect(inputs: tuple[Path, ...], output: Path | None, **options: Any) -> None:
    """Detect faces and write their boxes as JSON (x0, y0, x1, y1 in pixels)."""
    from veil.io.images import read_image

    try:
        det_config = detector_config(options)
        det = DETECTORS.create(det_config.name, **det_config.kwargs())
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
    """List detectors and anonymization methods (plug-ins included), and which ones need
    an optional extra that is not installed (with the command that installs it)."""
    from veil.errors import extra_packages

    for title, registry in (("detectors", DETECTORS), ("anonymizers", ANONYMIZERS)):
        click.echo(f"{title}:")
        for name in registry.names():
            line = f"  {name:14} {registry.summary(name)}"
            missing = registry.missing(name)
            if missing is None and registry.extra(name):
                line += f"  (extra: {registry.extra(name)}, installed)"
            elif missing is not None:
                extra, modules = missing
                packages = " ".join(f"'{p}'" for p in extra_packages(extra) or modules)
                line += (
                    f"  [NOT INSTALLED: needs {', '.join(modules)}: pip install {packages}, "
                    f"or pip install '.[{extra}]' in a clone]"
                )
            click.echo(line)


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
    from veil.commands.batch import batch
    from veil.commands.doctor import doctor
    from veil.commands.eval import eval_group
    from veil.commands.eval_consent import consent as consent_eval
    from veil.commands.eval_more import compare, utility
    from veil.commands.eval_more import video as video_eval
    from veil.commands.live import live
    from veil.commands.report import report
    from veil.commands.review import review
    from veil.commands.rgbd import rgbd_command, synth_group
    from veil.commands.serve import serve
    from veil.commands.video import video

    for sub in (utility, video_eval, compare, consent_eval):
        eval_group.add_command(sub)
    commands = (video, live, batch, eval_group, report, rgbd_command, synth_group, serve, doctor)
    for command in commands:
        main.add_command(command)
    main.add_command(review)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
