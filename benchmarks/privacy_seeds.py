"""Identity leakage over several seeds: `veil anonymize` then `veil eval privacy`, per seed.

On a small set one face moves a rate by several points (12 faces: 8.3 points), and a
synthetic face is drawn at random per track, so one seed's row says little. This runs each
``--run`` (a name and its `veil anonymize` arguments) once per seed, measures each output
folder with `veil eval privacy`'s attacks, and prints per run: linkage rank-1 and
same-person top-1 (re-identification rank-1 against the person's other photos), as the
mean over every seed and attack, the mean over seeds of the worst attack, and the worst of
all; hub@3; the share of replaced faces CenterFace and dlib HOG still find.

``--strangers DIR`` adds the reference run ``stranger-swap``: the synthetic method drawing
a real stranger's face (one photo each of the last ``--stranger-count`` people of ``DIR``,
a ``<person>/<image>`` folder such as identity-lfw158, none of them in the measured set)
on exactly the area the synthetic face replaces. No generated face can hide identity
better than another real person's face, so this row is the floor of what replacing that
area can reach; what it leaves is what survives outside the face (hair, ears, neck,
clothes, background).

Example::

    python benchmarks/privacy_seeds.py ../shared/data/identity-fr-highres --seeds 6 \\
        --strangers ../shared/data/identity-lfw158 \\
        --run "synthetic=-m synthetic" --run "degree 1.25=-m synthetic --degree 1.25"
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import _machine
from veil.evaluate.identity import FaceEmbedder
from veil.evaluate.privacy import OriginalCache, evaluate_privacy
from veil.io.images import iter_image_files


def strangers(root: Path, count: int, into: Path) -> Path:
    """A folder of links to the first photo of each of the last ``count`` people of
    ``root`` (links, so no photo is copied)."""
    into.mkdir(parents=True, exist_ok=True)
    people = sorted(p for p in root.iterdir() if p.is_dir())[-count:]
    for person in people:
        first = next(iter(iter_image_files(person)), None)
        if first is not None:
            (into / f"{person.name}{first.suffix}").symlink_to(first.resolve())
    return into


def random_worst(labels: list[str], conditions: int, trials: int = 20000) -> float:
    """Expected worst same-person top-1 over ``conditions`` independent random rankings
    (each query's top-1 a uniform draw among the other photos): what a method leaking
    nothing scores on this set as "the worst attack"."""
    lab = np.asarray(labels)
    same = (lab[:, None] == lab[None, :]).sum(1) - 1
    keep = same > 0
    p = same[keep] / (len(lab) - 1)
    rng = np.random.default_rng(0)
    hits = rng.random((trials, conditions, len(p))) < p
    return float(hits.mean(2).max(1).mean())


def anonymize(veil: Path, data: Path, out: Path, args: list[str], seed: int) -> None:
    cmd = [str(veil), "anonymize", str(data), "-o", str(out), "-q", "--seed", str(seed), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{proc.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="a <person>/<image> folder")
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0 .. N-1")
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="a run: its name and its `veil anonymize` arguments (repeatable)",
    )
    parser.add_argument(
        "--veil",
        type=Path,
        default=Path(sys.executable).parent / "veil",
        help="veil executable (default: next to this Python: %(default)s)",
    )
    parser.add_argument("--strangers", type=Path, default=None)
    parser.add_argument("--stranger-count", type=int, default=60)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if not args.data.is_dir():
        parser.error(f"{args.data}: not a folder")
    if args.strangers is not None and not args.strangers.is_dir():
        parser.error(f"--strangers {args.strangers}: not a folder")
    bad = [r for r in args.run if "=" not in r or not r.split("=", 1)[0].strip()]
    if bad:
        parser.error(f"--run {bad[0]!r}: expected NAME=ARGS, e.g. 'synthetic=-m synthetic'")
    runs = [tuple(r.split("=", 1)) for r in args.run] or [("synthetic", "-m synthetic")]
    work = Path(tempfile.mkdtemp(prefix="veil-privacy-seeds-"))
    try:
        if args.strangers is not None:
            folder = strangers(args.strangers, args.stranger_count, work / "strangers")
            swap = f"-m synthetic --method-option gallery={folder} --method-option k=1"
            runs.append(("stranger-swap", swap))
        print(f"# CPU: {_machine.describe()}; no speed is measured here")
        print("# " + shlex.join(["python", *sys.argv]))
        embedder, cache = FaceEmbedder(), {}
        header = (
            "| run | linkage r1 mean / max | same-person top-1 mean | worst attack, mean "
            "over seeds | worst | hub@3 | re-detected CF / HOG (min) |"
        )
        print(header)
        print("|" + "|".join("---" for _ in header.split("|")[1:-1]) + "|")
        chance = None
        for name, veil_args in runs:
            link, reid, worst, hub, found = [], [], [], [], {}
            cache: OriginalCache
            for seed in range(args.seeds):
                out = work / f"{name}-{seed}"
                anonymize(args.veil, args.data, out, shlex.split(veil_args), seed)
                report = evaluate_privacy(args.data, out, embedder=embedder, originals=cache)
                rows = report.leakage
                link += [r.linkage_rank1 for r in rows]
                reid += [r.reid.rank1 for r in rows]
                worst.append(max(r.reid.rank1 for r in rows))
                hub += [r.hubness for r in rows]
                for res in report.residual:
                    found[res.detector] = min(found.get(res.detector, 1.0), res.anonymized_rate)
                labels = [rel.split("/")[0] for rel in report.evaluated]
                chance = (rows[0].linkage_chance, rows[0].reid.chance_rank1, rows[0].faces)
                shutil.rmtree(out)
            print(
                f"| {name} | {100 * np.mean(link):.1f}% / {100 * np.max(link):.1f}% | "
                f"{100 * np.mean(reid):.1f}% | {100 * np.mean(worst):.1f}% | "
                f"{100 * np.max(worst):.1f}% | {100 * np.mean(hub):.0f}% | "
                + " / ".join(f"{100 * v:.0f}%" for v in found.values())
                + " |"
            )
        if chance is not None:
            print(
                f"# {chance[2]} faces, {args.seeds} seeds x (no attack + "
                f"{len(rows) - 1} attacks); chance: linkage {100 * chance[0]:.1f}%, "
                f"same-person top-1 {100 * chance[1]:.1f}% (worst of {len(rows)} random "
                f"rankings: {100 * random_worst(labels, len(rows)):.1f}%); runs: "
                + "; ".join(f"{n}: {a}" for n, a in runs)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
