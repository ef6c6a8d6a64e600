"""Ctrl-C and SIGTERM: a request to stop at the next safe point, then a documented exit.

A batch job's scheduler (Slurm) sends SIGTERM some seconds before it kills a job; a person
presses Ctrl-C (SIGINT). Either one, caught by :func:`stop_on_signals`, only sets
:attr:`StopRequest.signum`; a long-running stage looks at it where stopping loses nothing (a
training batch boundary), saves what it must, and raises :class:`Interrupted`. A second
signal of the same kind stops at once. The command line ends with status ``128 + signal``
(130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Interrupted", "StopRequest", "stop_on_signals", "raise_on_sigterm", "restore_sigterm",
           "signal_name", "exit_code_for"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_code_for(signum: int) -> int:
    return 128 + int(signum)


class Interrupted(BaseException):
    """The run stopped on a signal; ``saved`` says what was kept (or is empty).

    A :class:`BaseException`, like :class:`KeyboardInterrupt`, so ``except Exception``
    clauses that turn an input's problem into a per-file failure do not swallow it.
    """

    def __init__(self, signum: int, saved: str = ""):
        super().__init__(signal_name(signum))
        self.signum, self.saved = int(signum), saved


class StopRequest:
    """Set by a signal handler; read by the stage at its safe points."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals(announce=None) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM set the yielded request instead of killing the
    process; ``announce(signum)`` is called once when the first one arrives. The previous
    handlers come back when the block ends. Outside the main thread (where Python cannot
    install handlers) the request is never set."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    owner = os.getpid()

    def handle(signum, frame):
        if os.getpid() != owner:
            _in_child(signum)
            return
        if request.signum == signum:  # asked twice: stop now
            raise Interrupted(signum)
        if request.signum is None:
            request.signum = signum
            if announce is not None:
                announce(signum)

    for signum in SIGNALS:
        signal.signal(signum, handle)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_on_sigterm() -> None:
    """Make SIGTERM unwind the stack like Ctrl-C does, so temporary outputs are removed and
    the command ends with its documented status instead of vanishing mid-write."""
    if threading.current_thread() is not threading.main_thread():
        return
    owner = os.getpid()

    def handle(signum, frame):
        if os.getpid() != owner:
            _in_child(signum)
            return
        raise Interrupted(signum)

    signal.signal(signal.SIGTERM, handle)


def restore_sigterm() -> None:
    """SIGTERM ends the process again, as by default (the command is over)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _in_child(signum: int) -> None:
    """A forked worker (a reading pool's) inherits the handlers: it leaves Ctrl-C to the main
    process, which decides when to stop, and dies on SIGTERM as a worker should (that is how
    a pool ends its workers)."""
    if signum == signal.SIGINT:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
