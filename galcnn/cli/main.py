"""The ``galcnn`` command group, its exit codes, and the helper every command runs through.

Exit status, the same for every command and the same mistake: 0 everything worked; 1 nothing
was done (a fatal problem, explained in one line); 2 a usage error (a bad option value, a
missing argument); 3 the command ran but some inputs failed (each named on stderr and in the
output); 130 / 143 stopped by Ctrl-C / SIGTERM (complete outputs kept; train saves a
resumable last.pt and prints the command that continues it).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

import click

from galcnn import __version__
from galcnn.errors import GalcnnError, as_typed, device_failure
from galcnn.interrupt import (Interrupted, exit_code_for, raise_on_sigterm, restore_sigterm,
                              signal_name)

__all__ = ["EXIT_OK", "EXIT_FATAL", "EXIT_USAGE", "EXIT_SOME_FAILED", "cli", "run",
           "report_failures", "command_line", "stdout", "stderr", "printable"]

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3

T = TypeVar("T")


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` as a terminal shows it literally: control characters (an ESC that would
    clear the screen, a carriage return that would overwrite the line) written as ``\\xNN``
    escapes, line breaks too unless ``newlines``. Everything a file, a table or an argument
    supplies goes through here before it reaches the terminal."""
    def escape(match: re.Match) -> str:
        char = match.group()
        return char if newlines and char == "\n" else f"\\x{ord(char):02x}"

    return _CONTROL.sub(escape, text)


class _PrintableFormatter(logging.Formatter):
    """Log lines with input-supplied text printed as text (:func:`printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), newlines=True)


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger = logging.getLogger("galcnn")
    logger.setLevel(level)
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("%(asctime)s galcnn %(levelname)s: %(message)s",
                                             datefmt="%Y-%m-%dT%H:%M:%S"))
    logger.addHandler(handler)
    logger.propagate = False


GLOBAL_OPTIONS = ("-v", "--verbose", "-q", "--quiet", "--max-pixels")


class _Group(click.Group):
    """The command group; an option of the group given after a command is explained."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        finally:  # a SIGTERM while the interpreter exits (torchrun ending the other ranks)
            restore_sigterm()  # ends the process, not an atexit callback with a traceback

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Interrupted) as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            command = ctx.invoked_subcommand or "command"
            click.echo(f"galcnn {command}: stopped by {signal_name(signum)}; outputs that were "
                       "complete are kept, none is half-written", err=True)
            raise click.exceptions.Exit(exit_code_for(signum)) from None
        except click.NoSuchOption as exc:
            if exc.option_name in GLOBAL_OPTIONS:
                command = exc.ctx.info_name if exc.ctx else "COMMAND"
                exc.message = (f"{exc.option_name} is a global option: it goes before the "
                               f"command, as in 'galcnn {exc.option_name} {command} ...'")
                exc.possibilities = None
            raise


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="galcnn")
@click.option("-v", "--verbose", count=True, help="More log detail (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, metavar="N",
              help="Refuse a cutout whose header declares more pixels, before decoding it "
                   "[default: 67108864, 8192 x 8192; also GALCNN_MAX_PIXELS].")
def cli(verbose: int, quiet: bool, max_pixels: int | None) -> None:
    """Train CNN morphology classifiers on astronomical FITS cutouts.

    Exit status: 0 all inputs succeeded, 1 fatal error (nothing written), 2 usage error,
    3 finished but some inputs failed (listed in the output), 130 / 143 stopped by Ctrl-C /
    SIGTERM (train saves a resumable last.pt first).
    """
    _configure_logging(-1 if quiet else verbose)
    if max_pixels is not None:  # read by every reading process (galcnn.data.fitsio)
        os.environ["GALCNN_MAX_PIXELS"] = str(max_pixels)
    raise_on_sigterm()


def run(function: Callable[..., T], *args, **kwargs) -> T:
    """Call the library function a command wraps: its one-line errors (and any error of the
    file system, such as an output path that cannot be written) end the command with exit
    status 1 and that line, never a traceback."""
    try:
        return function(*args, **kwargs)
    except GalcnnError as exc:
        raise click.ClickException(printable(as_typed(exc))) from None
    except OSError as exc:
        raise click.ClickException(printable(_describe(exc))) from None
    except RuntimeError as exc:
        line = device_failure(exc, _memory_hint())
        if line is None:
            raise
        raise click.ClickException(printable(line)) from None


def run_with_progress(name: str, unit: str, function: Callable[..., T], *args,
                      **kwargs) -> T:
    """:func:`run` with a live progress display, which ``function`` starts by calling its
    ``progress(total)`` argument."""
    from galcnn.progress import progress_reporter

    with ExitStack() as stack:
        def reporter(total: int):
            return stack.enter_context(progress_reporter(total, name, unit=unit))

        return run(function, *args, progress=reporter, **kwargs)


def _memory_hint() -> str:
    """What to make smaller when the GPU runs out of memory, with the value now in use."""
    context = click.get_current_context(silent=True)
    params = context.params if context else {}
    if context is not None and context.info_name == "segment":
        return f"use a smaller --tile (now {params.get('tile')}) or --batch-size"
    size = params.get("batch_size")
    return "use a smaller --batch-size" + (f" (now {size})" if size else "")


def _describe(exc: OSError) -> str:
    """``PATH: reason`` of a file-system error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    name = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{name}: {reason}"


def command_line() -> str:
    """The command as typed, for provenance records."""
    return "galcnn " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _console(**options):
    """A rich console that prints strings as text: no markup (a class named ``[/]`` or a
    path ``results[v2]/`` is not a tag), no highlighting, no wrapping of long paths, and
    control characters escaped (:func:`printable`); rich objects (tables) it renders as
    they are, their cells made with :func:`printable` by the commands."""
    from rich.console import Console

    class PrintableConsole(Console):
        def print(self, *objects, **kwargs):
            kwargs.setdefault("markup", False)
            super().print(*(printable(o, newlines=True) if isinstance(o, str) else o
                            for o in objects), **kwargs)

    return PrintableConsole(highlight=False, soft_wrap=True, markup=False, **options)


def stdout():
    """The console for results (:func:`_console`)."""
    return _console()


def stderr():
    """The console for messages (:func:`_console`)."""
    return _console(stderr=True)


def report_failures(command: str, failures: list[tuple[str, str]], where: str,
                    limit: int = 50, together: int = 4) -> None:
    """Failed (or flagged) inputs on stderr: ``galcnn COMMAND: FILE: problem`` per file, at
    most ``limit`` lines; a problem shared by ``together`` inputs or more is said once, with
    the count and an example (a model that needs other bands fails every file the same
    way)."""
    by_problem: dict[str, list[str]] = {}
    for path, problem in failures:
        by_problem.setdefault(problem, []).append(path)
    lines = []
    for problem, paths in by_problem.items():
        if len(paths) >= together:
            lines.append(f"galcnn {command}: {len(paths)} inputs: {problem} (e.g. {paths[0]})")
        else:
            lines.extend(f"galcnn {command}: {path}: {problem}" for path in paths)
    err = stderr()
    for line in lines[:limit]:
        err.print(printable(line))
    if len(lines) > limit:
        err.print(f"galcnn {command}: ... and {len(lines) - limit} more ({where})",
                  markup=False)
