"""``veil batch``: anonymize a dataset (folder, glob or manifest) locally or on a Ray
cluster; resumable, with a per-run audit under ``DEST/.veil-runs``.

Exit status: 0 every job done or verified skipped, 1 some jobs failed (listed), 2 invalid
options or no inputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from veil.commands.options import pipeline_options, run_config
from veil.config import RunConfig
from veil.errors import ConfigError, VeilError

if TYPE_CHECKING:
    from veil.distributed import BatchSummary, Record

__all__ = ["batch", "load_settings"]

EXIT_SOME_FAILED, EXIT_USAGE = 1, 2


def load_settings(path: Path) -> RunConfig:
    """A settings file: the JSON of :meth:`RunConfig.to_dict` (any subset of sections)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: settings must be a JSON object, got {type(data).__name__}")
    return RunConfig.from_dict(data)


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"veil: error: {message}", err=True)
    sys.exit(code)


@click.command()
@click.argument("source")
@click.option(
    "-o",
    "--output",
    "dest",
    required=True,
    type=click.Path(path_type=Path),
    help="Destination folder; input paths are mirrored below it.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: all cores here; ray: a Ray cluster.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster: 'auto' (started with 'ray start') or ray://host:10001. "
    "Default: a Ray instance on this machine.",
)
@click.option(
    "--settings",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="JSON settings (RunConfig.to_dict()); replaces the pipeline options.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=16,
    show_default=True,
    help="ray: images per actor call.",
)
@click.option(
    "--actors",
    type=click.IntRange(0, 100_000),
    default=0,
    help="ray: image actors (0 = cluster CPUs / --cpus-per-actor).",
)
@click.option(
    "--cpus-per-actor",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="ray: CPUs each actor or video task uses.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=2,
    show_default=True,
    help="Retries of a failing file (and of work lost with a dead worker).",
)
@click.option(
    "--column",
    default="path",
    show_default=True,
    help="Path column of a CSV/Parquet manifest SOURCE.",
)
@pipeline_options
@click.option(
    "-j",
    "--workers",
    type=click.IntRange(0, 256),
    default=0,
    help="local: worker threads (0 = one per core).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def batch(
    source: str,
    dest: Path,
    engine: str,
    address: str | None,
    settings: Path | None,
    batch_size: int,
    actors: int,
    cpus_per_actor: int,
    retries: int,
    column: str,
    workers: int,
    quiet: bool,
    **options: Any,
) -> None:
    """Anonymize a dataset: SOURCE is a folder, a glob ('data/**/*.jpg') or a manifest
    (.txt one path a line, .csv/.parquet with a path column); outputs go to DEST.

    \b
    Re-runs skip outputs verified by DEST/.veil-runs/manifest.jsonl (input sha256 ->
    output sha256, same settings); a failing file is retried, then recorded with the
    reason. Every run writes DEST/.veil-runs/RUN-ID.json. Examples:
      veil batch photos/ -o clean/
      veil batch 'shots/**/*.jpg' -o clean/ --engine ray --address auto
      veil batch list.parquet -o /mnt/shared/clean --engine ray --settings run.json
    """
    from veil.distributed import collect_jobs, make_engine, new_run_id, run_batch

    try:
        config = load_settings(settings) if settings else run_config(options, workers=workers)
        jobs = collect_jobs(source, dest, column=column)
        run_id = new_run_id()
        ray_options = {
            "address": address,
            "actors": actors,
            "cpus_per_actor": cpus_per_actor,
            "batch_size": batch_size,
        }
        kwargs = ray_options if engine == "ray" else {}
        runner = make_engine(engine, config, retries=retries, run_id=run_id, **kwargs)
        summary = _run(jobs, dest, config, runner, run_id, quiet, run_batch)
    except VeilError as exc:
        _fail(str(exc))
        return
    _report(summary)


def _run(
    jobs: Any, dest: Path, config: RunConfig, runner: Any, run_id: str, quiet: bool, run_batch: Any
) -> BatchSummary:
    from tqdm import tqdm

    counts = {"done": 0, "skipped": 0, "failed": 0}
    with tqdm(total=len(jobs), unit="file", disable=quiet, file=sys.stderr) as bar:

        def progress(record: Record) -> None:
            counts[record.status] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update(1)

        result: BatchSummary = run_batch(
            jobs, dest, config, runner, run_id=run_id, progress=progress
        )
        return result


def _report(summary: BatchSummary) -> None:
    rate = summary.throughput()
    click.echo(
        f"veil: run {summary.run_id}: {summary.count('done')} done, "
        f"{summary.count('skipped')} skipped, {summary.count('failed')} failed "
        f"in {summary.seconds:.1f} s ({rate['images_per_s']:.2f} images/s, "
        f"{rate['video_fps']:.1f} video frames/s); audit: {summary.audit}",
        err=True,
    )
    for record in summary.failed:
        click.echo(f"  failed: {record.source}: {record.reason}", err=True)
    if summary.failed:
        sys.exit(EXIT_SOME_FAILED)
