"""Whole-command video speed: ``veil video`` (defaults) against deface 1.5, same clips, same run.

Speed is stated as a ratio against deface measured in the same run on the same machine
(``x deface`` and ``x deface-cv`` = ``deface --backend opencv``), and every table starts
with the CPU model: a frames/s figure from one machine is not a property of veil.

Each tool runs as one command on a clip (model loading, decoding, audio copy, encoding
included); frames/s = clip frames / wall seconds; peak RSS of the child process comes from
``os.wait4``. deface's defaults drop the audio (imageio writes video only), noted in the
table. Clips come from ``_clips.make_clip`` (a real clip scaled and looped, LFW faces pasted
in, a tone as audio). Memory rows: a 4K clip and a long clip (synthetic background, cheap
to make). Example::

    python benchmarks/video_speed.py --seconds 10 --repeat 3
    python benchmarks/video_speed.py --skip-deface --transcode --budget --repeat 3
    python benchmarks/video_speed.py --veil-args "--detect-every 3" --skip-deface
    python benchmarks/video_speed.py --seconds 6 --real ../shared/data/videos/ntu*.avi

``--real`` clips are real footage (the file scaled to each size and played back and forth
to the wanted length, a tone as audio, no faces pasted in).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).parent))
import _clips
import _machine

BIN_DIR = Path(sys.executable).parent
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}


def run(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB, CPU seconds: user + system).
    Raises on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def frames_and_audio(path: Path) -> tuple[int, bool]:
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.demux(video=0) if _.size)
        return n, bool(c.streams.audio)


def commands(tool: str, src: Path, dst: Path, veil_args: list[str]) -> list[str]:
    if tool == "deface":
        return [str(BIN_DIR / "deface"), str(src), "-o", str(dst)]
    if tool == "deface-cv":
        return [str(BIN_DIR / "deface"), str(src), "-o", str(dst), "--backend", "opencv"]
    if tool == "transcode":  # decode + encode only: the floor (see _transcode.py)
        return [sys.executable, str(Path(__file__).parent / "_transcode.py"), str(src), str(dst)]
    return [str(BIN_DIR / "veil"), "video", str(src), "-o", str(dst), "--overwrite", "-q"] + (
        veil_args if tool == "veil+args" else []
    )


def measure(
    tool: str, clip: Path, work: Path, veil_args: list[str], repeat: int = 1
) -> dict[str, object]:
    """One row: the median wall time of ``repeat`` runs (deface: one run) and the CPU time
    of that run, the largest RSS."""
    dst = work / f"{clip.stem}.{tool.replace('+', '_')}.mp4"
    cmd = commands(tool, clip, dst, veil_args)
    slow = tool.startswith("deface")
    runs = [run(cmd) for _ in range(1 if slow else repeat)]  # deface is slow
    seconds, rss = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
    cpu = next(r[2] for r in runs if r[0] == seconds) if len(runs) % 2 else None
    frames, audio = frames_and_audio(dst)
    src_frames, _ = frames_and_audio(clip)
    return {
        "clip": clip.stem,
        "tool": tool,
        "frames": frames,
        "source_frames": src_frames,
        "seconds": round(seconds, 2),
        "runs": [round(r[0], 2) for r in runs],
        "fps": round(src_frames / seconds, 1),
        "cpu_seconds": round(cpu, 2) if cpu is not None else None,
        "peak_rss_mib": round(rss),
        "audio_kept": audio,
        "command": shlex.join(cmd),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 720p/1080p clips")
    ap.add_argument(
        "--sizes", default="720p,1080p", help='comma list of 720p,1080p,4K ("" with --memory)'
    )
    ap.add_argument("--veil-args", default="", help='extra row, e.g. "--detect-every 3"')
    ap.add_argument("--skip-deface", action="store_true", help="no deface rows at all")
    ap.add_argument(
        "--deface",
        default="deface,deface-cv",
        help="comma list of deface rows: deface (its default ONNX backend) and deface-cv "
        "(--backend opencv)",
    )
    ap.add_argument(
        "--real",
        type=Path,
        nargs="*",
        default=[],
        help="real clips: each is scaled to every size of --sizes (no faces pasted in)",
    )
    ap.add_argument("--no-synthetic", action="store_true", help="only the --real clips at --sizes")
    ap.add_argument(
        "--budget",
        action="store_true",
        help="with --transcode: time one full-resolution CenterFace key-frame pass (one "
        "thread) on frames of each clip and print the fps that decode + encode + veil's "
        "default full passes alone would allow on this machine's cores",
    )
    ap.add_argument(
        "--transcode",
        action="store_true",
        help="add a row for decode + encode alone (veil's reader, writer and default "
        "x264 settings, no face work): the most any tool re-encoding every frame can reach",
    )
    ap.add_argument("--memory", action="store_true", help="also the 4K and long-clip RSS rows")
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--fourk-seconds", type=float, default=3.0)
    ap.add_argument("--background", type=Path, default=_clips.DEFAULT_BACKGROUND)
    ap.add_argument("--faces", type=Path, default=_clips.DEFAULT_FACES)
    ap.add_argument("--work", type=Path, default=None, help="keep clips here")
    ap.add_argument("--repeat", type=int, default=1, help="runs per veil row (median time)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tools = ["veil"] + (["veil+args"] if args.veil_args else [])
    if not args.skip_deface:
        tools += [t for t in args.deface.split(",") if t]
    if args.transcode:
        tools.append("transcode")
    work = args.work or Path(tempfile.mkdtemp(prefix="veil-video-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    veil_args = shlex.split(args.veil_args)
    rows = []
    sizes = [s for s in args.sizes.split(",") if s]
    jobs: list[tuple[str, float, bool, list[str], Path | None]] = []
    if not args.no_synthetic:
        jobs += [(s, args.seconds, False, tools, None) for s in sizes]
    jobs += [(s, args.seconds, False, tools, real) for real in args.real for s in sizes]
    if args.memory:
        jobs += [("4K", args.fourk_seconds, False, ["veil"], None)]
        jobs += [("720p", args.long_minutes * 60, True, ["veil"], None)]
    print(f"# {_machine.describe()}", file=sys.stderr, flush=True)
    for name, seconds, synthetic, job_tools, real in jobs:
        tag = f"_{real.stem}" if real else ("_synthetic" if synthetic else "")
        clip = work / f"{name}_{seconds:g}s{tag}.mp4"
        if not clip.exists():
            _clips.make_clip(
                clip,
                size=SIZES[name],
                seconds=seconds,
                background=real or args.background,
                face_dir=args.faces,
                faces=0 if real else 4,
                synthetic=synthetic,
            )
        for tool in job_tools:
            rows.append(measure(tool, clip, work, veil_args, args.repeat))
            print(_row(rows[-1]), file=sys.stderr, flush=True)
    budgets = _budgets(rows, work) if args.budget else []
    _ratios(rows)
    if args.json:
        machine = {"cpu": _machine.cpu_model(), "describe": _machine.describe()}
        print(json.dumps({"machine": machine, "rows": rows, "budget": budgets}, indent=1))
    else:
        _table(rows)
        for b in budgets:
            print(
                f"# budget {b['clip']}: decode+encode {b['transcode_cpu_s']} CPU s + "
                f"{b['full_passes']} full passes x {b['pass_ms']} ms = {b['cpu_s']} CPU s "
                f"-> at most {b['max_fps']} fps on {b['cores']} cores"
            )
    return 0


def _budgets(rows: list[dict[str, object]], work: Path) -> list[dict[str, object]]:
    """Lower bound on the CPU time of ``veil video`` (defaults) per clip: the transcode
    row's CPU seconds plus one single-threaded CenterFace key-frame pass (median of 9
    frames) times the number of frames speed mode runs it on (every ``detect_every``-th;
    scene cuts add more). Window searches, tracking and anonymization come on top."""
    from veil.detect.centerface import CenterFace
    from veil.io.video import VideoReader
    from veil.video import VideoConfig

    detector, every = CenterFace(threads=1), VideoConfig().detect_every
    out = []
    for r in rows:
        if r["tool"] != "transcode" or r["cpu_seconds"] is None:
            continue
        with VideoReader(work / f"{r['clip']}.mp4") as reader:
            frames = [f.image for i, f in zip(range(90), reader, strict=False) if i % 10 == 0]
        detector.detect_keyframe(frames[0])  # plan the input shape once
        times = []
        for image in frames:
            start = time.perf_counter()
            detector.detect_keyframe(image)
            times.append(time.perf_counter() - start)
        n = int(r["source_frames"])  # type: ignore[call-overload]
        passes = -(-n // every)
        cpu = float(r["cpu_seconds"]) + passes * statistics.median(times)  # type: ignore[arg-type]
        cores = os.cpu_count() or 1
        out.append(
            {
                "clip": r["clip"],
                "transcode_cpu_s": r["cpu_seconds"],
                "full_passes": passes,
                "pass_ms": round(statistics.median(times) * 1000, 1),
                "cpu_s": round(cpu, 2),
                "cores": cores,
                "max_fps": round(n / (cpu / cores), 1),
            }
        )
    return out


def _ratios(rows: list[dict[str, object]]) -> None:
    """Each row's speed as a multiple of each deface row's on the same clip (same run)."""
    for r in rows:
        for ref in ("deface", "deface-cv"):
            base = next((b for b in rows if b["clip"] == r["clip"] and b["tool"] == ref), None)
            if base is not None:
                r[f"x_{ref}"] = round(float(base["seconds"]) / float(r["seconds"]), 2)  # type: ignore[arg-type]


def _row(r: dict[str, object]) -> str:
    audio = "yes" if r["audio_kept"] else "NO"
    return (
        f"{r['clip']:<34} {r['tool']:<10} {r['frames']!s:>6} {r['seconds']!s:>8} "
        f"{r['fps']!s:>7} {r.get('x_deface', '-')!s:>8} {r.get('x_deface-cv', '-')!s:>10} "
        f"{r['cpu_seconds']!s:>7} {r['peak_rss_mib']!s:>8} {audio:>6}"
    )


def _table(rows: list[dict[str, object]]) -> None:
    print(f"# {_machine.describe()}")
    print(
        f"{'clip':<34} {'tool':<10} {'frames':>6} {'seconds':>8} {'fps':>7} {'x deface':>8} "
        f"{'x deface-cv':>10} {'CPU s':>7} {'RSS MiB':>8} {'audio':>6}"
    )
    for r in rows:
        print(_row(r))
    for r in rows:
        print(f"# {r['tool']}: {r['command']}  (runs: {r['runs']} s)")


if __name__ == "__main__":
    sys.exit(main())
