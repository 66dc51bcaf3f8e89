"""``veil synth rgbd`` (synthetic RGB-D scenes with ground truth) and ``veil rgbd``
(anonymize colour + depth pairs with depth-refined head masks).

Heavy modules (the detector, OpenCV, scikit-image) are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from veil.commands.options import (
    anonymizer_options_from,
    image_method_options,
    png_compression_option,
    region_config_from,
    region_options,
    tracking_options,
)

if TYPE_CHECKING:
    import numpy as np

    from veil.io.images import LoadedImage
    from veil.io.rgbd import RGBDPair
    from veil.pipeline import Pipeline
    from veil.rgbd.sequence import RGBDAnonymizer, RGBDConfig, RGBDResult, Tracked
    from veil.video import Ahead, VideoConfig

__all__ = ["rgbd_command", "synth_group"]


def _fail(message: str) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(2)


@click.group("synth")
def synth_group() -> None:
    """Generate synthetic test data with ground truth."""


@synth_group.command("rgbd")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(1, 100_000), default=10, show_default=True)
@click.option("--people", type=click.IntRange(1, 12), default=3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--width", type=click.IntRange(64, 4096), default=640, show_default=True)
@click.option("--height", type=click.IntRange(48, 4096), default=480, show_default=True)
def synth_rgbd(out_dir: Path, frames: int, people: int, seed: int, width: int, height: int) -> None:
    """Write a synthetic RGB-D sequence to OUT_DIR.

    \b
    OUT_DIR/color/NNNN.png         RGB colour
    OUT_DIR/depth/NNNN.png         16-bit depth in millimetres (0 = no reading)
    OUT_DIR/gt/NNNN_heads.png      8-bit labels: person index + 1 on their visible head
    OUT_DIR/gt/NNNN_faces.png      the same for visible faces
    OUT_DIR/gt/NNNN.json           face boxes (xyxy) of visible faces, per person
    OUT_DIR/intrinsics.json        fx, fy, cx, cy
    """
    import numpy as np

    from veil.io.images import write_image
    from veil.io.rgbd import write_depth
    from veil.rgbd.synth import make_scene

    scene = make_scene(seed, size=(height, width), people=people, frames=frames)
    for t, f in enumerate(scene):
        name = f"{t:04d}"
        write_image(out_dir / "color" / f"{name}.png", f.color)
        write_depth(out_dir / "depth" / f"{name}.png", f.depth)
        for kind, masks in (("heads", f.head_masks), ("faces", f.face_masks)):
            labels = np.zeros(masks.shape[1:], np.uint8)
            for i, m in enumerate(masks):
                labels[m] = i + 1
            _write_label(out_dir / "gt" / f"{name}_{kind}.png", labels)
        boxes = {
            str(i): [round(float(v), 1) for v in f.face_boxes[i]]
            for i in np.flatnonzero(f.face_visible)
        }
        (out_dir / "gt" / f"{name}.json").write_text(json.dumps({"face_boxes": boxes}) + "\n")
    (out_dir / "intrinsics.json").write_text(json.dumps(scene[0].intrinsics, indent=1) + "\n")
    click.echo(f"veil: wrote {frames} frames of {people} people to {out_dir}", err=True)


def _write_label(path: Path, labels: Any) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels, "L").save(path)


@click.command("rgbd")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--depth",
    "depth_source",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Depth file or folder (default: SOURCE/depth/ or X_depth.* beside X_color.*).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder: OUTPUT/color/ and OUTPUT/depth/.",
)
@click.option(
    "--intrinsics",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Intrinsics JSON (default: intrinsics.json beside SOURCE).",
)
@click.option(
    "--depth-scale",
    type=float,
    default=0.001,
    show_default=True,
    help="Metres per unit of integer depth files (0.001 = millimetres).",
)
@click.option(
    "--depth-policy",
    type=click.Choice(["keep", "flatten", "noise"]),
    default="flatten",
    show_default=True,
    help="What to do with the depth inside masks.",
)
@click.option(
    "--heads",
    is_flag=True,
    help="Also mask heads without a visible face (people seen from behind).",
)
@click.option(
    "--head-margin",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    metavar="METRES",
    help="With --heads: metres added around each head found without a face (for colour "
    "and depth that are not exactly registered).",
)
@click.option(
    "--depth-shift",
    default="0,0",
    show_default=True,
    help="Move depth DX,DY pixels onto the colour image, for colour and depth that are "
    "not registered. Keep 0,0 unless masks visibly miss heads: a constant shift is right "
    "at one distance only (on the PCL Kinect frame -16,0 removed false heads but left "
    "hair at the side of near heads bare, where 0,0 covered it). To check, anonymize one "
    "pair with --method solid and look at the heads; where hair or an edge stays bare, "
    "--head-margin 0.04 (metres) covers it better than a shift.",
)
@click.option(
    "--no-tracking",
    is_flag=True,
    help="Process every pair on its own (a folder of unrelated photos). Default: the "
    "pairs are one sequence in name order and faces are tracked across it.",
)
@tracking_options  # --detect-every 1, --max-age 15
@click.option(
    "--lookahead",
    type=click.IntRange(0),
    default=8,
    show_default=True,
    help="Also mask a tracked face in this many frames before it was first detected.",
)
@click.option("-d", "--detector", default="centerface", show_default=True)
@click.option("-t", "--threshold", type=click.FloatRange(0, 1), default=None)
@click.option(
    "-m",
    "--method",
    default="gaussian",
    show_default=True,
    help="Anonymization method (see 'veil methods').",
)
@click.option("-s", "--strength", type=click.FloatRange(0.05, 20), default=1.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed random methods and depth noise.")
@image_method_options
@png_compression_option("colour and depth PNGs")
@region_options
def rgbd_command(source: Path, output: Path, no_tracking: bool, **options: Any) -> None:
    """Anonymize colour + depth pairs with depth-refined head masks.

    \b
    Each face is grown into its whole head (hair, ears) using depth; depth inside the
    masks is flattened or noised (--depth-policy) because a face's relief identifies it
    too. The pairs of a folder are a sequence (in name order) run through the video
    tracker: a face the detector misses on some frames stays masked (--max-age), and is
    masked in the frames before it was first found (--lookahead); --detect-every N > 1
    is speed mode (full detection every N frames, tracking in between). Use
    --no-tracking for unrelated photos. A pair that fails gets no output; the run goes
    on and exits with status 1.
    """
    from veil.errors import VeilError
    from veil.io.rgbd import pair_inputs

    if no_tracking and options["detect_every"] > 1:
        _fail("--detect-every > 1 (speed mode) needs tracking; drop --no-tracking")
    if options["head_margin"] and not options["heads"]:
        click.echo("veil: warning: --head-margin applies with --heads only", err=True)
    try:
        pairs = pair_inputs(source, options["depth_source"])
        job = _Job.build(source, options)
        if job.intrinsics is None:
            click.echo(
                "veil: warning: no intrinsics (--intrinsics FILE, or intrinsics.json beside "
                "SOURCE): head masks are not held to a metric head size"
                + (
                    ", and heads without a face are looked for with a Kinect-like lens "
                    "(focal length 0.82 x image width, ~63 degrees wide): with another "
                    "lens they can be missed"
                    if options["heads"]
                    else ""
                ),
                err=True,
            )
        video = None if no_tracking else _video_config(options)
    except VeilError as exc:
        _fail(str(exc))
        return
    if video is not None and video.lookahead < video.detect_every - 1:
        click.echo(
            f"veil: warning: --lookahead {video.lookahead} < --detect-every "
            f"{video.detect_every} - 1: a face appearing between two detections may be "
            "bare in its first frames",
            err=True,
        )
    tally = job.run(pairs, output, video)
    tracked = f", {tally.tracked} of them from tracking only" if video is not None else ""
    click.echo(
        f"veil: {tally.done} pairs anonymized ({tally.heads} heads{tracked}), "
        f"{tally.failed} failed",
        err=True,
    )
    if tally.failed:
        sys.exit(1)


def _video_config(o: dict[str, Any]) -> VideoConfig:
    from veil.video import VideoConfig

    return VideoConfig(
        detect_every=o["detect_every"], max_age=o["max_age"], lookahead=o["lookahead"]
    )


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    heads: int = 0
    tracked: int = 0  # heads masked from a predicted or backfilled box

    def add(self, written: _Written) -> None:
        if written.error is not None:
            self.failed += 1
            click.echo(f"veil: failed: {written.error}", err=True)
            return
        self.done += 1
        self.heads += written.heads
        self.tracked += written.tracked


@dataclass(frozen=True)
class _Written:
    """What happened to one frame: written with ``heads`` masks, or ``error``."""

    error: str | None = None
    heads: int = 0
    tracked: int = 0


@dataclass(frozen=True)
class _Read:
    """One pair as read: colour and depth, or why it could not be read."""

    pair: RGBDPair
    loaded: LoadedImage | None = None
    depth: np.ndarray | None = None
    error: str | None = None


class _Ahead:
    """The detection stage: the full detector on each readable pair, in order, ahead of
    tracking (:meth:`RGBDAnonymizer.ahead`); numbers the frames as the tracker will."""

    def __init__(self, stream: RGBDAnonymizer) -> None:
        self.stream, self.pushed = stream, 0

    def __call__(self, item: _Read | None) -> tuple[_Read | None, int, Ahead | None]:
        if item is None or item.error is not None or item.loaded is None:
            return item, -1, None
        index, self.pushed = self.pushed, self.pushed + 1
        # the tracker counts the frames it was given (speed mode detects on 0)
        return item, index, self.stream.ahead(item.loaded.image, index)


class _Sequence:
    """The tracking stage: pushes frames in order into one :class:`RGBDAnonymizer`;
    ``None`` ends the stream. Returns tracked frames, or the error of an unread pair."""

    def __init__(self, stream: RGBDAnonymizer) -> None:
        self.stream = stream

    def __call__(self, step: tuple[_Read | None, int, Ahead | None]) -> list[Tracked | str]:
        from veil.errors import VeilError

        item, index, ahead = step
        if item is None:
            return list(self.stream.track_flush())
        if item.error is not None or item.loaded is None or item.depth is None:
            return [str(item.error)]
        try:
            meta = (item.pair, item.loaded)
            tracked = self.stream.track(
                item.loaded.image, item.depth, index, meta=meta, ahead=ahead
            )
        except VeilError as exc:
            return [str(exc)]
        return list(tracked)


@dataclass(frozen=True)
class _Job:
    """Everything one run needs, built once: pipeline, RGB-D config, I/O options."""

    pipeline: Pipeline
    config: RGBDConfig
    intrinsics: dict[str, float] | None
    depth_scale: float
    shift: tuple[int, int] = (0, 0)
    png_compression: int = 1

    @classmethod
    def build(cls, source: Path, o: dict[str, Any]) -> _Job:
        """From the click options ``o``; raises ``VeilError`` (bad config or files)."""
        from veil.config import AnonymizerConfig, DetectorConfig, RunConfig
        from veil.io.rgbd import read_intrinsics
        from veil.pipeline import Pipeline
        from veil.rgbd.register import parse_shift
        from veil.rgbd.sequence import RGBDConfig

        config = RunConfig(
            detector=DetectorConfig(name=o["detector"], threshold=o["threshold"]),
            anonymizer=AnonymizerConfig(
                method=o["method"],
                strength=o["strength"],
                seed=o["seed"],
                options=anonymizer_options_from(o),
            ),
            regions=region_config_from(o),
        )
        intrinsics: Path | None = o["intrinsics"]
        if intrinsics is None:
            beside = (source if source.is_dir() else source.parent) / "intrinsics.json"
            intrinsics = beside if beside.is_file() else None
        rgbd = RGBDConfig(
            heads=o["heads"],
            head_margin=o["head_margin"],
            depth_policy=o["depth_policy"],
            seed=o["seed"],
        )
        return cls(
            pipeline=Pipeline.from_config(config),
            config=rgbd,
            intrinsics=None if intrinsics is None else read_intrinsics(intrinsics),
            depth_scale=o["depth_scale"],
            shift=parse_shift(o["depth_shift"]),
            png_compression=o.get("png_compression", 1),
        )

    def run(
        self, pairs: list[RGBDPair], output: Path, video: VideoConfig | None, *, stages: bool = True
    ) -> _Tally:
        """Anonymize ``pairs`` in order (one tracked sequence unless ``video`` is None).

        Reading (colour and depth decode), full detection, tracking, finishing (depth
        masks, heads, anonymization, depth policy) and writing (colour and depth encode)
        overlap (:func:`veil.stages.run_stages`): two reader threads, one thread each for
        detection, tracking and finishing (frames in order), two writer threads, and at
        most ``_IN_FLIGHT`` pairs between reading and the tally (plus the tracker's
        look-ahead). ``stages=False`` does the same work in this thread, one pair after
        the other (same output bytes).
        """
        from veil.rgbd.sequence import RGBDAnonymizer
        from veil.stages import Stage, run_stages

        stream = RGBDAnonymizer(self.pipeline, self.config, video, intrinsics=self.intrinsics)

        def finish(tracked: list[Tracked | str]) -> list[RGBDResult | str]:
            return [t if isinstance(t, str) else stream.finish(t) for t in tracked]

        steps = (
            Stage("read", self.load, 2),
            Stage("detect", _Ahead(stream), 1),
            Stage("track", _Sequence(stream), 1),
            Stage("finish", finish, 1),
            Stage("write", lambda done: [self.write(r, output) for r in done], 2),
        )
        tally = _Tally()
        items: list[RGBDPair | None] = [*pairs, None]
        for written in run_stages(items, steps, in_flight=_IN_FLIGHT, serial=not stages):
            for w in written:
                tally.add(w)
        return tally

    def load(self, pair: RGBDPair | None) -> _Read | None:
        """Colour and depth (metres, shifted onto the colour) of one pair, or the error."""
        from veil.errors import InputError, VeilError
        from veil.io.images import read_image
        from veil.io.rgbd import read_depth
        from veil.rgbd.register import shift_depth

        if pair is None:
            return None
        try:
            loaded = read_image(pair.color)
            depth = read_depth(pair.depth, depth_scale=self.depth_scale)
            if depth.shape != loaded.image.shape[:2]:
                raise InputError(
                    f"{pair.depth}: depth is {depth.shape[1]}x{depth.shape[0]}, colour "
                    f"{pair.color} is {loaded.image.shape[1]}x{loaded.image.shape[0]}"
                )
        except VeilError as exc:
            return _Read(pair, error=str(exc))
        if self.shift != (0, 0):
            depth = shift_depth(depth, *self.shift)
        return _Read(pair, loaded, depth)

    def write(self, result: RGBDResult | str, output: Path) -> _Written:
        """Write both outputs of a finished frame, or report it failed (nothing written)."""
        from veil.errors import VeilError
        from veil.io.images import write_image
        from veil.io.rgbd import write_depth

        if isinstance(result, str):
            return _Written(error=result)
        pair, loaded = result.meta
        if result.error is not None or result.color is None or result.depth is None:
            return _Written(error=f"{pair.color}: {result.error}")
        suffix = ".npy" if pair.depth.suffix.lower() == ".npy" else ".png"
        try:
            write_image(
                output / "color" / pair.color.name,
                result.color,
                like=loaded,
                png_compression=self.png_compression,
            )
            write_depth(
                output / "depth" / f"{pair.depth.stem}{suffix}",
                result.depth,
                depth_scale=self.depth_scale,
                png_compression=self.png_compression,
            )
        except VeilError as exc:
            return _Written(error=str(exc))
        sources = result.faces.data.get("source", [])
        tracked = sum(s in ("predicted", "backfilled") for s in sources)
        return _Written(heads=len(result.faces), tracked=tracked)


_IN_FLIGHT = 8
