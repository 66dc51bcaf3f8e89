"""``veil batch`` throughput: engine local against engine ray on the same files, one run.

Both engines run the same settings (gaussian, seeded) on the first ``--limit`` images of
SOURCE (plus ``--videos`` clips, if given) into fresh folders, and their outputs are
compared byte for byte. The ray engine starts a local Ray instance (``num_cpus`` = cores,
small object store); its start-up is timed apart from the run. A tiny batch (``--tiny``
images) measures what Ray costs when there is little work. Example::

    python benchmarks/batch_throughput.py ../shared/data/faces-street/images --limit 200 \\
        --videos ../shared/data/videos --video-limit 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from veil.config import AnonymizerConfig, RunConfig
from veil.distributed import RUNS_DIR, BatchSummary, make_engine, run_batch
from veil.distributed.sources import collect_jobs
from veil.runner import Job, is_video

CONFIG = RunConfig(anonymizer=AnonymizerConfig(method="gaussian", seed=1))


def jobs_for(source: Path, dest: Path, limit: int, videos: Path | None, vlimit: int) -> list[Job]:
    jobs = collect_jobs(source, dest / "images")[:limit]
    if videos is not None:
        jobs += collect_jobs(videos, dest / "videos")[:vlimit]
    return jobs


def run_engine(name: str, jobs: list[Job], dest: Path, **options: object) -> BatchSummary:
    engine = make_engine(name, CONFIG, retries=1, run_id=name, **options)
    return run_batch(jobs, dest, CONFIG, engine, run_id=name)


def rates(summary: BatchSummary, wall: float) -> tuple[float, float]:
    done = [r for r in summary.records if r.status == "done"]
    images = sum(r.kind == "image" for r in done)
    frames = sum(r.frames for r in done if r.kind == "video")
    image_s = sum(r.seconds for r in done if r.kind == "image") or 1e-9
    video_s = sum(r.seconds for r in done if r.kind == "video") or 1e-9
    # images and videos run in separate phases: split the wall time by their busy share
    share = image_s / (image_s + video_s) if frames else 1.0
    return images / (wall * share), frames / (wall * (1 - share)) if frames else 0.0


def outputs(dest: Path) -> dict[str, bytes]:
    files = (p for p in dest.rglob("*") if p.is_file() and RUNS_DIR not in p.parts)
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in files}


def compare(tmp: Path, jobs_local: list[Job], args: argparse.Namespace) -> list[str]:
    import ray

    rows = []
    start = time.perf_counter()
    local = run_engine("local", jobs_local, tmp / "local")
    wall_local = time.perf_counter() - start
    t0 = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        object_store_memory=300 * 1024 * 1024,
        log_to_driver=False,
    )
    init = time.perf_counter() - t0
    jobs_ray = jobs_for(args.source, tmp / "ray", args.limit, args.videos, args.video_limit)
    start = time.perf_counter()
    remote = run_engine("ray", jobs_ray, tmp / "ray", batch_size=args.batch_size)
    wall_ray = time.perf_counter() - start
    for name, summary, wall, extra in (
        ("local", local, wall_local, 0.0),
        ("ray", remote, wall_ray, init),
    ):
        ips, fps = rates(summary, wall)
        failed = summary.count("failed")
        rows.append(
            f"| {name} | {summary.count('done')} | {failed} | {extra:.1f} | {wall:.1f} "
            f"| {ips:.2f} | {fps:.1f} |"
        )
    same = outputs(tmp / "local") == outputs(tmp / "ray")
    rows.append(f"\noutputs byte-identical between engines: {same}")
    return rows


def tiny(tmp: Path, args: argparse.Namespace) -> list[str]:
    """Wall time incl. start-up for ``--tiny`` images; ray starts its own instance."""
    import ray

    ray.shutdown()
    rows = []
    for name in ("local", "ray"):
        dest = tmp / f"tiny-{name}"
        jobs = collect_jobs(args.source, dest)[: args.tiny]
        start = time.perf_counter()
        summary = run_engine(name, jobs, dest, **({"batch_size": 5} if name == "ray" else {}))
        rows.append(f"| {name} | {summary.count('done')} | {time.perf_counter() - start:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of images")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--videos", type=Path, default=None, help="folder of video clips")
    parser.add_argument("--video-limit", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tiny", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("command: python benchmarks/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        jobs = jobs_for(args.source, tmp / "local", args.limit, args.videos, args.video_limit)
        n_img = sum(not is_video(j.source) for j in jobs)
        print(f"\n{n_img} images, {len(jobs) - n_img} videos, method gaussian\n")
        print("| engine | done | failed | start-up s | run s | images/s | video frames/s |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(compare(tmp, jobs, args)))
        print(f"\ntiny batch ({args.tiny} images), wall time incl. start-up and model load\n")
        print("| engine | done | wall s |\n|---|---|---|")
        print("\n".join(tiny(tmp, args)))


if __name__ == "__main__":
    main()
