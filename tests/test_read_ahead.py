"""read_ahead gives a source's items in order, its exceptions in their place,
stays within its depth, and stops its thread when the reader stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthsim_state.formats.read_ahead import read_ahead


@settings(max_examples=50, deadline=None)
@given(items=st.lists(st.integers(), max_size=30), depth=st.integers(0, 4))
def test_every_item_in_order(items: list[int], depth: int) -> None:
    assert list(read_ahead(items, depth)) == items


def test_an_exception_comes_in_its_place() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("line 3 is broken")

    got = []
    with pytest.raises(ValueError, match="line 3 is broken"):
        for item in read_ahead(source(), 2):
            got.append(item)
    assert got == [1, 2]


def test_it_makes_no_more_than_its_depth_ahead() -> None:
    made = []

    def source() -> Iterator[int]:
        for i in range(100):
            made.append(i)
            yield i

    reader = read_ahead(source(), 3)
    assert next(reader) == 0
    time.sleep(0.3)  # time for the producer to run as far ahead as it may
    # 1 taken, 3 waiting, 1 made and blocked on the full queue.
    assert len(made) <= 5
    reader.close()


def test_leaving_early_stops_the_producer_and_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    before = threading.active_count()
    reader = read_ahead(source(), 2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert closed.is_set()
    assert threading.active_count() == before


def test_an_error_in_the_readers_loop_stops_the_producer() -> None:
    before = threading.active_count()
    with pytest.raises(KeyError):
        for item in read_ahead(iter(range(1_000_000)), 2):
            if item == 5:
                raise KeyError(item)
    assert threading.active_count() == before


def test_leaving_early_calls_stop_to_end_the_item_being_made() -> None:
    release = threading.Event()
    stops = []

    def source() -> Iterator[int]:
        yield 0
        release.wait(30)  # a long query, until stop interrupts it
        yield 1

    def stop() -> None:
        stops.append(1)
        release.set()

    started = time.perf_counter()
    reader = read_ahead(source(), 1, stop=stop)
    assert next(reader) == 0
    time.sleep(0.1)  # the producer is in the long query
    reader.close()
    assert stops == [1]
    assert time.perf_counter() - started < 10


def test_stop_is_not_called_when_the_items_run_out() -> None:
    stops = []
    assert list(read_ahead(iter(range(5)), 2, stop=lambda: stops.append(1))) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        list(read_ahead(map(int, ["1", "x"]), 2, stop=lambda: stops.append(1)))
    assert stops == []
