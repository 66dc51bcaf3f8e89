"""Privacy of an anonymized folder: do detectors still find the faces, do identities leak?

Originals and anonymized images are paired by relative path (another image suffix is
accepted, see :func:`veil.evaluate.detection.find_output`). Every pair that cannot be
measured is listed in the report, never dropped silently: missing on either side,
unreadable, different sizes, or no face found on the original.

Per pair, the face is located on the ORIGINAL (the largest face of the first locator that
finds one, default dlib HOG then CenterFace). On the anonymized image:

* **residual detection**: each detector is run on both images; a face counts as still
  detected when a box overlaps the original face with IoU >= ``residual_iou`` (0.3: detectors
  disagree on where a face box ends). The rate on originals is shown for reference.
* **identity leakage**: the dlib embedding of the same box on both images (the attacker
  knows where the face was, so the region is embedded even when no face is detected), then
  the metrics of :mod:`veil.evaluate.identity`, without attack and after each attack of
  :data:`veil.evaluate.attacks.ATTACKS`. Re-identification needs the ``<person>/<image>``
  layout. **Hubness**: the share of anonymized faces whose nearest original is one of the
  3 most frequent nearest originals (3/n when they spread evenly). The privacy band is
  DeepPrivacy2's, applied to the share of anonymized faces within dlib's 0.6 same-person
  distance of their own original, worst case over attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.errors import ConfigError, InputError
from veil.evaluate._privacy_pairs import OriginalCache, OriginalFace, PairResult, pair_results
from veil.evaluate.attacks import ATTACKS
from veil.evaluate.detection import find_output
from veil.evaluate.identity import (
    FaceEmbedder,
    ReIdentification,
    hubness,
    linkage_rank1,
    privacy_band,
    reidentification,
    share_within,
)
from veil.io.images import iter_image_files

__all__ = [
    "DEFAULT_DETECTORS",
    "Leakage",
    "OriginalCache",
    "OriginalFace",
    "PairSet",
    "PrivacyConfig",
    "PrivacyReport",
    "Residual",
    "evaluate_privacy",
    "pair_folders",
]

DEFAULT_DETECTORS: tuple[str, ...] = ("centerface", "dlib-hog")
"""Residual-detection detectors by default; ``haar`` (~1 s per image), ``dlib-cnn``: opt in."""


@dataclass(frozen=True)
class PrivacyConfig:
    """What :func:`evaluate_privacy` measures."""

    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    attacks: tuple[str, ...] = tuple(ATTACKS)
    locators: tuple[str, ...] = ("dlib-hog", "centerface")
    residual_iou: float = 0.3
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ConfigError(f"unknown attack(s) {unknown}; choose from: {', '.join(ATTACKS)}")
        if not self.locators:
            raise ConfigError("at least one locator detector is needed")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")


@dataclass
class PairSet:
    """Originals matched to anonymized files by relative path."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)  # (rel, original, anon)
    missing_anonymized: list[str] = field(default_factory=list)
    missing_original: list[str] = field(default_factory=list)


def _image_files(root: Path, side: str) -> list[str]:
    if not root.is_dir():
        raise InputError(f"{side} folder {root}: not a folder")
    files = [p.relative_to(root).as_posix() for p in iter_image_files(root)]
    if not files:
        raise InputError(f"{side} folder {root}: no image files")
    return files


def pair_folders(original: str | Path, anonymized: str | Path) -> PairSet:
    """Pair every original with its anonymized file; list files missing on either side.

    Raises ``InputError`` if a folder does not exist or holds no image.
    """
    original, anonymized = Path(original), Path(anonymized)
    result = PairSet()
    used: set[Path] = set()
    for rel in _image_files(original, "original"):
        found = find_output(anonymized, rel)
        if found is None:
            result.missing_anonymized.append(rel)
        else:
            used.add(found.resolve())
            result.pairs.append((rel, original / rel, found))
    for rel in _image_files(anonymized, "anonymized"):
        if (anonymized / rel).resolve() not in used:
            result.missing_original.append(rel)
    return result


@dataclass(frozen=True)
class Residual:
    """Share of faces a detector finds on the originals and still finds once anonymized."""

    detector: str
    faces: int
    original_rate: float
    anonymized_rate: float


@dataclass(frozen=True)
class Leakage:
    """Identity leakage of one set of query embeddings (one attack, or none)."""

    attack: str
    faces: int
    linkage_rank1: float
    linkage_chance: float
    within: float  # share within dlib's 0.6 of its own original
    reid: ReIdentification
    hubness: float = float("nan")  # share nearest to one of the 3 most frequent nearest

    @property
    def band(self) -> str:
        return privacy_band(self.within)


def _leakage(attack: str, queries: np.ndarray, originals: np.ndarray, labels: Any) -> Leakage:
    n = len(originals)
    nan = float("nan")
    reid = (
        reidentification(queries, originals, labels)
        if labels is not None
        else ReIdentification(rank1=nan, mean_ap=nan, queries=0, chance_rank1=nan)
    )
    return Leakage(
        attack=attack,
        faces=n,
        linkage_rank1=linkage_rank1(queries, originals),
        linkage_chance=1.0 / n if n else nan,
        within=share_within(queries, originals),
        reid=reid,
        hubness=hubness(queries, originals),
    )


@dataclass
class PrivacyReport:
    """Everything :func:`evaluate_privacy` measured, and every pair it could not measure."""

    pairs: PairSet
    evaluated: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    size_mismatch: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)  # no face on the original
    residual: list[Residual] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # detector -> why
    leakage: list[Leakage] = field(default_factory=list)  # "none" first, then attacks
    baseline: Leakage | None = None  # originals as queries: the re-id upper bound

    @property
    def worst(self) -> Leakage | None:
        """The leakage row (no attack or an attack) with the highest share within 0.6."""
        rows = [r for r in self.leakage if not np.isnan(r.within)]
        return max(rows, key=lambda r: (r.within, r.linkage_rank1)) if rows else None

    @property
    def band(self) -> str:
        worst = self.worst
        return "n/a" if worst is None else worst.band

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON (NaN becomes None)."""
        return _report_dict(self)


def _num(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 6)


def _leakage_dict(r: Leakage) -> dict[str, Any]:
    return {
        "attack": r.attack,
        "faces": r.faces,
        "linkage_rank1": _num(r.linkage_rank1),
        "linkage_chance": _num(r.linkage_chance),
        "within_0.6": _num(r.within),
        "band": r.band,
        "reid_rank1": _num(r.reid.rank1),
        "reid_map": _num(r.reid.mean_ap),
        "reid_queries": r.reid.queries,
        "reid_chance_rank1": _num(r.reid.chance_rank1),
        "hubness_top3": _num(r.hubness),
        "hubness_chance": _num(min(1.0, 3 / r.faces)) if r.faces else None,
    }


def _report_dict(r: PrivacyReport) -> dict[str, Any]:
    worst = r.worst
    return {
        "pairs": len(r.pairs.pairs),
        "evaluated": len(r.evaluated),
        "missing_anonymized": r.pairs.missing_anonymized,
        "missing_original": r.pairs.missing_original,
        "unreadable": [{"file": f, "error": e} for f, e in r.unreadable],
        "size_mismatch": [{"file": f, "sizes": s} for f, s in r.size_mismatch],
        "no_face_on_original": r.no_face,
        "residual_detection": [
            {
                "detector": x.detector,
                "faces": x.faces,
                "original_rate": _num(x.original_rate),
                "anonymized_rate": _num(x.anonymized_rate),
            }
            for x in r.residual
        ],
        "unavailable_detectors": r.unavailable,
        "leakage": [_leakage_dict(x) for x in r.leakage],
        "baseline_unanonymized": None if r.baseline is None else _leakage_dict(r.baseline),
        "worst_attack": None if worst is None else worst.attack,
        "band": r.band,
        "band_metric": "share within dlib distance 0.6 of own original, worst over attacks",
    }


# --- the run ---------------------------------------------------------------------------------


@dataclass
class _Collected:
    labels: list[str] = field(default_factory=list)
    originals: list[np.ndarray] = field(default_factory=list)
    queries: dict[str, list[np.ndarray]] = field(default_factory=dict)
    hits: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)

    def add(self, rel: str, result: PairResult, face: OriginalFace) -> None:
        assert face.embedding is not None
        self.labels.append(rel.split("/")[0])
        self.originals.append(face.embedding)
        for name, found in result.hits.items():
            self.hits.setdefault(name, []).append((face.hits[name], found))
        for attack, query in result.queries.items():
            self.queries.setdefault(attack, []).append(query)


def evaluate_privacy(
    original_dir: str | Path,
    anonymized_dir: str | Path,
    config: PrivacyConfig | None = None,
    *,
    embedder: FaceEmbedder | None = None,
    progress: Callable[[str], None] | None = None,
    originals: OriginalCache | None = None,
    workers: int = 1,
) -> PrivacyReport:
    """Measure residual detection and identity leakage of a folder (see module docs).

    ``progress(rel)`` is called after each pair. ``originals`` caches what depends on the
    originals only, across calls (see :data:`OriginalCache`). ``workers > 1`` measures pairs
    in that many processes (each loads its own models; ``embedder`` is then unused); the
    numbers are the same as with one. Raises ``InputError`` for a missing or empty folder,
    ``MissingExtraError`` without dlib.
    """
    config = config or PrivacyConfig()
    if embedder is None and workers <= 1:
        embedder = FaceEmbedder()
    cache: OriginalCache = {} if originals is None else originals
    report = PrivacyReport(pairs=pair_folders(original_dir, anonymized_dir))
    pairs = report.pairs.pairs[: config.limit]
    tasks = [(src, dst, cache.get(rel)) for rel, src, dst in pairs]
    acc = _Collected()
    for (rel, _, _), result in zip(
        pairs, pair_results(tasks, config, embedder, workers), strict=True
    ):
        report.unavailable.update(result.unavailable)
        if result.unreadable is not None:
            report.unreadable.append((rel, result.unreadable))
        elif result.size_mismatch is not None:
            report.size_mismatch.append((rel, result.size_mismatch))
        elif result.original is not None:
            cache[rel] = result.original
            if result.original.box is None:
                report.no_face.append(rel)
            else:
                acc.add(rel, result, result.original)
                report.evaluated.append(rel)
        if progress is not None:
            progress(rel)
    _summarize(report, acc)
    return report


def _summarize(report: PrivacyReport, acc: _Collected) -> None:
    for name, hits in acc.hits.items():
        arr = np.asarray(hits, bool).reshape(-1, 2)
        report.residual.append(
            Residual(name, len(arr), float(arr[:, 0].mean()), float(arr[:, 1].mean()))
        )
    if not report.evaluated:
        return
    person_layout = all(rel.count("/") == 1 for rel in report.evaluated)
    labels = acc.labels if person_layout else None
    originals = np.asarray(acc.originals)
    report.baseline = _leakage("unanonymized", originals, originals, labels)
    for attack, queries in acc.queries.items():
        report.leakage.append(_leakage(attack, np.asarray(queries), originals, labels))
