"""Outputs that appear only when complete: written under a temporary name, then renamed.

A job killed while writing leaves the previous output (or none) in place, never half of one.
The temporary name sits beside the target (same file system, so the rename is atomic) and
carries the process id and a random token drawn once per process: ``.NAME.tmp-PID-TOKEN``.
The token keeps two processes with the same pid apart (each container's galcnn is often pid 1
of its own namespace, writing to one shared file system).
"""

from __future__ import annotations

import csv
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from galcnn.errors import GalcnnError

__all__ = ["atomic_output", "temporary_path", "make_parent", "make_directory", "write_text",
           "write_json", "write_csv", "replace_directory", "remove_stale_temporaries",
           "scratch_prefix"]

_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)(-[0-9a-f]+)?(?P<old>\.old)?")
_TOKEN = secrets.token_hex(4)
_SCRATCH = re.compile(r"\.galcnn-scratch-(?P<pid>\d+)-.*")


def temporary_path(path: str) -> str:
    """``DIR/.NAME.tmp-PID-TOKEN`` beside ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}-{_TOKEN}")


def make_parent(path: str) -> None:
    """Create the directory that will hold ``path``; an error names the user's path (a file
    in the way, a missing or read-only directory), never a temporary one."""
    parent = os.path.dirname(os.path.abspath(path))
    ancestor = parent
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a directory", ancestor)
    os.makedirs(parent, exist_ok=True)


def make_directory(path: str) -> None:
    """Create an output directory (and its parents), with the errors of :func:`make_parent`."""
    make_parent(os.path.join(path, "x"))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path to write; rename it to ``path`` when the block succeeds.

    Whatever the block leaves at the temporary path (a file or a directory) is removed when
    the block fails, so no partial output is ever visible under ``path``.
    """
    make_parent(path)
    tmp = temporary_path(path)
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def write_text(path: str, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_csv(path: str, header: list[str] | tuple[str, ...], rows: Iterable) -> None:
    """A CSV file with ``header`` and ``rows`` (sequences, or dicts keyed by the header)."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(k, "") for k in header] if isinstance(row, dict) else row)


def _exchange(first: str, second: str) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                 rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), second)


def replace_directory(tmp_dir: str, out_dir: str, overwrite: bool) -> None:
    """Move a complete ``tmp_dir`` to ``out_dir``, replacing an existing one if ``overwrite``.

    The old and new directories are swapped in one step where the system can, so one of them
    is always in place; elsewhere the old one is first moved aside to
    ``.NAME.tmp-PID-TOKEN.old``, which :func:`remove_stale_temporaries` puts back if the
    process died before the new one arrived."""
    if not os.path.exists(out_dir):
        os.replace(tmp_dir, out_dir)
        return
    if not overwrite:
        raise GalcnnError(f"{out_dir} already exists; use --overwrite to replace it")
    if _exchange(tmp_dir, out_dir):
        _remove(tmp_dir)  # now the old output
        return
    old = f"{temporary_path(out_dir)}.old"
    os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    _remove(old)


def scratch_prefix() -> str:
    """Name prefix of a scratch file (``.galcnn-scratch-PID-TOKEN-``): cleaned up if left
    behind."""
    return f".galcnn-scratch-{os.getpid()}-{_TOKEN}-"


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove what killed galcnn processes left beside ``path`` (its ``.NAME.tmp-PID-TOKEN``
    temporaries) or, for a directory, inside it (any such temporary and scratch files); an
    old output moved aside by :func:`replace_directory` is put back when nothing replaced it.
    Only leftovers of processes no longer running are touched. Returns what was removed."""
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    places = [(directory, name)]
    if os.path.isdir(path) and not os.path.islink(path):
        places.append((path, None))
    removed = []
    for folder, only in places:
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            found = _TEMPORARY.fullmatch(entry) or _SCRATCH.fullmatch(entry)
            if not found or _running(int(found["pid"])):
                continue
            target = found.groupdict().get("name")
            if only is not None and target != only:
                continue
            leftover = os.path.join(folder, entry)
            if found.groupdict().get("old") and not os.path.lexists(
                    os.path.join(folder, target)):
                os.replace(leftover, os.path.join(folder, target))
                continue
            _remove(leftover)
            removed.append(leftover)
    return removed
