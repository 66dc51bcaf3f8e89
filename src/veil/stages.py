"""Overlapping stages for folders: decode, process and encode at the same time.

:func:`run_stages` runs each item through a chain of functions, each stage on its own
pool of threads, so the JPEG/PNG decode of the next files, the detection of this one and
the encode of the previous ones overlap (Pillow, OpenCV, OpenVINO and ONNX Runtime
release the GIL while they work). Results come back in input order. A stage with one
worker runs the items in input order too (the RGB-D tracker relies on it).

Memory is bounded: at most ``in_flight`` items are between the first stage and the
consumer at any time, whatever the number of items (each holds a decoded image or a
result, never more). A stage's task waits only for the previous stage's result of the
same item, submitted earlier to a first-in-first-out pool, so the chain cannot deadlock.

Stage functions should turn their own errors into values (a failed outcome) that the
later stages pass through; an exception that escapes a stage is raised to the consumer
when that item's turn comes, and every pool is shut down (pending work cancelled).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from veil.errors import ConfigError

__all__ = ["Stage", "run_stages"]


@dataclass(frozen=True)
class Stage:
    """One step of :func:`run_stages`: ``fn`` takes the previous stage's result (the
    item itself for the first stage) on ``workers`` threads named ``veil-NAME``."""

    name: str
    fn: Callable[[Any], Any]
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"stage {self.name!r}: workers={self.workers}; expected >= 1")


def run_stages(
    items: Iterable[Any], stages: Sequence[Stage], *, in_flight: int, serial: bool = False
) -> Iterator[Any]:
    """Yield ``stages[-1].fn(... stages[0].fn(item))`` for each item, in input order.

    ``items`` is read lazily (a generator of a million jobs is fine). ``serial=True``
    runs every stage inline in the calling thread, one item after the other: the same
    results without any overlap (for tests and for comparing speed).
    """
    if in_flight < 1:
        raise ConfigError(f"in_flight={in_flight}; expected >= 1")
    if serial:
        for item in items:
            for stage in stages:
                item = stage.fn(item)
            yield item
        return
    with contextlib.ExitStack() as stack:
        pools = [ThreadPoolExecutor(s.workers, thread_name_prefix=f"veil-{s.name}") for s in stages]
        for pool in reversed(pools):  # on exit: cancel what has not started, join the rest
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        window: deque[Future[Any]] = deque()
        for item in items:
            if len(window) >= in_flight:
                yield window.popleft().result()
            future = pools[0].submit(stages[0].fn, item)
            for pool, stage in zip(pools[1:], stages[1:], strict=True):
                future = pool.submit(_after, stage.fn, future)
            window.append(future)
        while window:
            yield window.popleft().result()


def _after(fn: Callable[[Any], Any], previous: Future[Any]) -> Any:
    return fn(previous.result())
