"""Consent keep-list / erasure-list check on an identity set (``<person>/<images>``).

The same measures as ``veil eval consent`` (:mod:`veil.evaluate.consent`), printed as the
Markdown table docs/benchmarks.md holds, with the CPU model.

For each person, their first usable photo is the reference (the first photo in sorted order
that :class:`veil.consent.ConsentList` accepts: exactly one face, embedded reliably; refused
ones are counted); every other photo of everyone is an input. Each input is detected with
veil's default detector and each face measured once (:func:`veil.consent.check_face`); the
decisions are then those of the real :class:`~veil.consent.ConsentList` for one reference
at a time (the issue's protocol) and for all references at once (the ambiguity margin
applies). Printed:

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
import sys
import time
from pathlib import Path

from veil.config import ConsentConfig
from veil.evaluate.consent import ConsentRow, decide_thresholds, measure_identity_set

sys.path.insert(0, str(Path(__file__).parent))
import _machine


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.1f}%)" if b else "n/a"


def _rows(r: ConsentRow) -> list[str]:
    return [
        _pct(r.others_kept, r.other_pairs),
        _pct(r.own_kept, r.own),
        _pct(r.gallery_own_kept, r.gallery_photos),
        _pct(r.gallery_wrong, r.gallery_photos),
        _pct(r.only_own_hidden, r.own),
        _pct(r.only_others_hidden, r.other_labelled),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="identity set: <person>/<images>")
    ap.add_argument("--people", type=int, default=None, help="first N people (sorted)")
    ap.add_argument(
        "--keep-thresholds",
        default=str(ConsentConfig().keep_threshold),
        help="comma-separated --keep-threshold values, one row each",
    )
    args = ap.parse_args(argv)
    base = ConsentConfig()
    start = time.perf_counter()
    measures = measure_identity_set(args.root, base, people=args.people)
    seconds = time.perf_counter() - start
    print(
        f"# {args.root}: {len(measures.references)} people with a reference, "
        f"{len(measures.photos)} input photos"
    )
    print(
        f"# margin {base.margin}, min_size {base.min_size}, --only threshold {base.only_threshold}"
    )
    print(f"# {_machine.describe()}; measured in {seconds:.0f} s")
    print(f"reference photos refused before one was accepted: {dict(measures.refused) or 0}")
    print(f"input faces by reliability: {measures.face_reliability()}")
    head = [
        "keep threshold",
        "others kept (pairs; target 0)",
        "own photos kept (target >= 70%)",
        "own kept, all refs at once",
        "kept as someone else, all refs",
        "--only: own hidden",
        "--only: others hidden too",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    thresholds = [float(v) for v in args.keep_thresholds.split(",")]
    for row in decide_thresholds(measures, base, thresholds):
        print(f"| {row.keep_threshold:.2f} | " + " | ".join(_rows(row)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
