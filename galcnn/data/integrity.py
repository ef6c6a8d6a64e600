"""Is a prepared dataset whole? Its files checked when it is opened, in one line each.

A copy cut short by a full disk or an interrupted transfer left a shard shorter than its
header says (numpy: "mmap length is greater than file size", mid-training), a manifest that
ends inside a row, or a metadata file that ends inside its JSON; a shard could even be a
pickled object array. Each is said here, naming the file, before any training or scoring
starts: the set must be prepared again.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from galcnn.errors import GalcnnError

__all__ = ["DamagedDataset", "read_metadata", "read_manifest_rows", "check_shard"]

AGAIN = "prepare the set again (galcnn prepare ... --overwrite)"


class DamagedDataset(GalcnnError):
    """A file of a prepared dataset is missing, cut short or not what galcnn wrote."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}; {AGAIN}")


def read_metadata(path: str) -> dict:
    """``metadata.json`` as a dict."""
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedDataset(path, f"damaged JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise DamagedDataset(path, "not a galcnn metadata file")
    return metadata


def read_manifest_rows(path: str) -> list[dict]:
    """The manifest's rows as text, every row whole (a cut last row is named)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("index", "shard", "row", "split", "label_index")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise DamagedDataset(path, f"no column {', '.join(missing)} (is it a galcnn "
                                       "manifest?)")
        rows = []
        for row in reader:
            if None in row or any(row.get(c) is None for c in reader.fieldnames):
                raise DamagedDataset(path, f"line {reader.line_num} is cut short or has extra "
                                           "fields")
            rows.append(row)
    return rows


def check_shard(path: str, rows_needed: int) -> None:
    """A shard that numpy can map without pickles and that holds ``rows_needed`` rows."""
    if not os.path.isfile(path):
        raise DamagedDataset(path, "missing")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = reader(handle)
            offset = handle.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise DamagedDataset(path, f"not a numpy array file ({exc})") from None
    if dtype.hasobject:
        raise DamagedDataset(path, "holds Python objects (pickles), never loaded")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise DamagedDataset(path, f"cut short: {size} bytes, its header says {expected}")
    if not shape or shape[0] < rows_needed:
        raise DamagedDataset(path, f"holds {shape[0] if shape else 0} rows, the manifest "
                                   f"needs {rows_needed}")
