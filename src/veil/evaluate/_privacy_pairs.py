"""Measuring one original/anonymized pair for :mod:`veil.evaluate.privacy`, in or out of process.

:class:`_PairMeter` holds the detectors and the embedder (built once per process) and
turns ``(original path, anonymized path, known OriginalFace or None)`` into a
:class:`PairResult`; :func:`pair_results` runs it here or in a pool of spawned processes,
keeping the order of the tasks so that the numbers do not depend on the worker count.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from veil.boxes import box_iou
from veil.detect.base import DETECTORS, Detector
from veil.errors import BackendError, MissingExtraError, VeilError
from veil.evaluate.attacks import ATTACKS
from veil.evaluate.identity import FaceEmbedder
from veil.io.images import read_image

if TYPE_CHECKING:
    from veil.evaluate.privacy import PrivacyConfig

__all__ = ["OriginalCache", "OriginalFace", "PairResult", "Task", "pair_results"]

log = logging.getLogger(__name__)


class _Detectors:
    """Detectors built once by name; ones that cannot be built are recorded, not fatal."""

    def __init__(self) -> None:
        self.built: dict[str, Detector] = {}
        self.unavailable: dict[str, str] = {}

    def get(self, name: str) -> Detector | None:
        if name not in self.built and name not in self.unavailable:
            try:
                self.built[name] = DETECTORS.create(name)
            except (MissingExtraError, BackendError) as exc:
                log.warning("detector %s unavailable: %s", name, exc)
                self.unavailable[name] = str(exc)
        return self.built.get(name)


def _locate(image: np.ndarray, names: tuple[str, ...], dets: _Detectors) -> np.ndarray | None:
    """``xyxy (4,)`` of the largest face of the first locator that finds one."""
    for name in names:
        det = dets.get(name)
        faces = det.detect(image) if det is not None else None
        if faces is not None and len(faces):
            wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
            return np.asarray(faces.xyxy[int(np.argmax(wh[:, 0] * wh[:, 1]))])
    return None


def _found(det: Detector, image: np.ndarray, box: np.ndarray, iou: float) -> bool:
    faces = det.detect(image)
    return bool(len(faces) and box_iou(faces.xyxy, box[None]).max() >= iou)


@dataclass(frozen=True)
class OriginalFace:
    """What an original contributes, whatever the anonymization: measured once per file.

    ``box`` is ``None`` when no locator finds a face; ``hits`` says whether each residual
    detector finds the face on the original; ``embedding`` is its dlib embedding.
    """

    box: np.ndarray | None
    hits: dict[str, bool] = field(default_factory=dict)
    embedding: np.ndarray | None = None


OriginalCache = dict[str, OriginalFace]
"""Relative path -> :class:`OriginalFace`. Pass the same dict to several
:func:`evaluate_privacy` calls on the same originals and config (as ``veil eval compare``
does for every method) so that each original is located, detected and embedded once."""


Task = tuple[Path, Path, OriginalFace | None]
"""(original path, anonymized path, the original's face if already measured)."""


@dataclass(frozen=True)
class PairResult:
    """One pair measured: the original's face, the anonymized side, or why it could not be."""

    original: OriginalFace | None = None
    hits: dict[str, bool] = field(default_factory=dict)  # residual detector -> found
    queries: dict[str, np.ndarray] = field(default_factory=dict)  # "none"/attack -> embedding
    unreadable: str | None = None
    size_mismatch: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)


def _load_pair(src: Path, dst: Path) -> tuple[np.ndarray, np.ndarray] | PairResult:
    try:
        original, anonymized = read_image(src).image, read_image(dst).image
    except VeilError as exc:
        return PairResult(unreadable=str(exc))
    if original.shape != anonymized.shape:
        (h0, w0), (h1, w1) = original.shape[:2], anonymized.shape[:2]
        return PairResult(size_mismatch=f"{w0}x{h0} vs {w1}x{h1}")
    return original, anonymized


class _PairMeter:
    """Measures one pair with detectors and an embedder built once (one per process)."""

    def __init__(self, config: PrivacyConfig, embedder: FaceEmbedder | None = None) -> None:
        self.config = config
        self.embedder = embedder or FaceEmbedder()
        self.dets = _Detectors()

    def original(self, image: np.ndarray) -> OriginalFace:
        box = _locate(image, self.config.locators, self.dets)
        if box is None:
            return OriginalFace(box=None)
        hits = {}
        for name in self.config.detectors:
            det = self.dets.get(name)
            if det is not None:
                hits[name] = _found(det, image, box, self.config.residual_iou)
        return OriginalFace(box, hits, self.embedder.embed(image, box))

    def __call__(self, task: Task) -> PairResult:
        src, dst, known = task
        loaded = _load_pair(src, dst)
        if isinstance(loaded, PairResult):
            return loaded
        original, anonymized = loaded
        face = known if known is not None else self.original(original)
        if face.box is None:
            return PairResult(original=face, unavailable=dict(self.dets.unavailable))
        hits = {}
        for name in self.config.detectors:
            det = self.dets.get(name)
            if det is not None:
                hits[name] = _found(det, anonymized, face.box, self.config.residual_iou)
        queries = {"none": self.embedder.embed(anonymized, face.box)}
        for attack in self.config.attacks:
            attacked = ATTACKS[attack](anonymized, face.box)
            queries[attack] = self.embedder.embed(attacked, face.box)
        return PairResult(face, hits, queries, unavailable=dict(self.dets.unavailable))


_WORKER: _PairMeter | None = None  # the meter of a pool worker process


def _init_worker(config: PrivacyConfig) -> None:
    global _WORKER
    _WORKER = _PairMeter(config)


def _in_worker(task: Task) -> PairResult:
    assert _WORKER is not None, "pool worker used before its initializer ran"
    return _WORKER(task)


def pair_results(
    tasks: list[Task],
    config: PrivacyConfig,
    embedder: FaceEmbedder | None,
    workers: int,
) -> Iterator[PairResult]:
    """Results in the order of ``tasks``: in this process, or in ``workers`` processes."""
    if workers <= 1 or len(tasks) < 2:
        yield from map(_PairMeter(config, embedder), tasks)
        return
    # spawn, not fork: the parent may hold OpenVINO and dlib threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=context, initializer=_init_worker, initargs=(config,)
    ) as pool:
        yield from pool.map(_in_worker, tasks, chunksize=2)
