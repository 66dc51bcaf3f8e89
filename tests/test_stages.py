"""``veil.stages.run_stages``: ordered results, ordered single-worker stages, bounded
memory, errors reach the consumer, serial mode."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest

from veil.errors import ConfigError
from veil.stages import Stage, run_stages


def _jitter(seed: int) -> None:
    time.sleep(random.Random(seed).uniform(0, 0.004))


def test_results_come_back_in_input_order_whatever_the_timing() -> None:
    seen_by_last: list[int] = []

    def slow_square(x: int) -> int:
        _jitter(x)
        return x * x

    def record(x: int) -> int:  # one worker: sees the items in input order
        seen_by_last.append(x)
        return x + 1

    stages = (
        Stage("a", slow_square, 3),
        Stage("b", lambda x: (_jitter(x + 7), x)[1], 2),
        Stage("c", record, 1),
    )
    out = list(run_stages(range(40), stages, in_flight=6))
    assert out == [x * x + 1 for x in range(40)]
    assert seen_by_last == [x * x for x in range(40)]


def test_at_most_in_flight_items_are_taken_ahead_of_the_consumer() -> None:
    pulled = 0

    def items() -> Iterator[int]:
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield i

    stages = (Stage("a", lambda x: x, 2), Stage("b", lambda x: x, 2))
    for received, _ in enumerate(run_stages(items(), stages, in_flight=4), start=1):
        assert pulled <= received + 4
        time.sleep(0.001)  # a slow consumer: the stages must wait for it


@pytest.mark.parametrize(("serial", "overlap"), [(False, 3), (True, 1)])
def test_stages_work_at_the_same_time(serial: bool, overlap: int) -> None:
    """A reader, a worker and a writer of one thread each are all busy at once (on
    different items); serially, never more than one of them."""
    lock, active, most = threading.Lock(), [0], [0]

    def busy(x: int) -> int:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return x

    stages = [Stage(name, busy, 1) for name in ("read", "work", "write")]
    assert list(run_stages(range(12), stages, in_flight=6, serial=serial)) == list(range(12))
    assert most[0] == overlap


def test_an_error_in_a_stage_reaches_the_consumer_and_stops_the_pools() -> None:
    def fail_on_5(x: int) -> int:
        if x == 5:
            raise RuntimeError("stage broke on 5")
        return x

    before = threading.active_count()
    got = []
    with pytest.raises(RuntimeError, match="stage broke on 5"):
        for x in run_stages(
            range(100), (Stage("a", fail_on_5, 2), Stage("b", abs, 2)), in_flight=4
        ):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before, "stage threads left running"


def test_serial_mode_runs_inline_with_the_same_results() -> None:
    names: set[str] = set()

    def where(x: int) -> int:
        names.add(threading.current_thread().name)
        return -x

    out = list(
        run_stages(range(5), (Stage("a", where, 4), Stage("b", abs, 3)), in_flight=2, serial=True)
    )
    assert out == list(range(5))
    assert names == {threading.current_thread().name}


@pytest.mark.parametrize(("workers", "in_flight"), [(0, 2), (1, 0)])
def test_bad_sizes_are_refused(workers: int, in_flight: int) -> None:
    with pytest.raises(ConfigError):
        list(run_stages(range(3), (Stage("a", abs, workers),), in_flight=in_flight))
