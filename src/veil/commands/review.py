"""``veil review``: look at every detection before release, fix misses and false alarms,
re-render (the review page, served by the same app as ``veil serve``; extra ``serve``).

On start the video goes through veil's normal video pipeline (its per-frame audit: boxes,
scores, track ids, sources) and a small proxy with thumbnails is written, with a progress
bar; both are kept in a work folder, so a second ``veil review`` of the same file opens
at once. A folder of photos is analysed photo by photo. Token and host rules are
``veil serve``'s: no token on loopback, one generated and printed elsewhere.
"""

from __future__ import annotations

import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

import click

from veil.commands.options import pipeline_options, run_config, tracking_options
from veil.commands.serve import resolve_token, server_options
from veil.errors import MissingExtraError, VeilError

__all__ = ["review"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("input_path", metavar="VIDEO_OR_FOLDER", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Where renders go. Default: VIDEO_anonymized.EXT, or FOLDER_anonymized/.",
)
@click.option(
    "--edits",
    type=click.Path(path_type=Path),
    default=None,
    help="Edit list the page loads and saves. Default: VIDEO.edits.json beside the "
    "video; for a folder, FOLDER.edits/ holding PHOTO.edits.json per photo.",
)
@server_options
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where analyses, proxies and thumbnails are kept [default: veil's cache/review].",
)
@tracking_options(detect_every=8)
@pipeline_options
def review(
    input_path: Path,
    output: Path | None,
    edits: Path | None,
    host: str,
    port: int,
    open_browser: bool,
    token: str | None,
    no_auth: bool,
    work_dir: Path | None,
    **options: Any,
) -> None:
    """Review a video (or a folder of photos) in the browser before release.

    \b
    The page shows a timeline of faces per frame with their confidence, the frames
    worth a look (a track that disappears and comes back, weak detections, boxes the
    tracker predicted that no detection confirmed, scene cuts), and any frame with its
    boxes. Draw a box to add a face, click one to remove it, choose a method per track,
    save the edit list and re-render: the page's render is exactly
    'veil video VIDEO --edits EDITS' with the same options.

    \b
    Examples:
      veil review clip.mp4 --open              # edits: clip.edits.json
      veil review photos/ -o released/         # edits: photos.edits/*.edits.json
    """
    try:
        import uvicorn  # noqa: F401  # checked first: the missing extra is named, exit 2

        from veil.service import ServiceSettings, create_app, is_loopback
        from veil.service.server import run

        loopback = is_loopback(host)
        token = resolve_token(host, token, no_auth, loopback)
        session = _prepare(input_path, output, edits, work_dir, options)
        settings = ServiceSettings(token=token, loopback_only=loopback, config=session.config)
        app = create_app(settings, review=session)
    except MissingExtraError:
        raise
    except ImportError as exc:
        raise MissingExtraError(exc.name or "uvicorn", "serve", "veil review") from exc
    except VeilError as exc:
        raise click.ClickException(str(exc)) from exc
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/review" + (f"#token={token}" if token else "")
    click.echo(f"veil: review page on {url}", err=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    run(app, host, port)


def _prepare(
    source: Path, output: Path | None, edits: Path | None, work: Path | None, o: dict[str, Any]
) -> Any:
    """Analyse ``source`` with a progress bar per stage; the review session."""
    from tqdm import tqdm

    from veil.review import PhotoReview, VideoReview
    from veil.video import VideoConfig

    config = run_config(o)
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[stage] = tqdm(desc=stage, unit="frame", file=sys.stderr, leave=False)
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        if source.is_dir():
            return PhotoReview.prepare(
                source, output=output, edits=edits, work=work, config=config, progress=progress
            )
        video = VideoConfig(detect_every=o["detect_every"], max_age=o["max_age"])
        return VideoReview.prepare(
            source,
            output=output,
            edits=edits,
            work=work,
            config=config,
            video=video,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
