"""Read ahead: a source's items made on a thread of their own while the caller uses the last ones.

An importer reads record batches with DuckDB, which runs without Python's
lock, and hands them to the store's writer, which spends most of its time
in Python: :func:`read_ahead` lets the next batches be read meanwhile, on
the machine's other core, a bounded number at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: How often a producer blocked on a full queue looks whether the reader has stopped, in seconds.
_POLL = 0.05


class _End:
    """What the producer puts after the last item."""


def read_ahead(items: Iterable[T], depth: int, *, stop: Callable[[], None] | None = None) -> Iterator[T]:
    """``items``, in their order, made ahead of the caller on a thread of
    their own: up to ``depth`` wait for the caller, and one more may be in
    the making (with ``depth`` 0, all in the caller's thread).

    An exception the source raises is raised here, in its place among the
    items. Leaving early (closing this generator, or an exception in the
    caller's loop, a Ctrl-C included) calls ``stop`` if the producer is
    still making an item (to interrupt its query), and closes the source
    (a generator's cleanup runs in the producer's thread) once that item
    is made or given up; this generator returns only after the producer's
    thread has ended, so the source is not used after its reader is done.
    """
    if depth <= 0:
        yield from items
        return
    made: queue.Queue[tuple[BaseException | None, Any]] = queue.Queue(maxsize=depth)
    stopping = threading.Event()

    def put(entry: tuple[BaseException | None, Any]) -> bool:
        while not stopping.is_set():
            try:
                made.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    source = iter(items)

    def produce() -> None:
        try:
            for item in source:
                if not put((None, item)):
                    return
            put((None, _End))
        except BaseException as exc:  # handed to the reader, who raises it
            put((exc, None))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's own cleanup (a cursor it holds), here, before the thread ends

    producer = threading.Thread(target=produce, name="healthsim-read-ahead", daemon=True)
    producer.start()
    ended = False  # the producer put its last entry (the end, or the source's exception)
    try:
        while True:
            error, item = made.get()
            if error is not None:
                ended = True
                raise error
            if item is _End:
                ended = True
                return
            yield item
    finally:
        stopping.set()
        if stop is not None and not ended:
            stop()
        while producer.is_alive():
            try:
                made.get(timeout=_POLL)  # a producer blocked on a full queue goes on and sees the stop
            except queue.Empty:
                continue
        producer.join()
