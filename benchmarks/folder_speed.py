"""Whole-command speed on a folder: ``veil anonymize FOLDER -o OUT`` against ``deface`` on
the same images in the same run, start-up and model loading included.

Prints the CPU model, images/s of each tool and the ratio. The folder is copied to a
temporary work folder first (deface writes beside its inputs; the source is only read).
``--make-1080p N`` first builds N 1920x1080 JPEG photos from the folder (2x2 tiles of its
photos, each scaled to cover 960x540), so the same faces come at larger sizes.

``--rgbd`` times ``veil rgbd --heads`` on a sequence made by ``veil synth rgbd`` instead:
frames/s including reading and writing every PNG, with start-up removed by also timing a
1-frame run of the same command (``(N - 1) / (t_N - t_1)``).

``--startup`` times start-up instead: ``python -c "import veil.cli"``, ``veil anonymize``
on one 512x512 PNG (``veil sample``), ``veil video`` on a one-frame 720p clip (command to
first processed frame, written) and on a 1-s 720p clip (``--clip``, default: 30 frames
made from the sample photo moving across a 1280x720 canvas).

Examples::

    python benchmarks/folder_speed.py ../shared/data/faces-street
    python benchmarks/folder_speed.py ../shared/data/faces-street --make-1080p 100
    python benchmarks/folder_speed.py --rgbd --frames 140
    python benchmarks/folder_speed.py --startup --repeat 3
    python benchmarks/folder_speed.py ../shared/data/coco-person-mini/val2017 \
        --veil-args --target person
    python benchmarks/folder_speed.py ../shared/data/identity-lfw158 --limit 90 \
        --veil-args --method synthetic
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _machine

BIN_DIR = Path(sys.executable).parent
SUFFIXES = {".jpg", ".jpeg", ".png"}


def images_in(folder: Path) -> list[Path]:
    """Image files of ``folder``, or of ``folder/images`` (the shared data sets' layout),
    or of its sub-folders when it has none itself (``<person>/<image>`` identity sets; the
    file names must then be unique, as they are copied into one folder)."""
    if (folder / "images").is_dir():
        folder = folder / "images"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
        if len({p.name for p in files}) < len(files):
            sys.exit(f"{folder}: image names repeat across sub-folders")
    if not files:
        sys.exit(f"no images in {folder}")
    return files


def make_1080p(sources: list[Path], out: Path, count: int) -> list[Path]:
    """``count`` 1920x1080 JPEGs, each a 2x2 tile of four source photos (cover + crop)."""
    import cv2
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        tiles = []
        for k in range(4):
            im = cv2.imread(str(sources[(4 * i + k) % len(sources)]), cv2.IMREAD_COLOR)
            s = max(960 / im.shape[1], 540 / im.shape[0])
            im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
            y, x = (im.shape[0] - 540) // 2, (im.shape[1] - 960) // 2
            tiles.append(im[y : y + 540, x : x + 960])
        grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
        path = out / f"tile{i:04d}.jpg"
        cv2.imwrite(str(path), grid, [cv2.IMWRITE_JPEG_QUALITY, 92])
        made.append(path)
    return made


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        sys.exit(f"{Path(cmd[0]).name} exited with {proc.returncode}:\n{tail}")
    return seconds


def folder_run(args: argparse.Namespace, work: Path) -> None:
    files = images_in(args.folder)[: args.limit or None]
    src = work / "in"
    if args.make_1080p:
        files = make_1080p(files, src, args.make_1080p)
    else:
        src.mkdir()
        for f in files:
            shutil.copy2(f, src / f.name)
        files = sorted(src.iterdir())
    n = len(files)
    print(
        f"CPU: {_machine.describe()}; {n} images from {args.folder}"
        + (" (1080p tiles)" * bool(args.make_1080p))
    )
    rows = []
    for rep in range(args.repeat):
        out = work / f"veil{rep}"
        veil = timed([str(args.veil), "anonymize", str(src), "-o", str(out), "-q", *args.veil_args])
        deface = None
        if not args.skip_deface:
            dsrc = work / f"deface{rep}"
            shutil.copytree(src, dsrc)
            deface = timed([str(args.deface), *(str(dsrc / f.name) for f in files)])
        rows.append((veil, deface))
    head = ("run", "veil s", "veil img/s", "deface s", "deface img/s", "ratio")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (4, 8, 11, 9, 13, 6), strict=True)))
    for rep, (veil, deface) in enumerate(rows):
        d = f"{deface:9.2f} {n / deface:13.2f} {deface / veil:5.2f}x" if deface else ""
        print(f"{rep + 1:>4} {veil:8.2f} {n / veil:11.2f} {d}")


def rgbd_run(args: argparse.Namespace, work: Path) -> None:
    seq = work / "seq"
    timed([str(args.veil), "synth", "rgbd", str(seq), "--frames", str(args.frames)])
    one = work / "one"
    for sub in ("color", "depth"):
        (one / sub).mkdir(parents=True)
        first = sorted((seq / sub).iterdir())[0]
        shutil.copy2(first, one / sub / first.name)
    shutil.copy2(seq / "intrinsics.json", one / "intrinsics.json")
    print(f"CPU: {_machine.describe()}; veil rgbd --heads, {args.frames} synthetic 640x480 frames")
    print(f"{'run':>4} {'1 frame s':>10} {'all s':>8} {'frames/s (start-up removed)':>28}")
    for rep in range(args.repeat):
        cmd = [str(args.veil), "rgbd", "--heads", *args.veil_args, "-o"]
        t1 = timed([cmd[0], *cmd[1:], str(work / f"o1-{rep}"), str(one)])
        tn = timed([cmd[0], *cmd[1:], str(work / f"on-{rep}"), str(seq)])
        fps = (args.frames - 1) / max(tn - t1, 1e-9)
        print(f"{rep + 1:>4} {t1:10.2f} {tn:8.2f} {fps:28.1f}")


def make_clip(photo: Path, out: Path, frames: int = 30) -> None:
    """A 1-s 1280x720 H.264 clip: ``photo`` moving across a grey canvas."""
    import av
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(photo).convert("RGB").resize((360, 360)))
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=frames)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for t in range(frames):
            canvas = np.full((720, 1280, 3), 96, np.uint8)
            x = 100 + 20 * t
            canvas[180:540, x : x + 360] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def startup_run(args: argparse.Namespace, work: Path) -> None:
    photo, clip = work / "sample.png", args.clip or work / "clip.mp4"
    timed([str(args.veil), "sample", str(photo)])
    one = work / "one-frame.mp4"  # command to first processed frame: start-up + 1 frame
    make_clip(photo, one, frames=1)
    if args.clip is None:
        make_clip(photo, clip)
    commands = {
        "import veil.cli": [sys.executable, "-c", "import veil.cli"],
        "veil anonymize 1 PNG": [str(args.veil), "anonymize", str(photo), "-q", "-o"],
        "veil video 1-frame 720p clip": [str(args.veil), "video", str(one), "-q", "-o"],
        f"veil video {clip.name}": [str(args.veil), "video", str(clip), "-q", "-o"],
    }
    print(f"CPU: {_machine.describe()}; start-up, wall seconds of the whole command")
    for i, (name, cmd) in enumerate(commands.items()):
        times = []
        for rep in range(args.repeat):  # a new output each time (an existing one is skipped)
            out = [str(work / f"out{i}-{rep}{Path(cmd[2]).suffix}")] if cmd[-1] == "-o" else []
            times.append(timed([*cmd, *out]))
        print(f"{name:>28}: " + " ".join(f"{t:.2f}" for t in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", help="folder of images")
    parser.add_argument("--make-1080p", type=int, default=0, metavar="N")
    parser.add_argument("--limit", type=int, default=0, help="first N images only")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-deface", action="store_true")
    parser.add_argument("--rgbd", action="store_true", help="time veil rgbd --heads instead")
    parser.add_argument("--startup", action="store_true", help="time start-up instead")
    parser.add_argument("--clip", type=Path, default=None, help="--startup: a 1-s clip")
    parser.add_argument("--frames", type=int, default=140, help="--rgbd: sequence length")
    parser.add_argument("--veil", type=Path, default=BIN_DIR / "veil")
    parser.add_argument("--deface", type=Path, default=BIN_DIR / "deface")
    parser.add_argument(
        "--veil-args", nargs=argparse.REMAINDER, default=[], help="passed to veil (last option)"
    )
    args = parser.parse_args()
    if not (args.rgbd or args.startup) and args.folder is None:
        parser.error("a folder is needed (or --rgbd, --startup)")
    run = startup_run if args.startup else rgbd_run if args.rgbd else folder_run
    with tempfile.TemporaryDirectory(prefix="veil-folder-speed-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
