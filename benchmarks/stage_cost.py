"""Where the time goes: in-process costs of single stages, one thread, for the notes on
targets that are not met (docs/benchmarks.md, "Speed per CPU model"). Prints the CPU model.

- ``detector FOLDER``: CenterFace per image (ms) and detection recall by face height
  (IoU >= 0.3 with a ground-truth box) for the native pass alone, the default (native +
  small-face second look) and a stricter small-face proposal threshold.
- ``rgbd``: ``veil rgbd``'s stages timed one after the other on a ``veil synth rgbd``
  sequence: read (colour + depth PNG), key-frame detection, tracking, finishing (depth
  masks, heads, blur, depth policy), write (colour + depth PNG).
- ``png``: PNG encode time and size: Pillow at levels 1 and 6, and veil's writer
  (OpenCV, run-length strategy at level 1).
- ``compile``: seconds to build CenterFace in a fresh process with an empty OpenVINO model
  cache and with a warm one (the precision choice cached in both).

Examples::

    python benchmarks/stage_cost.py detector ../shared/data/faces-street
    python benchmarks/stage_cost.py rgbd --frames 40
    python benchmarks/stage_cost.py png ../shared/data/faces-street
    python benchmarks/stage_cost.py compile
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _machine

BIN_DIR = Path(sys.executable).parent


def detector(folder: Path, limit: int) -> None:
    from veil.boxes import box_iou
    from veil.detect.centerface import CenterFace
    from veil.io.images import read_image

    entries = json.loads((folder / "annotations.json").read_text())["images"][:limit]
    images = [read_image(folder / e["file"]).image for e in entries]
    variants = {
        "native pass only": {"upscale": 0},
        "default (native + small-face look)": {},
        "small-face proposals 0.08": {"proposal_threshold": 0.08},
    }
    print(f"# {len(images)} images of {folder}, one inference thread")
    print(f"{'variant':36} {'ms/img':>7} {'<10 px':>7} {'10-20 px':>8} {'20+ px':>7}")
    for name, options in variants.items():
        det = CenterFace(threads=1, **options)
        det.detect(images[0])
        start = time.perf_counter()
        found = [det.detect(im) for im in images]
        ms = 1000 * (time.perf_counter() - start) / len(images)
        hit, total = Counter(), Counter()
        for e, faces in zip(entries, found, strict=True):
            for x, y, w, h in e["faces"]:
                b = "<10" if h < 10 else ("10-20" if h < 20 else "20+")
                box = np.array([[x, y, x + w, y + h]], np.float32)
                total[b] += 1
                hit[b] += int(len(faces) > 0 and box_iou(faces.xyxy, box).max() >= 0.3)
        rec = [hit[b] / total[b] if total[b] else float("nan") for b in ("<10", "10-20", "20+")]
        print(f"{name:36} {ms:7.1f} {rec[0]:7.3f} {rec[1]:8.3f} {rec[2]:7.3f}", flush=True)


def rgbd(frames: int) -> None:
    from click.testing import CliRunner

    from veil.cli import main
    from veil.commands import rgbd as R
    from veil.io.rgbd import pair_inputs
    from veil.rgbd.sequence import RGBDAnonymizer
    from veil.video import VideoConfig

    work = Path(tempfile.mkdtemp(prefix="veil-stage-cost-"))
    src = work / "seq"
    args = ["synth", "rgbd", str(src), "--frames", str(frames), "--people", "3", "--seed", "1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    options = {
        "detector": "centerface", "threshold": None, "method": "gaussian", "strength": 1.0,
        "seed": 0, "intrinsics": None, "heads": True, "head_margin": 0.0,
        "depth_policy": "flatten", "depth_scale": 0.001, "depth_shift": "0,0",
        "png_compression": 1,
    }  # fmt: skip
    job = R._Job.build(src, options)
    stream = RGBDAnonymizer(job.pipeline, job.config, VideoConfig(detect_every=1))
    ahead, sequence = R._Ahead(stream), R._Sequence(stream)
    pairs = pair_inputs(src, None)
    cost: Counter[str] = Counter()

    def timed(name: str, fn, arg):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = fn(arg)
        cost[name] += time.perf_counter() - start
        return out

    for pair in [*pairs, None]:
        read = timed("read", job.load, pair)
        tracked = timed("track", sequence, timed("detect", ahead, read))
        done = timed(
            "finish", lambda t: [x if isinstance(x, str) else stream.finish(x) for x in t], tracked
        )
        timed("write", lambda d: [job.write(r, work / "out") for r in d], done)
    print(f"# veil rgbd --heads stages, {len(pairs)} frames 640x480, one after the other")
    for name in ("read", "detect", "track", "finish", "write"):
        print(f"{name:8} {1000 * cost[name] / len(pairs):6.1f} ms/frame")
    print(f"{'total':8} {1000 * sum(cost.values()) / len(pairs):6.1f} ms/frame")
    shutil.rmtree(work, ignore_errors=True)


def png(folder: Path | None) -> None:
    from PIL import Image

    arrays = {}
    work = Path(tempfile.mkdtemp(prefix="veil-png-"))
    from veil.rgbd.synth import make_scene

    scene = make_scene(1, people=3, size=(480, 640))[0]
    arrays["RGB-D colour 640x480"] = scene.color
    if folder is not None:
        photo = sorted((folder / "images").glob("*"))[3]
        arrays[f"photo {photo.name}"] = np.asarray(Image.open(photo).convert("RGB"))
    print(f"{'image':28} {'encoder':22} {'ms':>6} {'KiB':>6}")
    for label, image in arrays.items():
        pil = Image.fromarray(image)
        encoders = {
            "Pillow level 1": lambda pil=pil: _pil_bytes(pil, 1),
            "Pillow level 6": lambda pil=pil: _pil_bytes(pil, 6),
            "veil (OpenCV RLE, 1)": lambda image=image: _veil_bytes(image, work),
        }
        for name, fn in encoders.items():
            fn()
            start = time.perf_counter()
            for _ in range(5):
                size = fn()
            ms = 1000 * (time.perf_counter() - start) / 5
            print(f"{label:28} {name:22} {ms:6.1f} {size / 1024:6.0f}")
    shutil.rmtree(work, ignore_errors=True)


def _pil_bytes(pil, level: int) -> int:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    pil.save(buf, "PNG", compress_level=level)
    return len(buf.getvalue())


def _veil_bytes(image: np.ndarray, work: Path) -> int:
    from veil.io.images import write_image

    path = work / "x.png"
    write_image(path, image)
    return path.stat().st_size


def compile_cost(repeat: int) -> None:
    code = (
        "import time; t = time.perf_counter(); "
        "from veil.detect.centerface import CenterFace; CenterFace(threads=1); "
        "print(time.perf_counter() - t)"
    )
    cache = Path(tempfile.mkdtemp(prefix="veil-cache-"))
    real = Path(os.environ.get("VEIL_CACHE_DIR", Path.home() / ".cache" / "veil"))
    if (real / "precision.json").is_file():
        shutil.copy(real / "precision.json", cache / "precision.json")
    env = {**os.environ, "VEIL_CACHE_DIR": str(cache)}
    for label in ("empty model cache", "warm model cache"):
        times = []
        for _ in range(repeat):
            if label.startswith("empty"):
                shutil.rmtree(cache / "openvino", ignore_errors=True)
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            times.append(float(out.stdout.strip().splitlines()[-1]))
        print(f"{label:18} CenterFace built in " + " ".join(f"{t:.2f}" for t in times) + " s")
    shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["detector", "rgbd", "png", "compile"])
    ap.add_argument("folder", type=Path, nargs="?", help="detector/png: a ground-truth set")
    ap.add_argument("--limit", type=int, default=639)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"# {_machine.describe()}")
    if args.what == "detector":
        if args.folder is None:
            ap.error("detector needs FOLDER")
        detector(args.folder, args.limit)
    elif args.what == "rgbd":
        rgbd(args.frames)
    elif args.what == "png":
        png(args.folder)
    else:
        compile_cost(args.repeat)


if __name__ == "__main__":
    main()
