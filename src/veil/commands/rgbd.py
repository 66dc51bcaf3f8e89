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

if TYPE_CHECKING:
    from veil.io.rgbd import RGBDPair
    from veil.pipeline import Pipeline
    from veil.rgbd.depthmask import DepthMasker

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
    "--depth-shift",
    default="0,0",
    show_default=True,
    help="Move depth DX,DY pixels onto the colour image (for sensors whose colour and "
    "depth are not aligned; e.g. -16,0 for the PCL Kinect frame).",
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
def rgbd_command(
    source: Path,
    depth_source: Path | None,
    output: Path,
    intrinsics: Path | None,
    depth_scale: float,
    depth_policy: str,
    heads: bool,
    depth_shift: str,
    detector: str,
    threshold: float | None,
    method: str,
    strength: float,
    seed: int | None,
) -> None:
    """Anonymize colour + depth pairs with depth-refined head masks.

    Each face is grown into its whole head (hair, ears) using depth; depth inside the
    masks is flattened or noised (--depth-policy) because a face's relief identifies it
    too. A pair that fails gets no output; the run goes on and exits with status 1.
    """
    import dataclasses

    from veil.errors import VeilError
    from veil.io.rgbd import pair_inputs
    from veil.rgbd.register import parse_shift

    try:
        pairs = pair_inputs(source, depth_source)
        job = _Job.build(
            source,
            intrinsics,
            depth_scale,
            depth_policy,
            heads,
            detector,
            threshold,
            method,
            strength,
            seed,
        )
        job = dataclasses.replace(job, shift=parse_shift(depth_shift))
    except VeilError as exc:
        _fail(str(exc))
        return
    failed = faces = 0
    for pair in pairs:
        try:
            faces += job.run(pair, output)
        except VeilError as exc:
            failed += 1
            click.echo(f"veil: failed: {exc}", err=True)
    click.echo(
        f"veil: {len(pairs) - failed} pairs anonymized ({faces} heads), {failed} failed", err=True
    )
    if failed:
        sys.exit(1)


@dataclass(frozen=True)
class _Job:
    """Everything one run needs, built once: pipeline, depth masker, options."""

    pipeline: Pipeline
    masker: DepthMasker
    intrinsics: dict[str, float] | None
    depth_scale: float
    policy: str
    heads: bool
    seed: int | None
    shift: tuple[int, int] = (0, 0)

    @classmethod
    def build(
        cls,
        source: Path,
        intrinsics: Path | None,
        depth_scale: float,
        policy: str,
        heads: bool,
        detector: str,
        threshold: float | None,
        method: str,
        strength: float,
        seed: int | None,
    ) -> _Job:
        from veil.config import AnonymizerConfig, DetectorConfig, RunConfig
        from veil.io.rgbd import read_intrinsics
        from veil.pipeline import Pipeline
        from veil.rgbd.depthmask import DepthMasker

        config = RunConfig(
            detector=DetectorConfig(name=detector, threshold=threshold),
            anonymizer=AnonymizerConfig(method=method, strength=strength, seed=seed),
        )
        if intrinsics is None:
            beside = (source if source.is_dir() else source.parent) / "intrinsics.json"
            intrinsics = beside if beside.is_file() else None
        return cls(
            pipeline=Pipeline.from_config(config),
            masker=DepthMasker(),
            intrinsics=None if intrinsics is None else read_intrinsics(intrinsics),
            depth_scale=depth_scale,
            policy=policy,
            heads=heads,
            seed=seed,
        )

    def run(self, pair: RGBDPair, output: Path) -> int:
        """Process one pair and write both outputs; return the number of heads masked."""
        import numpy as np

        from veil.errors import InputError
        from veil.io.images import read_image, write_image
        from veil.io.rgbd import apply_depth_policy, read_depth, write_depth
        from veil.rgbd.heads import find_heads_without_faces
        from veil.rgbd.register import shift_depth
        from veil.rgbd.synth import default_intrinsics
        from veil.types import Faces

        loaded = read_image(pair.color)
        depth = read_depth(pair.depth, depth_scale=self.depth_scale)
        if depth.shape != loaded.image.shape[:2]:
            raise InputError(
                f"{pair.depth}: depth is {depth.shape[1]}x{depth.shape[0]}, colour "
                f"{pair.color} is {loaded.image.shape[1]}x{loaded.image.shape[0]}"
            )
        if self.shift != (0, 0):
            depth = shift_depth(depth, *self.shift)
        k = self.intrinsics or default_intrinsics(depth.shape)
        detected = self.pipeline.detect(loaded.image)
        faces = self.masker.refine(detected, depth, self.intrinsics)
        if self.heads:
            faces = Faces.merge([faces, find_heads_without_faces(depth, k, faces)])
        result = self.pipeline.anonymize(loaded.image, faces)
        masks = faces.masks if faces.masks is not None else np.zeros((0, *depth.shape), bool)
        rng = np.random.default_rng(self.seed)
        new_depth = apply_depth_policy(depth, masks, self.policy, rng=rng)
        suffix = ".npy" if pair.depth.suffix.lower() == ".npy" else ".png"
        write_image(output / "color" / pair.color.name, result.image, like=loaded)
        write_depth(
            output / "depth" / f"{pair.depth.stem}{suffix}", new_depth, depth_scale=self.depth_scale
        )
        return len(faces)
