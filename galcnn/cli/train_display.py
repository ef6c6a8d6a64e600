"""What ``galcnn train`` shows on a terminal: one live bar for the epoch in progress, and above
it a table that grows one row per finished epoch.

Rows are printed above rich's live region (not redrawn inside it), so they scroll into the
terminal's history intact however long the run; log records are routed the same way so they
never land on the bar. Off a terminal none of this runs: the logger's plain per-epoch lines
say the same.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn)

from galcnn.cli.main import printable
from galcnn.interrupt import signal_name

__all__ = ["TrainDisplay", "format_row", "header"]

_COLUMNS = (("epoch", 7), ("loss", 9), ("acc", 7), ("val loss", 10), ("val acc", 9),
            (None, 10), ("images/s", 10), ("time", 8))


def header(score_name: str) -> str:
    """The table's column names, aligned with :func:`format_row`."""
    names = [name or score_name for name, _ in _COLUMNS]
    return "".join(f"{name:>{width}}" for name, (_, width) in zip(names, _COLUMNS))


def format_row(row: dict, epochs: int, score_column: str) -> str:
    """One finished epoch: ``epoch/epochs``, training loss and accuracy, validation loss,
    accuracy and score, training throughput, the epoch's wall time, and ``best``."""
    values = [f"{row['epoch']}/{epochs}", f"{row['train_loss']:.4f}",
              f"{row['train_accuracy']:.3f}", f"{row['val_loss']:.4f}",
              f"{row['val_accuracy']:.3f}", f"{row[score_column]:.3f}",
              f"{row['images_per_s']:,.0f}", _duration(row["seconds"])]
    line = "".join(f"{value:>{width}}" for value, (_, width) in zip(values, _COLUMNS))
    return line + ("  best" if row.get("best") else "")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


class _ConsoleHandler(logging.Handler):
    """Log records printed above the live region; per-epoch lines are left to the table."""

    def __init__(self, console: Console, formatter: logging.Formatter | None):
        super().__init__()
        self.console = console
        self.setFormatter(formatter or logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "epoch_row"):
            return
        self.console.print(printable(self.format(record), newlines=True), markup=False,
                           highlight=False, soft_wrap=True)


class TrainDisplay:
    """The live display of one run; use as a context manager, pass :meth:`start_epoch` as
    train's ``progress`` and :meth:`end_epoch` as its ``on_epoch_end``."""

    def __init__(self, epochs: int, score_name: str, score_column: str,
                 console: Console | None = None):
        self.epochs, self.score_name, self.score_column = epochs, score_name, score_column
        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("images"), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("{task.fields[phase]}"), console=self.console,
            speed_estimate_period=24 * 3600.0, transient=True)
        self.task = None
        self.epoch_seconds: list[float] = []
        self.header_shown = False
        self._logger = logging.getLogger("galcnn")
        self._saved_handlers: list[logging.Handler] = []

    def __enter__(self) -> TrainDisplay:
        self.progress.start()
        self._saved_handlers = list(self._logger.handlers)
        formatter = self._saved_handlers[0].formatter if self._saved_handlers else None
        self._logger.handlers = [_ConsoleHandler(self.console, formatter)]
        return self

    def __exit__(self, *exc) -> None:
        self._finish_task()
        self.progress.stop()
        self._logger.handlers = self._saved_handlers

    def start_epoch(self, epoch: int, n_images: int):
        """A fresh bar over this epoch's ``n_images``; returns ``advance(n)``."""
        if not self.header_shown:
            self.console.print(header(self.score_name), style="bold", highlight=False)
            self.header_shown = True
        self._finish_task()
        task = self.progress.add_task("train", total=n_images, epoch=epoch + 1,
                                      epochs=self.epochs, rate="", phase=self._left(epoch))
        self.task = task

        def advance(n: int) -> None:
            self.progress.advance(task, n)
            state = next(t for t in self.progress.tasks if t.id == task)
            speed = state.speed
            fields = {"rate": f"{speed:,.0f}/s" if speed else ""}
            if state.completed >= n_images:
                fields["phase"] = "validating"
            self.progress.update(task, **fields)

        return advance

    def end_epoch(self, row: dict) -> None:
        """Replace the bar with the epoch's row."""
        self._finish_task()
        self.epoch_seconds.append(float(row["seconds"]))
        self.console.print(format_row(row, self.epochs, self.score_column), highlight=False,
                           style="green" if row.get("best") else None)

    def announce_stop(self, signum: int) -> None:
        self.console.print(f"{signal_name(signum)}: stopping after this batch and saving "
                           "last.pt (press again to stop at once, without saving)",
                           style="yellow", highlight=False)

    def _left(self, epoch: int) -> str:
        """A rough time left for the run (this epoch included), from the epochs so far."""
        if not self.epoch_seconds:
            return ""
        remaining = self.epochs - epoch
        mean = sum(self.epoch_seconds) / len(self.epoch_seconds)
        return f"~{_duration(remaining * mean)} left (at most)"

    def _finish_task(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
