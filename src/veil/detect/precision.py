"""Inference settings chosen by measurement, once per machine.

The fastest setting differs between CPUs: on one AVX-512 Xeon OpenVINO's default (bf16)
ran CenterFace 1.5x slower than f32, on an AMD EPYC it was 2x faster. So at first use
:func:`select` builds every candidate runner (OpenVINO f32 / bf16 / int8, ONNX Runtime),
checks that each finds the same faces as the f32 reference on generated inputs, times the
ones that do (interleaved, medians) and keeps the fastest. The choice is cached as JSON in
veil's cache folder under a key that changes with the CPU, the libraries, the model and the
thread count, so later runs only read it.

This module knows nothing about CenterFace: a candidate is a name, a precision and a
function that builds a runner (``inputs -> list of output arrays``); the caller supplies
the inputs and how outputs become boxes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil._machine import file_lock
from veil.boxes import box_iou
from veil.errors import BackendError, ConfigError

__all__ = [
    "PRECISIONS",
    "PRECISION_ENV",
    "Candidate",
    "Choice",
    "ChoiceCache",
    "lost_boxes",
    "measure",
    "resolve_precision",
    "select",
]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32", "bf16", "int8")
#: environment variable overriding the default precision (``auto``)
PRECISION_ENV = "VEIL_PRECISION"
#: a candidate's boxes must overlap every box of the f32 reference this much
MATCH_IOU = 0.9
#: another candidate replaces the f32 reference only when it is at least this much faster
MARGIN = 0.05

Runner = Callable[[np.ndarray], list[np.ndarray]]
#: outputs of a runner for one input -> boxes ``xyxy (n, 4)`` per image of that input
Decode = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class Candidate:
    """One way to run the model: ``name`` (``"openvino-bf16"``), its ``precision`` (``f32``
    candidates can be the reference) and ``build`` (returns the runner; may raise)."""

    name: str
    precision: str
    build: Callable[[], Runner]


@dataclass(frozen=True)
class Choice:
    """What :func:`select` chose and why: per-candidate time (ms for one pass over the
    inputs, the sum of per-input medians) and the candidates ruled out (``refused``: failed,
    more than 3x slower, or lost an f32 box) with the reason."""

    name: str
    reason: str
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)
    measured: bool = True  # False when read from the cache

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "timings_ms": dict(self.timings_ms),
            "refused": dict(self.refused),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        return cls(
            name=str(data["name"]),
            reason=str(data["reason"]),
            timings_ms={str(k): float(v) for k, v in data.get("timings_ms", {}).items()},
            refused={str(k): str(v) for k, v in data.get("refused", {}).items()},
            measured=False,
        )


def resolve_precision(precision: str | None) -> str:
    """``precision``, else ``$VEIL_PRECISION``, else ``"auto"``; raises ``ConfigError`` for
    a value that is not one of :data:`PRECISIONS`."""
    source = "precision"
    if precision is None:
        precision, source = os.environ.get(PRECISION_ENV) or "auto", PRECISION_ENV
    value = precision.strip().lower()
    if value not in PRECISIONS:
        raise ConfigError(f"{source} must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return value


def lost_boxes(reference: np.ndarray, boxes: np.ndarray, iou: float = MATCH_IOU) -> int:
    """How many reference boxes ``(n, 4)`` have no box in ``boxes`` with IoU >= ``iou``
    (extra boxes are allowed: they only mask more)."""
    if len(reference) == 0 or len(boxes) == 0:
        return len(reference)
    return int(np.sum(box_iou(reference, boxes).max(axis=1) < iou))


class ChoiceCache:
    """Choices in one JSON file, by key; unreadable files count as empty, write errors
    are logged (a cache must never stop a run)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @staticmethod
    def key(fields: Mapping[str, Any]) -> str:
        text = json.dumps(dict(fields), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock on ``<file>.lock`` (threads and processes): of several workers
        starting together one measures, the others then read its choice."""
        return file_lock(self.path.with_name(self.path.name + ".lock"))

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, fields: Mapping[str, Any]) -> Choice | None:
        entry = self._read().get(self.key(fields))
        try:
            return Choice.from_dict(entry["choice"]) if isinstance(entry, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, fields: Mapping[str, Any], choice: Choice) -> None:
        data = self._read()
        data[self.key(fields)] = {
            "key": dict(fields),
            "choice": choice.to_dict(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".precision-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, default=str)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shared cache folder must read it
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write the precision cache %s: %s", self.path, exc)


def _run_all(runner: Runner, inputs: Sequence[np.ndarray], decode: Decode) -> list[np.ndarray]:
    return [b for x in inputs for b in decode(runner(x))]


def _quick(
    candidates: Sequence[Candidate], probe: np.ndarray, refused: dict[str, str]
) -> tuple[dict[str, Runner], dict[str, float]]:
    """Build each candidate and time its second pass on ``probe`` (the first plans the
    shape); one that fails is refused."""
    runners: dict[str, Runner] = {}
    quick: dict[str, float] = {}
    for cand in candidates:
        try:
            runner = cand.build()
            runner(probe)
            t0 = time.perf_counter()
            runner(probe)
            quick[cand.name] = 1000 * (time.perf_counter() - t0)
            runners[cand.name] = runner
        except Exception as exc:
            refused[cand.name] = f"failed: {type(exc).__name__}: {exc}"
            log.info("precision candidate %s skipped: %s", cand.name, refused[cand.name])
    return runners, quick


def _check(
    candidates: Sequence[Candidate], inputs: Sequence[np.ndarray], decode: Decode
) -> tuple[dict[str, Runner], dict[str, str], str, str]:
    """Build every candidate, rule out those more than 3x slower than the fastest on the
    smallest input (except the f32 reference), warm up the others on every input and
    compare their boxes with the first working f32 one.
    Returns (accepted runners, refused reasons, reference name, note)."""
    refused: dict[str, str] = {}
    probe = min(inputs, key=lambda x: x.size)
    runners, quick = _quick(candidates, probe, refused)
    f32 = [c.name for c in candidates if c.precision == "f32" and c.name in runners]
    fastest = min(quick.values(), default=0.0)
    shape = "x".join(map(str, probe.shape))
    for name in list(runners):
        if name not in f32[:1] and quick[name] > 3 * fastest:
            refused[name] = (
                f"{quick[name] / fastest:.1f}x slower than the fastest on a {shape} input "
                f"({quick[name]:.1f} ms vs {fastest:.1f} ms)"
            )
            del runners[name]
    found: dict[str, list[np.ndarray]] = {}
    for name in list(runners):
        try:
            found[name] = _run_all(runners[name], inputs, decode)  # warm-up: shapes planned
        except Exception as exc:
            refused[name] = f"failed: {type(exc).__name__}: {exc}"
            del runners[name]
    reference = next((n for n in f32 if n in found), "")
    if not reference:
        raise BackendError(f"no f32 backend could run the model: {refused}")
    ref = found[reference]
    total = sum(len(b) for b in ref)
    if total == 0:
        return {reference: runners[reference]}, refused, reference, "reference found no face"
    for name in list(runners):
        lost = sum(lost_boxes(r, b) for r, b in zip(ref, found[name], strict=True))
        if lost:
            refused[name] = f"boxes differ from {reference}: {lost} of {total} lost (IoU<0.9)"
            del runners[name]
    return runners, refused, reference, ""


def _time_rounds(
    runners: Mapping[str, Runner],
    inputs: Sequence[np.ndarray],
    budget_s: float,
    refused: dict[str, str],
    min_rounds: int = 3,
    max_rounds: int = 15,
) -> dict[str, float]:
    """ms per pass over ``inputs`` for each runner: candidates interleaved (the order
    rotates every round), the median of each input summed; at least ``min_rounds``, more
    while ``budget_s`` lasts. One more than twice as slow as the best after a round is
    not timed further; one that raises is refused."""
    times: dict[str, list[list[float]]] = {n: [[] for _ in inputs] for n in runners}
    active = list(times)
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while (
        active and rounds < max_rounds and (rounds < min_rounds or time.perf_counter() < deadline)
    ):
        shift = rounds % len(active)
        for name in active[shift:] + active[:shift]:
            try:
                for i, x in enumerate(inputs):
                    t0 = time.perf_counter()
                    runners[name](x)
                    times[name][i].append(time.perf_counter() - t0)
            except Exception as exc:
                refused[name] = f"failed while timed: {type(exc).__name__}: {exc}"
                del times[name]
        active = [n for n in active if n in times]
        rounds += 1
        if active:
            scores = {n: _score(times[n]) for n in active}
            best = min(scores.values())
            active = [n for n in active if scores[n] <= 2 * best]
    return {n: _score(t) for n, t in times.items()}


def _score(per_input: Sequence[Sequence[float]]) -> float:
    return 1000 * sum(statistics.median(t) for t in per_input)


def measure(
    candidates: Sequence[Candidate],
    inputs: Sequence[np.ndarray],
    decode: Decode,
    *,
    budget_s: float = 1.0,
) -> tuple[Choice, Runner]:
    """Choose among ``candidates`` by measurement on ``inputs``; returns the choice and
    the chosen runner. The reference is the first f32 candidate that runs; the others must
    keep every reference box (IoU >= 0.9) and be :data:`MARGIN` faster to replace it.
    Raises ``BackendError`` when no f32 candidate runs."""
    runners, refused, reference, note = _check(candidates, inputs, decode)
    if len(runners) == 1:
        why = note or "the only candidate that runs and keeps every box"
        return Choice(reference, f"{reference}: {why}", {}, refused), runners[reference]
    timings = _time_rounds(runners, inputs, budget_s, refused)
    if reference not in timings:  # the reference failed while timed: the fastest f32 left
        f32 = [c.name for c in candidates if c.precision == "f32" and c.name in timings]
        if not f32:
            raise BackendError(f"no f32 backend could run the model: {refused}")
        reference = min(f32, key=timings.__getitem__)
    accepted = {n: t for n, t in timings.items() if n not in refused}
    best = min(accepted, key=accepted.__getitem__)
    ms = ", ".join(f"{n} {t:.1f} ms" for n, t in sorted(timings.items(), key=lambda x: x[1]))
    if best != reference and accepted[best] > (1 - MARGIN) * accepted[reference]:
        reason = f"{reference}: no other setting was {MARGIN:.0%} faster ({ms})"
        best = reference
    elif best == reference:
        reason = f"{best}: fastest ({ms})"
    else:
        reason = f"{best}: fastest with the same faces as {reference} ({ms})"
    return Choice(best, reason, timings, refused), runners[best]


def select(
    candidates: Sequence[Candidate],
    inputs: Callable[[], Sequence[np.ndarray]],
    decode: Decode,
    *,
    key: Mapping[str, Any],
    cache: ChoiceCache | None,
    budget_s: float = 1.0,
) -> tuple[Choice, Runner]:
    """The cached choice for ``key`` when it names a candidate that still builds,
    otherwise :func:`measure` on ``inputs()`` (made only then) and cache the result."""
    if cache is None:
        return _measure_logged(candidates, inputs, decode, budget_s)
    with cache.lock():
        by_name = {c.name: c for c in candidates}
        cached = cache.get(key)
        if cached is not None and cached.name in by_name:
            try:
                runner = by_name[cached.name].build()
                log.info("inference: %s (cached choice: %s)", cached.name, cached.reason)
                return cached, runner
            except Exception as exc:
                log.info(
                    "cached choice %s no longer builds (%s); measuring again", cached.name, exc
                )
        choice, runner = _measure_logged(candidates, inputs, decode, budget_s)
        cache.put(key, choice)
    return choice, runner


def _measure_logged(
    candidates: Sequence[Candidate],
    inputs: Callable[[], Sequence[np.ndarray]],
    decode: Decode,
    budget_s: float,
) -> tuple[Choice, Runner]:
    t0 = time.perf_counter()
    choice, runner = measure(candidates, inputs(), decode, budget_s=budget_s)
    log.info("inference: %s; measured in %.1f s", choice.reason, time.perf_counter() - t0)
    for name, why in choice.refused.items():
        log.info("inference: %s refused: %s", name, why)
    return choice, runner
