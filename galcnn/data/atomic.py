"""Outputs that appear only when complete: written under a temporary name, then renamed.

A job killed while writing leaves the previous output (or none) in place, never half of one.
The temporary name sits beside the target (same file system, so the rename is atomic) and
carries the process id: ``.NAME.tmp-PID``.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from galcnn.errors import GalcnnError

__all__ = ["atomic_output", "temporary_path", "make_parent", "make_directory", "write_text",
           "write_json", "write_csv", "replace_directory"]


def temporary_path(path: str) -> str:
    """``DIR/.NAME.tmp-PID`` beside ``path``."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")


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


def replace_directory(tmp_dir: str, out_dir: str, overwrite: bool) -> None:
    """Move a complete ``tmp_dir`` to ``out_dir``, replacing an existing one if ``overwrite``."""
    if not os.path.exists(out_dir):
        os.replace(tmp_dir, out_dir)
        return
    if not overwrite:
        raise GalcnnError(f"{out_dir} already exists; use --overwrite to replace it")
    old = f"{temporary_path(out_dir)}.old"
    os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    _remove(old)
