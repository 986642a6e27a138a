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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
Advance = Callable[[int], None]

_stderr = Console(stderr=True)


def console() -> Console:
    """Standard output, sized when a command prints (so $COLUMNS set by then counts)."""
    return Console(soft_wrap=True)  # text lines stay whole; tables still fit the width


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Advance]:
    """Yield ``advance(n)``; draws a bar on stderr only when it is a terminal."""
    if not _stderr.is_terminal:
        yield lambda n=1: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=_stderr, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
