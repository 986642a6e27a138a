"""What commands draw: standard output, and progress bars on stderr.

Progress bars appear only when stderr is a terminal. Library code reports
progress by consuming iterables; commands wrap those iterables with
:func:`healthsim_state.formats.common.counted`, so the library never knows
about terminals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")
Advance = Callable[[int], None]

_stderr = Console(stderr=True)


def console() -> Console:
    """Standard output, sized when a command prints (so $COLUMNS set by then counts)."""
    return Console(soft_wrap=True)  # text lines stay whole; tables still fit the width


class _Rate(ProgressColumn):
    """Items per second, as the bar has measured them lately."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s")


@contextmanager
def progress(description: str, total: int | None = None, *, rate: str | None = None) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a bar on stderr only when it is a terminal.
    ``rate``: the unit counted (``entities``), to show items per second and the time left."""
    if not _stderr.is_terminal:
        yield lambda n=1: None
        return
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    if rate is not None:
        columns += [_Rate(rate), TextColumn("left"), TimeRemainingColumn()]
    with Progress(*columns, console=_stderr, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
