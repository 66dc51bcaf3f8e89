"""``veil live``: anonymize a webcam or a network stream into a window, a file or a URL.

Exit status: 0 the source ended or was stopped (q, --max-frames, Ctrl-C), 1 the source
failed or dropped (after --reconnect attempts) or the output failed, 2 invalid options.
Pipeline options are shared with every command (veil.commands.options).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from veil.commands.options import (
    pipeline_options,
    run_config,
    stack_options,
    tracking_options,
)
from veil.errors import ConfigError, VeilError

__all__ = ["live"]

EXIT_FAILED, EXIT_USAGE = 1, 2

_OPTIONS: list[Any] = [
    click.option(
        "-o",
        "--output",
        default=None,
        help="Record to a file (container from the suffix) or stream to a URL: "
        "udp://host:port (MPEG-TS), rtsp://, rtmp://, srt://.",
    ),
    click.option(
        "--preview/--no-preview",
        default=None,
        help="Show a window (q quits). Default: on when there is no --output.",
    ),
    click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after N frames."),
    click.option(
        "--reconnect",
        type=click.IntRange(0),
        default=0,
        show_default=True,
        help="Reopen a dropped source up to N times (backoff 0.5 s, 1 s, 2 s ... 8 s).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(0.1),
        default=10.0,
        show_default=True,
        help="Seconds without data before a network source counts as dropped.",
    ),
    click.option("--fps", type=click.FloatRange(1), default=None, help="Output frame rate tag."),
    click.option("--crf", type=click.IntRange(0, 51), default=23, show_default=True),
    click.option("--preset", default="veryfast", show_default=True, help="x264/x265 preset."),
    click.option("-q", "--quiet", is_flag=True, help="No summary."),
]


def _with_options(fn: Any) -> Any:
    return pipeline_options(tracking_options(stack_options(_OPTIONS, fn)))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", metavar="SOURCE")
@_with_options
def live(source: str, output: str | None, preview: bool | None, quiet: bool, **o: Any) -> None:
    """Anonymize a live SOURCE: a webcam index (0), or any URL or file FFmpeg opens
    (rtsp://, http://, udp://, tcp://, clip.mp4).

    \b
    No look-ahead (lowest latency); a frame where detection fails is obscured, never
    shown or written as it was. Audio is not carried over.
    Examples:
      veil live 0                                    # webcam, preview window
      veil live 0 -o recording.mp4 --preview
      veil live rtsp://cam.local/stream -o udp://127.0.0.1:5000 --reconnect 5
    """
    from veil.video import VideoConfig
    from veil.video.live import run_live

    try:
        config = run_config(o)
        video = VideoConfig(
            detect_every=o["detect_every"],
            max_age=o["max_age"],
            lookahead=0,
            crf=o["crf"],
            preset=o["preset"],
            keep_audio=False,
        )
        show = output is None if preview is None else preview
        if not show and output is None:
            raise ConfigError("nothing to do: give --output or --preview")
        report = run_live(
            source,
            config,
            video,
            output=output,
            preview=show,
            max_frames=o["max_frames"],
            reconnect=o["reconnect"],
            timeout=o["timeout"],
            fps=o["fps"],
        )
    except KeyboardInterrupt:
        click.echo("veil: interrupted", err=True)
        return
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
        return
    except VeilError as exc:
        _fail(str(exc), EXIT_FAILED)
        return
    if not quiet:
        message = f"veil: {report.frames_out} frames ({report.fps:.1f} frames/s), ended: "
        message += f"{report.ended}, {report.reconnects} reconnects"
        click.echo(message, err=True)


def _fail(message: str, code: int) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(code)
