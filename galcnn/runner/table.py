"""Tables whose columns are declared once, written as CSV or FITS, streamed and resumable.

A stage declares its columns (:class:`Column`: name, kind, unit, format) and hands rows as
dicts; :class:`TableSink` writes them to ``OUT.partial`` (CSV) and flushes after each batch,
so a killed job keeps every complete row and ``--resume`` goes on after the last one (a torn
row is cut off; rows are matched by the files' real paths). ``.OUT.galcnn.json`` beside the
output records what wrote it (model, options, device, precision, shard): a resume with
anything else is refused, naming what differs. When every input has its row the partial file
becomes ``OUT``: renamed for CSV, or streamed into a FITS binary table (the same columns,
units as ``TUNITn``, the table's keywords in the table's own header and in the primary one)
in fixed memory whatever the number of rows.

One spelling of a missing value: an empty CSV cell; NaN in a FITS float column, -1 (its
``TNULL``) in an integer one, an empty string in a text one. Text that FITS cannot hold
(anything but printable ASCII) is written with ``\\xNN``/``\\uNNNN`` escapes
(:func:`galcnn.data.fitsheader.fits_text`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from galcnn.data.atomic import atomic_output, write_csv, write_json
from galcnn.data.fitsheader import fits_text, write_cards
from galcnn.data.inputs import canonical_key
from galcnn.runner.model import RunError

__all__ = ["Column", "TableSink", "identity_path", "count_rows", "write_rows"]

KINDS = ("text", "int", "float", "vector")
CHUNK_ROWS = 8192


@dataclass(frozen=True)
class Column:
    """One column: its name, kind (``text``, ``int``, ``float``, ``vector``), unit (FITS
    ``TUNITn``) and the format of its numbers in CSV (``.6f``; default ``.9g``, which
    round-trips float32 exactly)."""

    name: str
    kind: str = "text"
    unit: str = ""
    format: str = ".9g"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}")

    def cell(self, value) -> str:
        """The CSV text of a value (empty when missing)."""
        if value is None or isinstance(value, str) and value == "":
            return ""
        if self.kind == "text":
            return str(value)
        if self.kind == "int":
            return str(int(value))
        if self.kind == "vector":
            return " ".join(format(float(v), self.format) for v in value)
        number = float(value)
        return "" if not np.isfinite(number) else format(number, self.format)


def identity_path(out_path: str) -> str:
    """``DIR/.NAME.galcnn.json`` beside an output: what wrote it."""
    directory, name = os.path.split(os.path.abspath(out_path))
    return os.path.join(directory, f".{name}.galcnn.json")


def check_identity(out_path: str, what: str, identity: dict) -> None:
    """Refuse to add rows to (or call complete) ``what`` unless the same model and options
    wrote it."""
    try:
        with open(identity_path(out_path), encoding="utf-8") as handle:
            written = json.load(handle)
    except (OSError, ValueError):
        raise RunError(f"{what}: no record of the model that wrote it; use --overwrite to "
                          "start again") from None
    if written.get("model_sha256") != identity["model_sha256"]:
        raise RunError(f"{what} was written by another model (SHA-256 "
                          f"{str(written.get('model_sha256'))[:16]}, this one "
                          f"{identity['model_sha256'][:16]}); use --overwrite to start again "
                          "or write to another output")
    differ = sorted(k for k in identity if written.get(k) != identity[k])
    if differ:
        said = ", ".join(f"{k} {written.get(k)!r} (now {identity[k]!r})" for k in differ)
        raise RunError(f"{what} was written with other options: {said}; rerun with them, "
                          "or use --overwrite to start again")


def count_rows(path: str, fmt: str) -> int:
    if fmt == "fits":
        from astropy.io import fits

        return int(fits.getheader(path, 1)["NAXIS2"])
    with open(path, newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


class TableSink:
    """One table being written: ``OUT.partial`` while rows come, ``OUT`` when complete.

    ``key``: the column that names each row's input (matched by real path on resume)."""

    def __init__(self, out_path: str, columns: list[Column], *, fmt: str,
                 identity: dict | None, meta: list[tuple[str, object, str]] = (),
                 key: str = "file"):
        self.out_path, self.columns, self.fmt = out_path, list(columns), fmt
        self.identity, self.meta, self.key = identity, list(meta), key
        self.partial = f"{out_path}.partial"
        self.names = [c.name for c in self.columns]
        self._handle = None
        self._writer = None

    def complete(self) -> bool:
        """Whether ``OUT`` is there, written by the same model and options (a requeued job
        whose output is complete: nothing to do)."""
        if not os.path.exists(self.out_path):
            return False
        check_identity(self.out_path, self.out_path, self.identity)
        return True

    def open(self, *, resume: bool, overwrite: bool) -> set[str]:
        """Start writing; the keys of the rows a resumed partial table already holds."""
        if os.path.exists(self.out_path) and not overwrite:
            raise RunError(f"{self.out_path} already exists; use --overwrite to replace it")
        done: set[str] = set()
        if resume and os.path.exists(self.partial):
            check_identity(self.out_path, self.partial, self.identity)
            done = self._done_keys()
        elif os.path.exists(self.partial) and not overwrite:
            raise RunError(f"{self.partial} exists from an interrupted run; use --resume to "
                              "continue it or --overwrite to start again")
        if not done and self.identity is not None:
            write_json(identity_path(self.out_path), self.identity)
        self._handle = open(self.partial, "a" if done else "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        if not done:
            self._writer.writerow(self.names)
        return done

    def add(self, row: dict) -> None:
        """One row: values by column name (missing ones empty)."""
        self._writer.writerow([c.cell(row.get(c.name)) for c in self.columns])

    def flush(self) -> None:
        self._handle.flush()

    def finish(self) -> None:
        """Every row is in: make the output (the partial file stays until it is whole)."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        if self.fmt == "csv":
            os.replace(self.partial, self.out_path)
        else:
            write_fits_table(self.partial, self.out_path, self.columns, self.meta)
            os.remove(self.partial)

    def close(self) -> None:
        """Close the partial file, after an error too (whose own exception is the one to
        report: a full disk fails the flush of closing again)."""
        if self._handle is not None and not self._handle.closed:
            try:
                self._handle.close()
            except OSError:
                pass

    def _done_keys(self) -> set[str]:
        """Keys of the rows of the partial table; a torn last row is cut off. Parsed as
        CSV, so file names holding line breaks (quoted by the writer) count once."""
        with open(self.partial, "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            return set()
        if rows[0] != self.names:
            raise RunError(f"{self.partial}: written by another model or galcnn version "
                              "(columns differ); remove it or write to another output")
        complete = rows
        if not text.endswith("\n") or len(rows[-1]) != len(self.names):
            complete = rows[:-1]  # a kill mid-row
        complete = [complete[0]] + [r for r in complete[1:] if len(r) == len(self.names)]
        if len(complete) != len(rows):
            write_csv(self.partial, complete[0], complete[1:])
        position = self.names.index(self.key)
        return {canonical_key(row[position]) for row in complete[1:]}


def write_rows(out_path: str, columns: list[Column], rows: Iterable[dict], *, fmt: str,
               meta: list[tuple[str, object, str]] = ()) -> None:
    """A whole table at once (a catalogue, an index), through the same cells and FITS
    writer as a streamed one, appearing only when complete."""
    sink = TableSink(out_path, columns, fmt=fmt, identity=None, meta=meta)
    try:
        sink.open(resume=False, overwrite=True)
        for row in rows:
            sink.add(row)
        sink.finish()
    finally:
        sink.close()
        if os.path.exists(sink.partial):
            os.remove(sink.partial)


def _rows(partial: str) -> Iterable[list[str]]:
    with open(partial, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        yield from reader


def _layout(partial: str, columns: list[Column]) -> tuple[int, list[int]]:
    """Rows, and each column's width: characters of a text column, numbers of a vector."""
    widths = [1] * len(columns)
    n = 0
    for row in _rows(partial):
        n += 1
        for i, (column, text) in enumerate(zip(columns, row)):
            if column.kind == "text":
                widths[i] = max(widths[i], len(fits_text(text)))
            elif column.kind == "vector" and text:
                widths[i] = max(widths[i], len(text.split()))
    return n, widths


def _dtype(columns: list[Column], widths: list[int]) -> np.dtype:
    kinds = {"int": ">i8", "float": ">f8"}
    return np.dtype([(c.name, f"S{w}") if c.kind == "text" else
                     (c.name, ">f4", (w,)) if c.kind == "vector" else (c.name, kinds[c.kind])
                     for c, w in zip(columns, widths)])


def _record(row: list[str], columns: list[Column], widths: list[int]) -> tuple:
    values = []
    for column, text, width in zip(columns, row, widths):
        if column.kind == "text":
            values.append(fits_text(text).encode("ascii"))
        elif column.kind == "int":
            values.append(int(text) if text else -1)
        elif column.kind == "float":
            values.append(float(text) if text else np.nan)
        else:
            vector = np.full(width, np.nan, np.float32)
            if text:
                vector[:] = np.array(text.split(), dtype=np.float32)
            values.append(vector)
    return tuple(values)


def write_fits_table(partial: str, out_path: str, columns: list[Column],
                     meta: list[tuple[str, object, str]]) -> None:
    """The complete CSV ``partial`` as a FITS binary table, streamed in chunks of rows (two
    passes: the widths, then the records), with units and the keywords ``meta``."""
    from astropy.io import fits

    n, widths = _layout(partial, columns)
    dtype = _dtype(columns, widths)
    empty = fits.BinTableHDU(np.zeros(0, dtype=dtype))
    header = empty.header
    header["NAXIS2"] = n
    for index, column in enumerate(columns, start=1):
        if column.unit:
            header[f"TUNIT{index}"] = column.unit
        if column.kind == "int":
            header[f"TNULL{index}"] = -1
    primary = fits.PrimaryHDU()
    write_cards(header, meta)
    write_cards(primary.header, meta)
    with atomic_output(out_path) as tmp, open(tmp, "wb") as handle:
        handle.write(primary.header.tostring().encode("ascii"))
        handle.write(header.tostring().encode("ascii"))
        written = 0
        chunk: list[tuple] = []
        for row in _rows(partial):
            chunk.append(_record(row, columns, widths))
            if len(chunk) == CHUNK_ROWS:
                written += _write_records(handle, chunk, dtype)
                chunk = []
        written += _write_records(handle, chunk, dtype)
        handle.write(b"\0" * (-written % 2880))
        handle.flush()
        os.fsync(handle.fileno())


def _write_records(handle, chunk: list[tuple], dtype: np.dtype) -> int:
    if not chunk:
        return 0
    data = np.array(chunk, dtype=dtype).tobytes()
    handle.write(data)
    return len(data)
