"""``veil eval consent``: the keep-list / erasure-list check on an identity set."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

__all__ = ["consent"]


@click.command("consent")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--people", type=click.IntRange(1), default=None, help="First N people (sorted).")
@click.option(
    "--keep-thresholds",
    default=None,
    help="Comma-separated --keep-threshold values, one row each (default: 0.45).",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def consent(
    root: Path, people: int | None, keep_thresholds: str | None, json_out: Path | None, quiet: bool
) -> None:
    """How a consent keep-list (--keep) and an erasure list (--only) decide on ROOT, an
    identity set (<person>/<images>).

    \b
    For each person, their first photo with exactly one reliable face is the reference;
    every other photo of everyone is an input. Printed, per --keep-threshold:
      others kept   (reference, photo of someone else) pairs where any face was kept: 0
      own kept      the person's other photos whose face (nearest the centre) was kept
      --only        the person's face hidden; other people's faces hidden too (the cost
                    of fail safe)
    Needs dlib ('pip install veil[dlib]').
    """
    from tqdm import tqdm

    from veil.config import ConsentConfig
    from veil.errors import VeilError
    from veil.evaluate.consent import COLUMNS, decide, measure, share, summary

    base = ConsentConfig()
    try:
        values = [float(v) for v in (keep_thresholds or str(base.keep_threshold)).split(",")]
        configs = [dataclasses.replace(base, keep_threshold=v) for v in values]
    except (ValueError, VeilError) as exc:
        raise click.BadParameter(str(exc), param_hint="--keep-thresholds") from exc
    bar = tqdm(unit="photo", disable=quiet, file=sys.stderr, leave=False)
    try:
        found = measure(root, people or 10**9, base, progress=lambda _: bar.update())
    except VeilError as exc:
        click.echo(f"veil: error: {exc}", err=True)
        sys.exit(2)
    finally:
        bar.close()
    click.echo(f"{root}: {len(found.refs)} people with a reference, {len(found.photos)} inputs")
    click.echo(f"reference photos refused before one was accepted: {dict(found.refused) or 0}")
    rows = []
    head = ["keep threshold", *COLUMNS.values()]
    click.echo("| " + " | ".join(head) + " |")
    click.echo("|" + "---|" * len(head))
    for config in configs:
        counts = summary(decide(found.refs, found.photos, config))
        cells = [share(*counts[k]) for k in COLUMNS]
        click.echo(f"| {config.keep_threshold:.2f} | " + " | ".join(cells) + " |")
        rows.append(
            {"keep_threshold": config.keep_threshold} | {k: list(v) for k, v in counts.items()}
        )
    if json_out is not None:
        data = {
            "root": str(root),
            "people": sorted(found.refs),
            "inputs": len(found.photos),
            "refused": dict(found.refused),
            "rows": rows,
        }
        json_out.write_text(json.dumps(data, indent=1) + "\n")
    if not found.refs:
        from veil.commands.eval import EXIT_NOTHING_MEASURED

        click.echo("veil: no person had a usable reference photo", err=True)
        sys.exit(EXIT_NOTHING_MEASURED)
