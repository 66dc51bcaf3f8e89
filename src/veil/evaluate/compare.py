"""Compare anonymization methods on the same images and the same detections.

:func:`compare_methods` detects faces ONCE per image with veil's default detector and mask,
then anonymizes with every method, so the comparison isolates the method. Outputs are
written as PNG (lossless: outside pixels stay exact) under ``work_dir/<method>/coverage`` and
``work_dir/<method>/identity``. Other tools enter with ``externals={name: folder}``: a folder
mirroring the sets (``folder/coverage`` and ``folder/identity`` if they exist, else the
folder itself for both); their masks are unknown, so utility uses veil's mask region.

Per method:

* coverage set (``annotations.json``, :func:`veil.evaluate.coverage.load_ground_truth`):
  changed-pixel coverage overall and by face size, change outside faces;
* identity set (``<person>/<image>``): :func:`veil.evaluate.privacy.evaluate_privacy`
  (residual detection, linkage, re-identification, attacks) on the first ``limit`` images
  (copied to ``work_dir/_originals/identity`` so both sides pair one-to-one), and
  :mod:`veil.evaluate.utility` (SSIM/PSNR inside and outside the mask, landmark error,
  re-detection, person agreement).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil.anonymize.base import ANONYMIZERS
from veil.errors import ConfigError, InputError, VeilError
from veil.evaluate.coverage import CoverageReport, evaluate_pair, load_ground_truth
from veil.evaluate.detection import find_output
from veil.evaluate.identity import FaceEmbedder
from veil.evaluate.privacy import OriginalCache, PrivacyConfig, evaluate_privacy
from veil.evaluate.utility import UtilityConfig, UtilityMeter, UtilityReport
from veil.io.images import iter_image_files, read_image, write_image
from veil.mask import Masker, union_mask
from veil.pipeline import Pipeline
from veil.types import Faces

__all__ = ["CompareResult", "MethodRow", "compare_methods", "flat_row"]

Progress = Callable[[str], None]


@dataclass
class MethodRow:
    """Everything measured for one method (``source`` is ``"veil"`` or ``"external"``)."""

    method: str
    source: str = "veil"
    seconds_per_image: float | None = None
    coverage: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None
    utility: dict[str, Any] | None = None
    error: str | None = None  # why the method could not run at all

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "source": self.source,
            "seconds_per_image": self.seconds_per_image,
            "coverage": self.coverage,
            "privacy": self.privacy,
            "utility": self.utility,
            "error": self.error,
        }


@dataclass
class CompareResult:
    """Rows per method, the sets used, and example images for the report."""

    rows: list[MethodRow] = field(default_factory=list)
    sets: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``veil report`` reads (``kind: "compare"``)."""
        return {
            "kind": "compare",
            "sets": self.sets,
            "rows": [r.to_dict() for r in self.rows],
            "table": [flat_row(r.to_dict()) for r in self.rows],
            "examples": self.examples,
        }


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One flat ``{column: number}`` per method, the columns of the table and the CSV."""
    priv = row.get("privacy") or {}
    worst = next(
        (x for x in priv.get("leakage", []) if x["attack"] == priv.get("worst_attack")), None
    )
    none = next((x for x in priv.get("leakage", []) if x["attack"] == "none"), None)
    residual = {x["detector"]: x["anonymized_rate"] for x in priv.get("residual_detection", [])}
    cov = row.get("coverage")
    out = {
        "method": row["method"],
        "source": row.get("source"),
        "recall": _get(cov, "recall"),
        **{
            f"recall_{b}": _get(cov, "recall_by_bin", b, "recall")
            for b in ("0-10", "10-20", "20-40", "40-80", "80+")
        },
        "outside_changed": _get(cov, "outside_changed"),
        "within_0.6": _get(none, "within_0.6"),
        "within_0.6_worst": _get(worst, "within_0.6"),
        "worst_attack": priv.get("worst_attack"),
        "linkage_rank1": _get(none, "linkage_rank1"),
        "reid_rank1_worst": _get(worst, "reid_rank1"),
        **{f"residual_{k}": v for k, v in residual.items()},
        "band": priv.get("band"),
    }
    for key in ("ssim_outside", "psnr_outside", "ssim_inside", "psnr_inside"):
        out[key] = _get(row.get("utility"), key)
    for key in ("landmark_error", "redetection", "people_agreement"):
        out[key] = _get(row.get("utility"), key)
    out["seconds_per_image"] = row.get("seconds_per_image")
    return out


# --- the run ---------------------------------------------------------------------------------


class _Images:
    """Images of a set with their faces detected once (cached)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.cache: dict[str, tuple[np.ndarray, Faces]] = {}

    def get(self, rel: str, path: Path) -> tuple[np.ndarray, Faces]:
        if rel not in self.cache:
            image = read_image(path).image
            self.cache[rel] = (image, self.pipeline.detect(image))
        return self.cache[rel]


def _png(root: Path, rel: str) -> Path:
    return (root / rel).with_suffix(".png")


def across_people(rels: Sequence[str], limit: int | None, per_round: int = 2) -> list[str]:
    """Up to ``limit`` of ``rels`` (``person/image`` paths) spread over as many people as
    possible: ``per_round`` images of each person in turn (two, so each sampled person can
    be re-identified), then the next two of each, and so on; order kept within a person.
    ``None`` keeps all."""
    if limit is None or limit >= len(rels):
        return list(rels)
    people: dict[str, list[str]] = {}
    for rel in rels:
        people.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else "", []).append(rel)
    picked: list[str] = []
    for start in range(0, max(len(v) for v in people.values()), per_round):
        for images in people.values():
            picked += images[start : start + per_round][: limit - len(picked)]
            if len(picked) >= limit:
                return picked
    return picked


def _identity_subset(identity_set: Path, limit: int | None, work_dir: Path) -> list[str]:
    """``limit`` identity images sampled across people (:func:`across_people`), copied
    under ``work_dir/_originals/identity``."""
    if not identity_set.is_dir():
        raise InputError(f"identity set {identity_set}: not a folder")
    rels = [p.relative_to(identity_set).as_posix() for p in iter_image_files(identity_set)]
    rels = across_people(rels, limit)
    if not rels:
        raise InputError(f"identity set {identity_set}: no image files")
    for rel in rels:
        dst = work_dir / "_originals" / "identity" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            shutil.copy2(identity_set / rel, dst)
    return rels


def _external_root(folder: Path, part: str) -> Path:
    return folder / part if (folder / part).is_dir() else folder


def _coverage(
    row: MethodRow,
    gt: Sequence[Any],
    images: _Images,
    pipeline: Pipeline | None,
    out_root: Path,
) -> float:
    """Fill ``row.coverage``; anonymize with ``pipeline`` or read outputs; return seconds."""
    report, seconds = CoverageReport(), 0.0
    for g in gt:
        original, faces = images.get(g.file, g.path)
        try:
            if pipeline is not None:
                start = time.perf_counter()
                anonymized = pipeline.anonymize(original, faces).image
                seconds += time.perf_counter() - start
                write_image(_png(out_root, g.file), anonymized)
            else:
                found = find_output(out_root, g.file)
                if found is None:
                    raise InputError("no output file")
                anonymized = read_image(found).image
            report.add(evaluate_pair(original, anonymized, g.faces, g.ignore))
        except VeilError:
            report.add_missing(g.faces[:, 3])
    row.coverage = report.to_dict()
    return seconds


def _identity(
    row: MethodRow,
    rels: Sequence[str],
    identity_set: Path,
    images: _Images,
    pipeline: Pipeline | None,
    out_root: Path,
    meter: UtilityMeter,
) -> float:
    """Write or read the identity outputs, fill ``row.utility``; return seconds."""
    utility, seconds = UtilityReport(pairs=len(rels)), 0.0
    for rel in rels:
        original, faces = images.get(rel, identity_set / rel)
        meter.set_faces(rel, faces)
        try:
            if pipeline is not None:
                start = time.perf_counter()
                result = pipeline.anonymize(original, faces)
                seconds += time.perf_counter() - start
                write_image(_png(out_root, rel), result.image)
                anonymized, mask = result.image, union_mask(result.regions, original.shape)
            else:
                found = find_output(out_root, rel)
                if found is None:
                    utility.missing.append(rel)
                    continue
                anonymized, mask = read_image(found).image, None
            measured = meter.measure(rel, original, anonymized, mask=mask)
        except VeilError as exc:
            utility.unusable.append((rel, str(exc)))
            continue
        if measured is None:
            utility.no_face.append(rel)
        else:
            utility.measured.append((rel, measured))
    utility.unavailable = dict(meter.unavailable)
    row.utility = utility.to_dict()
    return seconds


def compare_methods(
    methods: Sequence[str],
    *,
    coverage_set: Path | None = None,
    identity_set: Path | None = None,
    limit: int | None = None,
    attacks: Sequence[str] | None = None,
    work_dir: Path,
    externals: Mapping[str, Path] | None = None,
    detector: str = "centerface",
    utility: UtilityConfig | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> CompareResult:
    """Run every method on the sets and measure it (see module docs).

    What depends on the originals only (faces, their residual detection and embeddings) is
    measured once and shared by every method. ``workers > 1`` runs the privacy measures in
    that many processes (same numbers). A method that cannot be built (unknown name,
    missing extra) gets a row with ``error``; an unknown name raises ``ConfigError`` up
    front. Raises ``InputError`` without any set.
    """
    from veil.detect.base import DETECTORS

    if coverage_set is None and identity_set is None:
        raise InputError("compare needs a coverage set, an identity set, or both")
    for m in methods:
        if m not in ANONYMIZERS.names():
            raise ConfigError(
                f"unknown method {m!r}; choose from: {', '.join(ANONYMIZERS.names())}"
            )
    say = progress or (lambda _: None)
    det = DETECTORS.create(detector)
    base = Pipeline(det, ANONYMIZERS.create("gaussian"), Masker())
    result = CompareResult()
    gt = load_ground_truth(Path(coverage_set) / "annotations.json")[:limit] if coverage_set else []
    rels = _identity_subset(Path(identity_set), limit, work_dir) if identity_set else []
    result.sets = {
        "coverage_set": None if coverage_set is None else str(coverage_set),
        "coverage_images": len(gt),
        "identity_set": None if identity_set is None else str(identity_set),
        "identity_images": len(rels),
        "detector": detector,
        "attacks": list(attacks) if attacks is not None else None,
    }
    cov_images, id_images = _Images(base), _Images(base)
    privacy_config = PrivacyConfig() if attacks is None else PrivacyConfig(attacks=tuple(attacks))
    embedder = FaceEmbedder() if identity_set and workers <= 1 else None
    originals: OriginalCache = {}  # shared by every method: same originals, same config
    meter = UtilityMeter(utility or UtilityConfig(detector=detector)) if identity_set else None
    jobs: list[tuple[str, str, Pipeline | None, Path]] = [
        (m, "veil", None, work_dir / m) for m in methods
    ]
    jobs += [(n, "external", None, Path(f)) for n, f in (externals or {}).items()]
    for name, source, _, root in jobs:
        row = MethodRow(method=name, source=source)
        result.rows.append(row)
        pipeline: Pipeline | None = None
        if source == "veil":
            try:
                pipeline = Pipeline(det, ANONYMIZERS.create(name), base.masker)
            except VeilError as exc:
                row.error = str(exc)
                continue
        seconds, count = 0.0, 0
        if gt:
            say(f"{name}: coverage")
            seconds += _coverage(row, gt, cov_images, pipeline, _external_root(root, "coverage"))
            count += len(gt)
        if identity_set and meter is not None:
            say(f"{name}: utility")
            out = root / "identity" if source == "veil" else _external_root(root, "identity")
            seconds += _identity(row, rels, Path(identity_set), id_images, pipeline, out, meter)
            count += len(rels)
            say(f"{name}: privacy")
            report = evaluate_privacy(
                work_dir / "_originals" / "identity",
                out,
                privacy_config,
                embedder=embedder,
                originals=originals,
                workers=workers,
            )
            privacy = report.to_dict()
            privacy["missing_anonymized"] = privacy["missing_anonymized"][:20]
            row.privacy = privacy
        if pipeline is not None and count:
            row.seconds_per_image = round(seconds / count, 4)
    result.examples = _examples(rels, work_dir, jobs, id_images)
    return result


def _examples(
    rels: Sequence[str],
    work_dir: Path,
    jobs: Sequence[tuple[str, str, Pipeline | None, Path]],
    images: _Images,
    count: int = 3,
) -> list[dict[str, Any]]:
    """Paths and face boxes of the first ``count`` identity images with a face."""
    out: list[dict[str, Any]] = []
    for rel in rels:
        if len(out) >= count:
            break
        faces = images.cache.get(rel, (None, Faces.empty()))[1]
        if len(faces) == 0:
            continue
        outputs = {}
        for name, source, _, root in jobs:
            folder = root / "identity" if source == "veil" else _external_root(root, "identity")
            found = find_output(folder, rel)
            if found is not None:
                outputs[name] = str(found)
        out.append(
            {
                "file": rel,
                "original": str(work_dir / "_originals" / "identity" / rel),
                "box": [round(float(v), 1) for v in faces.xyxy[0]],
                "outputs": outputs,
            }
        )
    return out
