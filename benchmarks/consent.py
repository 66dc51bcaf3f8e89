"""Consent keep-list / erasure-list check on an identity set (``<person>/<images>``).

The measuring and counting live in :mod:`veil.evaluate.consent` (also ``veil eval
consent``): for each person, their first usable photo is the reference; every other photo
of everyone is an input; the decisions are those of the real
:class:`~veil.consent.ConsentList` for one reference at a time (the issue's protocol) and
for all references at once (the ambiguity margin applies). Printed:

* ``others kept``: (reference, photo of someone else) pairs where any face is kept: target 0.
* ``own kept``: the consenting person's other photos whose labelled face (nearest the image
  centre) is kept: target >= 70%.
* ``--only`` with the same references: the listed person's labelled face hidden (should be
  100%) and other people's labelled faces hidden (the over-hiding that fail safe costs).

Example::

    python benchmarks/consent.py ../shared/data/identity-fr-highres
    python benchmarks/consent.py --people 40 --keep-thresholds 0.4,0.45,0.5 \\
        ../shared/data/identity-lfw158
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

from veil.config import ConsentConfig
from veil.evaluate.consent import COLUMNS, decide, measure, share, summary

sys.path.insert(0, str(Path(__file__).parent))
import _machine


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="identity set: <person>/<images>")
    ap.add_argument("--people", type=int, default=10_000, help="first N people (sorted)")
    ap.add_argument(
        "--keep-thresholds",
        default=str(ConsentConfig().keep_threshold),
        help="comma-separated --keep-threshold values, one row each",
    )
    args = ap.parse_args(argv)
    base = ConsentConfig()
    start = time.perf_counter()
    found = measure(args.root, args.people, base)
    refs, photos, refused = found.refs, found.photos, found.refused
    seconds = time.perf_counter() - start
    print(f"# {args.root}: {len(refs)} people with a reference, {len(photos)} input photos")
    print(
        f"# margin {base.margin}, min_size {base.min_size}, --only threshold {base.only_threshold}"
    )
    print(f"# {_machine.describe()}; measured in {seconds:.0f} s")
    print(f"reference photos refused before one was accepted: {dict(refused) or 0}")
    faces: Counter[str] = Counter(ch.reason or "reliable" for p in photos for ch in p.checks)
    print(f"input faces by reliability: {dict(faces)}")
    head = ["keep threshold", *COLUMNS.values()]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for value in args.keep_thresholds.split(","):
        config = dataclasses.replace(base, keep_threshold=float(value))
        counts = summary(decide(refs, photos, config))
        print(f"| {float(value):.2f} | " + " | ".join(share(*counts[k]) for k in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
