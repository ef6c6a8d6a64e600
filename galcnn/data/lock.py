"""One writer per output: an exclusive lock that a second galcnn process is refused.

Two jobs writing the same output (an array script that forgot the task id in ``-o``, a
``--resume`` started while the first run still goes) would interleave or overwrite each
other. Every command holds ``DIR/.NAME.lock`` beside its output while it writes; a second
writer gets one line naming the output and the process that holds it. The lock is the
kernel's (``flock``), so a killed holder releases it at once and a stale lock file never
blocks anyone; the file is removed when the holder finishes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from galcnn.errors import GalcnnError

__all__ = ["OutputLocked", "output_lock", "lock_path", "new_directory_output"]


class OutputLocked(GalcnnError):
    """Another process is writing this output."""


def lock_path(path: str) -> str:
    """``DIR/.NAME.lock`` beside ``path`` (a file or a directory)."""
    directory, name = os.path.split(os.path.abspath(path.rstrip(os.sep) or path))
    return os.path.join(directory, f".{name}.lock")


def _holder(lock_file: str) -> str:
    try:
        with open(lock_file, encoding="utf-8") as handle:
            pid = handle.read().strip()
    except OSError:
        pid = ""
    return f" (pid {pid})" if pid.isdigit() else ""


@contextmanager
def output_lock(path: str) -> Iterator[None]:
    """Hold the exclusive lock on output ``path`` for the block; :class:`OutputLocked` when
    another process holds it. The directory that holds ``path`` must exist."""
    import fcntl

    lock_file = lock_path(path)
    while True:
        try:
            descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # the output's place cannot be written: name the output
            reason = exc.strerror or type(exc).__name__
            raise GalcnnError(f"{path}: cannot write there ({reason})") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(descriptor)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputLocked(f"{path} is being written by another galcnn process"
                               f"{_holder(lock_file)}; wait for it to finish or write to "
                               "another output") from None
        try:  # the holder before us may have removed the file we opened: lock the new one
            same = os.path.samestat(os.fstat(descriptor), os.stat(lock_file))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(descriptor)
    try:
        try:  # who holds it, for the message a second writer gets; not needed for the lock
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield
    finally:
        try:
            os.remove(lock_file)  # while still holding it, so nobody locks a removed file
        except OSError:
            pass
        os.close(descriptor)


@contextmanager
def new_directory_output(path: str, overwrite: bool, error: type[GalcnnError] = GalcnnError
                         ) -> Iterator[None]:
    """Claim an output directory for the block: its parent made, its lock held, what a
    killed run left behind cleared, an existing output refused unless ``overwrite`` (with
    ``error``), and a full disk named in one line. The output itself is written under a
    temporary name and moved into place (:func:`galcnn.data.atomic.replace_directory`)."""
    from galcnn.data.atomic import make_parent, remove_stale_temporaries
    from galcnn.errors import naming_output

    make_parent(path)
    with output_lock(path), naming_output(path, "nothing was written; an existing output "
                                                "is unchanged"):
        remove_stale_temporaries(path)
        if os.path.exists(path) and not overwrite:
            raise error(f"{path} already exists; use --overwrite to replace it")
        yield
