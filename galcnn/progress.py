"""Progress for long loops: a rich bar on a terminal, plain periodic log lines elsewhere.

Batch jobs and pipelines capture stderr into log files, where a redrawn bar is noise; so the
bar is shown only when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_reporter"]

logger = logging.getLogger("galcnn")


@contextmanager
def progress_reporter(total: int, description: str, *, unit: str = "items",
                      interval: float = 10.0, terminal: bool | None = None
                      ) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; report as a bar (terminal) or a log line every ``interval`` s."""
    if terminal is None:
        terminal = sys.stderr.isatty()
    if terminal:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text("" if speed is None else f"{speed:,.1f} {unit}/s")

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   RateColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
        return

    start = last = time.monotonic()
    done = 0

    def advance(n: int = 1) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= interval:
            last = now
            rate = done / max(now - start, 1e-9)
            logger.info("%s: %d/%d %s (%.1f %s/s)", description, done, total, unit, rate, unit)

    yield advance
    elapsed = time.monotonic() - start
    logger.info("%s: %d/%d %s in %.1f s (%.1f %s/s)", description, done, total, unit, elapsed,
                done / max(elapsed, 1e-9), unit)
