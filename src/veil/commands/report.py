"""``veil report``: one self-contained HTML page (plus JSON and CSV) from result JSON files."""

from __future__ import annotations

from pathlib import Path

import click

from veil.commands.eval import _fail
from veil.errors import VeilError

__all__ = ["report"]


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="report.html")
def report(results: tuple[Path, ...], output: Path) -> None:
    """Write an HTML report of `veil eval compare` / `veil eval video` JSON results.

    Plots are embedded (base64 PNG) and the page loads nothing from elsewhere; the numbers
    are also written next to it as OUTPUT.json and OUTPUT.csv. Needs matplotlib:
    pip install matplotlib (in a clone of veil: pip install '.[report]').
    """
    from veil.evaluate.report import load_results, write_report

    try:
        paths = write_report(load_results(results), output)
    except VeilError as exc:
        _fail(str(exc))
        return
    for p in paths:
        click.echo(f"veil: wrote {p}", err=True)
