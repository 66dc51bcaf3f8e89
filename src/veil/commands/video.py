"""``veil video``: anonymize one video file (tracking, audio kept, optional audit JSON).

Exit status: 0 done (or skipped because the output exists), 1 the video failed (bad or
unreadable input, encoding failure: no output is left), 2 invalid options, 130 Ctrl-C
(the partial output is removed). The options shared with ``veil anonymize`` are repeated
here rather than imported, so that ``veil.cli`` can import this module at load time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from veil.commands.options import (
    pipeline_options,
    run_config,
    stack_options,
    tracking_options,
)
from veil.config import OutputConfig, RunConfig
from veil.errors import VeilError
from veil.video.job import VideoOutcome, default_video_target, run_video_job

if TYPE_CHECKING:
    from veil.video import VideoConfig

__all__ = ["VideoOutcome", "default_video_target", "run_video_job", "video"]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(code)


def _summary(outcome: VideoOutcome) -> str:
    r = outcome.report
    assert r is not None
    frames = f"{r.frames_out} of {r.frames_expected}" if r.frames_expected else f"{r.frames_out}"
    parts = [f"veil: wrote {outcome.job.target}: {frames} frames, {r.tracks} face tracks"]
    parts.append(f"{r.fps:.1f} frames/s")
    if r.detection_failures:
        parts.append(f"{r.detection_failures} frames obscured or dropped (detection failed)")
    if r.decode_errors:
        parts.append(f"{len(r.decode_errors)} decode errors (corrupt frames skipped)")
    return ", ".join(parts)


_OPTIONS: list[Any] = [
    click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        default=None,
        help="Output video. Default: INPUT_anonymized.EXT beside the input.",
    ),
    click.option(
        "--lookahead",
        type=click.IntRange(0),
        default=8,
        show_default=True,
        help="Also mask a face in this many frames before it was first detected.",
    ),
    click.option(
        "--on-error",
        type=click.Choice(("obscure", "drop")),
        default="obscure",
        show_default=True,
        help="A frame where detection fails is fully obscured, or dropped "
        "(dropping changes the frame count).",
    ),
    click.option(
        "--crf",
        type=click.IntRange(0, 51),
        default=18,
        show_default=True,
        help="x264/x265 quality: lower is better and larger; 18 looks lossless.",
    ),
    click.option(
        "--preset",
        default="veryfast",
        show_default=True,
        help="x264/x265 speed preset; 'superfast' encodes ~10% faster end to end, files "
        "about twice as large.",
    ),
    click.option("--codec", default="libx264", show_default=True, help="Video encoder."),
    click.option("--no-audio", is_flag=True, help="Drop audio (default: copied unchanged)."),
    click.option(
        "--keep-metadata", is_flag=True, help="Keep container metadata (default strips it)."
    ),
    click.option("--report", is_flag=True, help="Write OUTPUT.audit.json (per-frame boxes)."),
    click.option("--overwrite", is_flag=True, help="Replace an existing output."),
    click.option(
        "--allow-partial",
        is_flag=True,
        help="A video with frames that cannot be decoded (truncated, corrupt) still gets "
        "an output of the decoded frames (exit 0, a warning). Default: it fails, exit 1, "
        "no output, and the error says how many frames were lost.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary."),
    click.option(
        "--edits",
        "edits_path",
        type=click.Path(path_type=Path),
        default=None,
        metavar="FILE",
        help="Edit list JSON (docs/edits.md): boxes to add (tracked or fixed), detections "
        "to leave, methods per face, by frame range.",
    ),
]


def _with_options(fn: Any) -> Any:
    # files get a look-ahead that backfills the frames before a late detection, so
    # speed mode is safe by default (lookahead 8 >= detect_every - 1)
    track = tracking_options(detect_every=8)  # = VideoConfig().detect_every (tested)
    return pipeline_options(track(stack_options(_OPTIONS, fn)))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@_with_options
def video(
    input_path: Path,
    output: Path | None,
    quiet: bool,
    edits_path: Path | None,
    **options: Any,
) -> None:
    """Anonymize every face in a video file; audio is kept.

    \b
    Faces are tracked across frames: a face the detector misses for a few frames stays
    masked (--max-age), and is masked in the frames before it was first found
    (--lookahead). The full detector runs every --detect-every frames and on scene
    cuts; keep --lookahead >= --detect-every - 1 so a face that appears between two
    detections is masked from its first frame. A frame where detection fails is never
    written as it was.

    \b
    Examples:
      veil video clip.mp4                      # -> clip_anonymized.mp4
      veil video clip.mp4 -o out.mkv --report --detect-every 3
      veil video clip.mp4 --edits clip.edits.json --report   # reviewed corrections
    """
    try:
        config, video_config = _configs(options)
        if video_config.lookahead < video_config.detect_every - 1:
            click.echo(
                f"veil: warning: --lookahead {video_config.lookahead} < --detect-every "
                f"{video_config.detect_every} - 1: a face appearing between two detections "
                "may be bare in its first frames",
                err=True,
            )
        dst = output or default_video_target(input_path)
        edits = None
        if edits_path is not None:
            from veil.edits import load_edits

            edits = load_edits(edits_path)
        outcome = run_video_job(input_path, dst, config, video_config, quiet, edits=edits)
    except KeyboardInterrupt:
        _fail("interrupted; the partial output was removed", EXIT_INTERRUPTED)
        return
    except VeilError as exc:
        _fail(str(exc))
        return
    if outcome.status == "failed":
        _fail(f"failed, no output written: {outcome.error}", EXIT_FAILED)
    elif outcome.status == "skipped":
        click.echo(f"veil: {dst} exists, skipped (use --overwrite)", err=True)
    elif not quiet:
        click.echo(_summary(outcome), err=True)


def _configs(o: dict[str, Any]) -> tuple[RunConfig, VideoConfig]:
    """The click options ``o`` -> (RunConfig, VideoConfig); raises ConfigError."""
    from veil.video import VideoConfig

    output = OutputConfig(
        keep_metadata=o["keep_metadata"], overwrite=o["overwrite"], report=o["report"]
    )
    config = run_config(o, output)
    video_config = VideoConfig(
        detect_every=o["detect_every"],
        max_age=o["max_age"],
        lookahead=o["lookahead"],
        on_error=o["on_error"],
        codec=o["codec"],
        crf=o["crf"],
        preset=o["preset"],
        keep_audio=not o["no_audio"],
        keep_metadata=o["keep_metadata"],
        allow_partial=o["allow_partial"],
    )
    return config, video_config
