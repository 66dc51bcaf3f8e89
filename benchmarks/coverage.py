"""Face coverage benchmark: run anonymizers on annotated datasets and measure what changed.

Each tool runs as ONE command over a whole folder (model loading included in the time), on a
copy of the dataset's images in a work folder; the shared data folder is only read. Coverage
is measured from pixels alone (see ``veil.evaluate.coverage``), so every tool is judged the
same way. Example::

    python benchmarks/coverage.py --tools deface --limit 100 ../shared/data/faces-street
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from veil.errors import InputError
from veil.evaluate import SIZE_BINS, CoverageReport, GTImage, evaluate_pair, load_ground_truth

sys.path.insert(0, str(Path(__file__).parent))
import _machine

log = logging.getLogger("benchmarks.coverage")

DEFAULT_DATASETS = ("../shared/data/faces-street", "../shared/data/faces-crowd-wider200")
BIN_DIR = Path(sys.executable).parent


# --- tools: each stages nothing itself, runs one command, and maps an input to its output --


@dataclass(frozen=True)
class Run:
    """What a tool needs: the staged input folder, an output folder, the images and options."""

    in_dir: Path
    out_dir: Path
    images: list[GTImage]
    veil_args: list[str]
    veil_exe: Path


@dataclass(frozen=True)
class Tool:
    """``run`` executes the tool on a whole folder; ``output`` names the result for a file."""

    run: Callable[[Run], None]
    output: Callable[[Run, str], Path]
    help: str


def _run_command(cmd: list[str]) -> None:
    log.info("running: %s", shlex.join(cmd[:6]) + (" ..." if len(cmd) > 6 else ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}:\n{tail}")


def _run_veil(run: Run) -> None:
    _run_command(
        [str(run.veil_exe), "anonymize", str(run.in_dir), "-o", str(run.out_dir), *run.veil_args]
    )


def _run_deface(run: Run) -> None:
    _run_command([str(BIN_DIR / "deface"), *(str(run.in_dir / im.file) for im in run.images)])


def _deface_output(run: Run, file: str) -> Path:
    staged = run.in_dir / file
    return staged.with_name(f"{staged.stem}_anonymized{staged.suffix}")


def _run_gt_box(run: Run) -> None:
    """Baseline that paints every ground-truth face box black: recall should be 1.0."""
    for im in run.images:
        with Image.open(run.in_dir / im.file) as src:
            image = ImageOps.exif_transpose(src).convert("RGB")
        draw = ImageDraw.Draw(image)
        for x, y, w, h in im.faces:
            draw.rectangle((x, y, x + w, y + h), fill=(0, 0, 0))
        out = run.out_dir / im.file
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out, quality=95)


TOOLS: dict[str, Tool] = {
    "veil": Tool(
        _run_veil,
        lambda run, file: run.out_dir / file,
        "veil anonymize IN_DIR -o OUT_DIR [--veil-args]",
    ),
    "deface": Tool(
        _run_deface,
        _deface_output,
        "deface FILE1 FILE2 ... with its defaults (writes <stem>_anonymized.<ext>)",
    ),
    "gt-box": Tool(
        _run_gt_box,
        lambda run, file: run.out_dir / file,
        "sanity baseline, in-process: black box over each GT face (recall ~1.0; "
        "below 1 only where a face is already near-black)",
    ),
}


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Result:
    dataset: str
    tool: str
    report: CoverageReport = field(default_factory=CoverageReport)
    seconds: float = float("nan")
    missing: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def images_per_second(self) -> float:
        n = self.report.images + self.report.missing
        return n / self.seconds if self.seconds > 0 else float("nan")


def read_rgb(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3), EXIF orientation applied (the same way for inputs and outputs)."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def stage(images: list[GTImage], in_dir: Path) -> None:
    """Copy the inputs into ``in_dir`` under their GT-relative names (never touch the source)."""
    for im in images:
        target = in_dir / im.file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(im.path, target)


def measure(result: Result, run: Run, tool: Tool, args: argparse.Namespace) -> None:
    for im in run.images:
        output = tool.output(run, im.file)
        try:
            anonymized = read_rgb(output)
            original = read_rgb(im.path)
            result.report.add(
                evaluate_pair(
                    original, anonymized, im.faces, im.ignore, tol=args.tol, sigma=args.sigma
                )
            )
        except (OSError, InputError) as exc:
            log.warning(
                "%s/%s: no usable output for %s: %s", result.dataset, result.tool, im.file, exc
            )
            result.missing.append(im.file)
            result.report.add_missing(im.faces[:, 3])


def bench_one(dataset: Path, name: str, args: argparse.Namespace, work: Path) -> Result:
    images = load_ground_truth(dataset / "annotations.json")
    if args.limit is not None:
        images = images[: args.limit]
    result = Result(dataset.name, name)
    root = work / dataset.name / name
    if root.exists():
        shutil.rmtree(root)
    run = Run(root / "in", root / "out", images, shlex.split(args.veil_args), args.veil_exe)
    run.out_dir.mkdir(parents=True)
    stage(images, run.in_dir)
    tool = TOOLS[name]
    start = time.perf_counter()
    try:
        tool.run(run)
    except (OSError, RuntimeError) as exc:
        result.error = str(exc)
        log.error("%s/%s failed: %s", dataset.name, name, exc)
        return result
    result.seconds = time.perf_counter() - start
    measure(result, run, tool, args)
    return result


# --- output --------------------------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    head = [
        "dataset",
        "tool",
        "images",
        "faces",
        "recall",
        *(f"{b}px" for b in SIZE_BINS),
        "outside %",
        "FA/img",
        "img/s",
        "x deface",
        "missing",
    ]
    rows = [head]
    for r in results:
        if r.error is not None:
            rows.append([r.dataset, r.tool, "FAILED", *[""] * (len(head) - 3)])
            continue
        rep = r.report
        bins = [f"{rec:.3f} ({n})" if n else "- (0)" for rec, n in rep.recall_by_bin().values()]
        rows.append(
            [
                r.dataset,
                r.tool,
                str(rep.images + rep.missing),
                str(rep.n_faces),
                f"{rep.recall:.3f}",
                *bins,
                f"{100 * rep.mean_outside:.2f}",
                f"{rep.false_alarms_per_image:.2f}",
                f"{r.images_per_second:.2f}",
                _ratio(r, results),
                str(rep.missing),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(0, f"# {_machine.describe()}")
    return "\n".join(line.rstrip() for line in lines)


def _ratio(r: Result, results: Sequence[Result]) -> str:
    """Speed against deface on the same dataset in the same run (wall time ratio)."""
    base = next((b for b in results if b.dataset == r.dataset and b.tool == "deface"), None)
    if base is None or base.error is not None or np.isnan(base.seconds) or np.isnan(r.seconds):
        return "-"
    return f"{base.seconds / r.seconds:.2f}"


def to_json(
    results: Sequence[Result], argv: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "command": shlex.join(["python", "benchmarks/coverage.py", *argv]),
        "settings": {"tol": args.tol, "sigma": args.sigma, "limit": args.limit},
        "machine": {
            "cpu": _machine.cpu_model(),
            "flags": _machine.cpu_flags(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "results": [
            {
                "dataset": r.dataset,
                "tool": r.tool,
                "error": r.error,
                "seconds": None if np.isnan(r.seconds) else round(r.seconds, 3),
                "images_per_second": None
                if np.isnan(r.images_per_second)
                else round(r.images_per_second, 3),
                "missing_files": r.missing,
                **r.report.to_dict(),
            }
            for r in results
        ],
    }


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    tools_help = "; ".join(f"{k}: {t.help}" for k, t in TOOLS.items())
    parser = argparse.ArgumentParser(
        prog="python benchmarks/coverage.py",
        description=(
            "Run face anonymizers on annotated image folders and report face coverage. A face "
            "is covered when >=90% of the ellipse in its ground-truth box changed (flat areas "
            "enclosed by changed pixels count, see veil.evaluate.coverage). Reports recall "
            "overall and per face-height bin, the changed share of the area outside the faces "
            "(boxes grown 2x) and images/second of one whole-folder command, model loading "
            "included. Inputs are copied to a work folder: the datasets are only read."
        ),
    )
    parser.add_argument(
        "datasets",
        nargs="*",
        default=list(DEFAULT_DATASETS),
        help="folders holding annotations.json ({'images': [{'file', 'faces', 'ignore'}]}); "
        "relative paths resolve against the current folder (default: "
        f"{' '.join(DEFAULT_DATASETS)})",
    )
    parser.add_argument(
        "--tools",
        default="veil,deface",
        help=f"comma-separated tools (default: %(default)s). {tools_help}",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="only the first N images of each dataset (quick runs)",
    )
    parser.add_argument(
        "--veil-args",
        default="",
        metavar="ARGS",
        help='extra arguments for veil anonymize, one string: "--method blur"',
    )
    parser.add_argument(
        "--veil-exe",
        type=Path,
        default=BIN_DIR / "veil",
        help="veil executable (default: next to this Python: %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep inputs and outputs here, in <dataset>/<tool>/ (replaced on "
        "each run); default: a temporary folder, deleted afterwards",
    )
    parser.add_argument(
        "--tol",
        type=int,
        default=8,
        help="a pixel changed if a channel moved by more than this (default: %(default)s)",
    )
    parser.add_argument(
        "--sigma",
        type=float,
        default=1.0,
        help="Gaussian smoothing (px) of both images before differencing, so "
        "JPEG re-encoding noise does not count (default: %(default)s; 0: off)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT",
        help="also write the numbers, command and machine to this JSON file",
    )
    args = parser.parse_args(argv)
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(args.tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; valid: {sorted(TOOLS)}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    args.datasets = [Path(d).resolve() for d in args.datasets]
    for d in args.datasets:
        if not (d / "annotations.json").is_file():
            parser.error(f"{d}: no annotations.json in this folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="veil-coverage-") as tmp:
        work = args.workdir.resolve() if args.workdir else Path(tmp)
        if any(work.is_relative_to(d) for d in args.datasets):
            log.error("--workdir %s is inside a dataset folder; choose another one", work)
            return 2
        results = [bench_one(d, t, args, work) for d in args.datasets for t in args.tools]
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(to_json(results, argv, args), indent=2) + "\n")
    return 1 if any(r.error or r.missing for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
