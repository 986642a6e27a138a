"""What a read-only query is on every backend: its result, its messages, and
how a timer or another thread stops it while it runs.

:mod:`healthsim_state.store.query` runs the query; each backend's way of
running it is its dialect's (:meth:`StoreDialect.run_read_only`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from healthsim_models.errors import QueryError, QueryTimeoutError
from healthsim_state.store.messages import database_message

ENV_TIMEOUT = "HEALTHSIM_QUERY_TIMEOUT"

#: One message for several statements, whichever backend noticed.
ONE_STATEMENT = "expected one SQL statement, got several: run them one at a time"
CANCELLED = "the query was cancelled before it finished; nothing was changed"


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of one query; ``truncated`` when rows beyond ``max_rows`` were left out.

    Values are plain Python: str, int, float, bool, None, ``Decimal``,
    ``date``/``datetime`` (aware ones in UTC), ``uuid.UUID``, lists and dicts
    (JSON columns decoded). :meth:`records` and :func:`json_value` turn them
    into JSON types.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready object per row, keyed by column name."""
        repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if repeated:
            raise QueryError(
                f"the result has several columns named {', '.join(map(repr, repeated))}; "
                "give each its own name (SELECT ... AS name) to get one object per row"
            )
        return [{name: json_value(value) for name, value in zip(self.columns, row, strict=True)} for row in self.rows]


def json_value(value: Any) -> Any:
    """``value`` as JSON types, deterministically: decimals, dates, times, UUIDs,
    intervals and non-finite floats become strings, bytes base64 text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    if isinstance(value, Decimal | dt.date | dt.time | uuid.UUID | dt.timedelta):
        return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def normalise(row: Sequence[Any], json_columns: Iterable[int]) -> tuple[Any, ...]:
    """A result row with aware date-times in UTC and the JSON columns (by index) decoded."""
    values = [_utc(v) if isinstance(v, dt.datetime) else v for v in row]
    for i in json_columns:
        if isinstance(values[i], str):
            values[i] = json.loads(values[i])
    return tuple(values)


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware date-times in UTC, so results do not depend on the session's time zone."""
    return value.astimezone(dt.UTC) if value.tzinfo is not None else value


def failed(exc: BaseException) -> QueryError:
    """The error for SQL the database refused, with its message and hint on one line."""
    return QueryError(f"query failed: {database_message(exc, with_hint=True)}")


def timed_out(seconds: float) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"the query ran longer than {seconds:g} s and was cancelled; nothing was changed. Narrow the query, "
        f"or raise the limit: --timeout SECONDS (healthsim query), the timeout argument (run_query, "
        f"the MCP query tool) or {ENV_TIMEOUT}"
    )


class Cancellation:
    """Stops a running :func:`run_query` from another thread: pass it as
    ``cancellation=``, then call :meth:`cancel`.

    The query then raises :class:`QueryError` saying it was cancelled; a
    cancellation before the query starts stops it before it runs, one after
    it ended does nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._stop: Callable[[str], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            stop = self._stop
        if stop is not None:
            stop("cancelled")

    def _attach(self, stop: Callable[[str], None] | None) -> None:
        with self._lock:
            if stop is not None and self._cancelled:
                raise QueryError(CANCELLED)
            self._stop = stop


class Stopper:
    """Stops the statement running on one connection and remembers the first
    reason ("timeout" or "cancelled"); does nothing once the caller is done with the connection."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._live = True
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        # Under the lock: the connection is never closed or handed back while it is being stopped.
        with self._lock:
            if not self._live:
                return
            if self.reason is None:
                self.reason = reason
            # Every time: a stop that came between two statements may have been lost, the timer's must not be.
            self._stop()

    def finish(self) -> None:
        with self._lock:
            self._live = False


@contextmanager
def stoppable(stopper: Stopper, cancellation: Cancellation | None, timer: float | None) -> Iterator[None]:
    """While the block runs, ``cancellation`` (and, after ``timer`` seconds, a timer thread) may stop it."""
    if cancellation is not None:
        cancellation._attach(stopper)
    alarm = None
    if timer is not None:
        alarm = threading.Timer(timer, stopper, args=("timeout",))
        alarm.daemon = True
        alarm.start()
    try:
        yield
    finally:
        stopper.finish()
        if alarm is not None:
            alarm.cancel()
        if cancellation is not None:
            cancellation._attach(None)
