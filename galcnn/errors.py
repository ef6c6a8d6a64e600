"""The one exception type a user sees: a problem they can fix, told in one line.

Every stage raises a subclass of :class:`GalcnnError` for a fatal problem (bad options, no
usable input, an output that exists); the command line prints its message on one line and
exits with status 1. Problems with single inputs are not exceptions: they are reported per
file and the run goes on.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GalcnnError", "DiskFull", "is_disk_full", "naming_output"]


class GalcnnError(ValueError):
    """A fatal, user-fixable problem; the message is one line that names what is wrong."""


class DiskFull(GalcnnError):
    """The file system holding an output is full (or the user's quota is spent)."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def naming_output(path: str, kept: str = "") -> Iterator[None]:
    """Turn a full disk while writing ``path`` into one line that names the output and says
    what was kept (a write error alone names no file)."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFull(f"no space left on device writing {path}" + (f"; {kept}" if kept else "")
                       ) from None
